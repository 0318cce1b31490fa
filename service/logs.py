"""Logging hygiene: access logs without query strings (they can carry identifiers such as
`identifier=MRN|...` or `patient_id=`), and nothing else that echoes requests.

`uvicorn_log_config(level)` is uvicorn's default logging config plus `RedactQueryFilter` on the
`uvicorn.access` logger; `redact_path` keeps the path and drops everything after `?`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any


def redact_path(path: str) -> str:
    head, sep, _ = path.partition("?")
    return head + ("?[redacted]" if sep else "")


class RedactQueryFilter(logging.Filter):
    """uvicorn.access records carry (client_addr, method, full_path, http_version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_path(args[2]), *args[3:])
        return True


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": "service.logs.RedactQueryFilter"}
    config["handlers"]["access"]["filters"] = ["redact_query"]
    config.setdefault("loggers", {}).setdefault("uvicorn.access", {})["level"] = level.upper()
    return config
