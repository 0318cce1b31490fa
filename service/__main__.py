"""Command line: `python -m service --help`.

    serve    run the HTTP API with uvicorn (migrates the database first)
    migrate  bring the database schema to the newest migration
    demo     load the demo course into the configured store
    import   import NDJSON or CSV records of one kind, with a per-row error report
    openapi  write the OpenAPI document (openapi/openapi.json by default, '-' for stdout)

Each command is a small function registered on `app`; later commands (worker, validate,
dev-token, payer) add one function each.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import PROJECT_ROOT, get_settings, usable_cores

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Ketamine program FHIR interoperability service")
console = Console(stderr=True)
OPENAPI_PATH = PROJECT_ROOT / "openapi" / "openapi.json"


def _services():  # type: ignore[no-untyped-def]
    from .usecases import Services

    return Services(settings=get_settings())


def render_openapi(document: dict[str, Any]) -> str:
    """The committed form of the OpenAPI document: sorted keys, 2-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development)")] = False,
    workers: Annotated[int, typer.Option(
        min=0, help="Worker processes sharing the port (0: one per CPU core). Each has its own thread pool, "
        "token cache, audit writer and rate-limit buckets (RATE_LIMIT_PER_MINUTE applies per "
        "process); the database is shared.")] = 1,
) -> None:
    """Run the HTTP API (runs the database migrations first)."""
    import uvicorn

    from .logs import uvicorn_log_config

    if reload and workers != 1:
        console.print("--reload runs one process; leave --workers at 1")
        raise typer.Exit(2)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    _check_auth_settings()
    services = _services()
    services.migrate()
    services.close()
    uvicorn.run("service.api.app:create_app", factory=True, host=host, port=port, reload=reload,
                workers=workers or usable_cores(),
                log_level=settings.log_level.lower(), log_config=uvicorn_log_config(settings.log_level))


def _check_auth_settings() -> None:
    """Fail at start-up, not open: invalid AUTH_* settings (e.g. dev mode in production) stop here."""
    from .auth import AuthSettings

    try:
        auth = AuthSettings()
    except ValueError as error:
        console.print(f"[red]invalid authentication settings: {error}[/red]")
        raise typer.Exit(2) from None
    if auth.mode == "dev":
        console.print(
            "authentication: dev mode (tokens signed by the local dev key). Get one with\n"
            "  python -m service dev-token --scope 'system/*.cruds' --role admin --clinic <clinic id>\n"
            "and send it as 'Authorization: Bearer <token>'. The billing page gets its own token."
        )
    elif auth.mode == "disabled":
        console.print("[yellow]authentication is DISABLED (AUTH_MODE=disabled): development only[/yellow]")


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    services = _services()
    services.migrate()
    console.print("[green]database is at the newest schema[/green]")


@app.command()
def demo() -> None:
    """Load the demo course into the configured store (safe to repeat)."""
    from .demo import load_demo

    services = _services()
    services.migrate()
    try:
        counts = load_demo(services.uow_factory)
    except NotImplementedError as error:
        console.print(f"[red]demo data is not available yet: {error}[/red]")
        raise typer.Exit(1) from None
    console.print(f"demo course loaded: {counts}")


@app.command("import")
def import_file(
    kind: Annotated[str, typer.Argument(help="Record kind, e.g. patients, administration-sessions, vitals")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help=".ndjson/.jsonl or .csv file")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="ndjson or csv (default: from the file extension)")] = None,
) -> None:
    """Import records of one kind; prints a per-row error report and exits 1 if any row failed."""
    from .domain.records import RECORD_KINDS
    from .usecases import import_rows, parse_rows

    if kind not in RECORD_KINDS:
        console.print(f"[red]unknown kind {kind!r}[/red]; known: {', '.join(RECORD_KINDS)}")
        raise typer.Exit(2)
    fmt = fmt or ("csv" if file.suffix.lower() == ".csv" else "ndjson")
    if fmt not in ("csv", "ndjson"):
        console.print("[red]--format must be csv or ndjson[/red]")
        raise typer.Exit(2)
    rows = list(parse_rows(file.read_bytes(), fmt, kind))
    services = _services()
    services.migrate()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(f"{kind} <- {file.name}", total=len(rows))
        report = import_rows(services.uow_factory, kind, rows, on_row=lambda _row: progress.advance(task))
    counts = report.counts()
    console.print(
        f"{len(report.rows)} rows: {counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['error']} failed"
    )
    if report.failed:
        table = Table("row", "id", "field", "message", title="Rows that failed", title_justify="left")
        for row in report.rows:
            for error in row.errors:
                table.add_row(str(row.row), row.id or "", error.field or "(row)", error.message)
        console.print(table)
        raise typer.Exit(1)


@app.command()
def openapi(
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, '-' for stdout")] = str(OPENAPI_PATH),
) -> None:
    """Write the OpenAPI document of the HTTP API (stable key order)."""
    from .api import create_app

    text = render_openapi(create_app().openapi())
    if output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path}")


@app.command()
def payer(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8099,
    pend_rate: Annotated[float, typer.Option("--pend-rate", min=0.0, max=1.0, help="Share of PAS requests answered pended (A4)")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the pend decision (deterministic per request identifier)")] = 0,
) -> None:
    """Run the sandbox payer (PAS $submit/$inquire, CoverageEligibilityRequest) on the rules in mappings/payers/."""
    import uvicorn

    from .coverage.sandbox_payer import create_payer_app

    print(f"sandbox payer FHIR base: http://{host}:{port}/fhir", flush=True)
    uvicorn.run(create_payer_app(pend_rate=pend_rate, seed=seed), host=host, port=port, log_level="warning")


@app.command("dev-token")
def dev_token(
    scope: Annotated[str, typer.Option("--scope", help="Space-separated SMART scopes, e.g. 'system/*.rs' or 'system/*.cruds'")],
    clinic: Annotated[Optional[str], typer.Option("--clinic", help="The clinic (tenant) the token acts for")] = None,
    patient: Annotated[Optional[str], typer.Option("--patient", help="FHIR Patient id: confines the token to that compartment")] = None,
    role: Annotated[Optional[list[str]], typer.Option("--role", help="ehr-system, clinician, billing or admin (repeatable)")] = None,
    lifetime: Annotated[int, typer.Option("--lifetime", help="Seconds the token is valid")] = 3600,
    subject: Annotated[str, typer.Option("--subject", help="sub / client_id claim")] = "dev-client",
) -> None:
    """Print a dev access token the running configuration accepts (AUTH_MODE=dev; refused in production)."""
    from .auth import AuthSettings
    from .auth.dev import DevTokenRefusedError, mint_dev_token

    try:
        settings = AuthSettings()
    except ValueError as error:
        console.print(f"[red]invalid authentication settings: {error}[/red]")
        raise typer.Exit(2) from None
    if settings.mode != "dev":
        console.print(f"[red]AUTH_MODE={settings.mode}: dev tokens are only accepted in dev mode[/red]")
        raise typer.Exit(2)
    try:
        token = mint_dev_token(scope, clinic=clinic, patient=patient, roles=tuple(role or ("ehr-system",)),
                               lifetime=lifetime, settings=settings, subject=subject)
    except (DevTokenRefusedError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(token + "\n")


audit_app = typer.Typer(help="The audit trail (AuditEvents)", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("export")
def audit_export(
    output: Annotated[str, typer.Option("--output", "-o", help="NDJSON file to write, '-' for stdout")] = "-",
    since: Annotated[Optional[str], typer.Option("--since", help="ISO instant: events recorded at or after it")] = None,
    clinic: Annotated[Optional[str], typer.Option("--clinic", help="Only this clinic's events")] = None,
    patient: Annotated[Optional[str], typer.Option("--patient", help="Only events about this patient")] = None,
) -> None:
    """Write the audit trail as NDJSON (one FHIR AuditEvent per line, oldest first)."""
    import datetime as dt

    from .store.audit import AuditLog, AuditQuery

    start = dt.datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    services = _services()
    services.migrate()
    query = AuditQuery(patient=patient, clinic_id=clinic, since=start)
    count = 0
    handle = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
    try:
        for line in AuditLog(services.engine).export(query):
            handle.write(line + b"\n")
            count += 1
    finally:
        if output != "-":
            handle.close()
        else:
            handle.flush()
    console.print(f"{count} audit events exported")


from .sync.cli import register as _register_sync  # noqa: E402  (worker, sync backfill/replay/pull/status)

_register_sync(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
