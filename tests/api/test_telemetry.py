"""FastAPI's native OpenTelemetry as the service configures it (service/api/app.py,
`telemetry_config`)."""

from __future__ import annotations

from service.api import create_app
from service.api.app import telemetry_config
from service.config import Settings
from service.usecases import Services


def test_fastapi_telemetry_is_off_unless_asked_for_and_never_exports_log_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """OTEL_TELEMETRY decides FastAPI's native OpenTelemetry once: off by default (no provider
    look-up per request), spans and metrics when on, its exception log records never."""
    url = f"sqlite:///{tmp_path / 't.sqlite3'}"
    off = create_app(services=Services(settings=Settings(database_url=url)))
    on = create_app(services=Services(settings=Settings(database_url=url, otel_telemetry=True)))
    assert not off._native_telemetry.enabled()  # type: ignore[attr-defined]
    assert (on._telemetry["tracing"], on._telemetry["metrics"], on._telemetry["logs"]) == (True, True, False)  # type: ignore[attr-defined]
    assert telemetry_config(Settings(database_url=url))["logs"] is False
