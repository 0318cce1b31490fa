"""Run the service for the browser tests as a real uvicorn server process:

    python -m tests.web.server --port P --database-url URL --clock-file PATH

The app is `create_app(services=...)` with a clock read from `--clock-file` (an ISO datetime;
the test rewrites it to move time forward, e.g. to the end of an authorization), so the demo
course's dates (March 2026) stay current whatever the machine's date. Everything else is the
production composition: settings from the environment (DATABASE_URL is given here, payer
endpoints come from PAYER_<KEY>_URL variables).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path


def file_clock(path: Path):  # type: ignore[no-untyped-def]
    def now() -> dt.datetime:
        return dt.datetime.fromisoformat(path.read_text(encoding="utf-8").strip())

    return now


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--clock-file", type=Path, required=True)
    args = parser.parse_args(argv)

    import uvicorn

    from service.api import create_app
    from service.config import Settings
    from service.usecases import Services

    services = Services(settings=Settings(database_url=args.database_url), clock=file_clock(args.clock_file))
    services.migrate()
    print(f"billing test server: http://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(create_app(services=services), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
