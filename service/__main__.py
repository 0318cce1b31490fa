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

from .config import PROJECT_ROOT, get_settings

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
) -> None:
    """Run the HTTP API (runs the database migrations first)."""
    import uvicorn

    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    services = _services()
    services.migrate()
    services.close()
    uvicorn.run("service.api.app:create_app", factory=True, host=host, port=port, reload=reload, log_level=settings.log_level.lower())


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


from .sync.cli import register as _register_sync  # noqa: E402  (worker, sync backfill/replay/pull/status)

_register_sync(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
