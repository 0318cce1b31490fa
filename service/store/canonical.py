"""Canonical JSON: orjson with sorted keys, so equal content has equal bytes and hash."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, dt.date):  # pragma: no cover - orjson handles date/datetime natively
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no insignificant whitespace."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS)


def content_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `value` (bytes are hashed as they are)."""
    data = value if isinstance(value, bytes) else canonical_json(value)
    return hashlib.sha256(data).hexdigest()
