"""CLI commands of the sync worker, registered on the main typer app by `register(app)`:

    worker [--until-idle] [--target NAME]     run the outbox worker
    sync backfill --target NAME               re-take the whole outbox for a target (progress bar)
    sync replay --target NAME [--resource T/id]   replay dead letters
    sync pull --target NAME --identifier system|value [--clinic ID]   import a patient from an EHR
    sync status [--target NAME]               counts per status and the dead letters

Exit codes: 0 done (dead letters, if any, are listed); 2 a fatal configuration error (unknown
target, bad auth settings, token endpoint refusing us, another worker on a SQLite database).
"""

from __future__ import annotations

import logging
import signal
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
sync_app = typer.Typer(no_args_is_help=True, help="EHR sync: backfill, replay, pull, status")


def _context():  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from ..config import get_settings
    from ..store import make_engine, upgrade_to_head
    from ..store.sync_repository import SyncStore
    from .settings import SyncSettings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sync_settings = SyncSettings()
    except ValidationError as error:
        console.print(f"[red]sync settings are invalid:[/red] {error.errors()[0].get('msg')}")
        raise typer.Exit(2) from None
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    return SyncStore(engine), sync_settings


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(2)


def worker(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when nothing is left to send but dead letters")] = False,
    target: Annotated[Optional[str], typer.Option("--target", help="Only this target (default: all)")] = None,
) -> None:
    """Run the outbox worker: send every stored resource to every configured EHR."""
    from .targets import TargetConfigError, load_targets
    from .worker import SyncWorker, WorkerOptions, WorkerRefused

    store, settings = _context()
    try:
        targets = [t.validate() for t in load_targets(store, settings) if target is None or t.name == target]
    except TargetConfigError as error:
        _fail(str(error))
    if not targets:
        _fail(f"no sync target named {target!r}" if target else "no sync target configured (set SYNC_TARGET_URL)")
    sync_worker = SyncWorker(store, targets, WorkerOptions.from_settings(settings))
    signal.signal(signal.SIGTERM, lambda *_: sync_worker.stop())
    console.print(f"sync worker {sync_worker.worker_id}: targets {', '.join(t.name for t in targets)}")
    try:
        report = sync_worker.run(until_idle=until_idle)
    except WorkerRefused as error:
        _fail(str(error))
    if report.fatal:
        _fail(f"sync worker stopped: {report.fatal}")
    console.print(f"sent {report.sent}, retried {report.retried}, dead {report.dead} in {report.batches} batches")
    if report.dead_letters:
        for name, count in sorted(report.dead_letters.items()):
            console.print(f"[yellow]{count} dead letter(s) for target {name}[/yellow] "
                          f"(see `sync status --target {name}`, fix, then `sync replay --target {name}`)")


@sync_app.command()
def backfill(target: Annotated[str, typer.Option("--target", help="Target name")]) -> None:
    """Take the whole outbox into a target's delivery state again (for a new target, or after
    its data was lost). Already-sent resources are not sent again unless newer."""
    from .targets import TargetConfigError, find_target

    store, settings = _context()
    try:
        config = find_target(store, settings, target)
    except TargetConfigError as error:
        _fail(str(error))
    store.backfill(target)
    _, newest = store.cursor(target)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task(f"outbox -> {target}", total=newest)
        while True:
            result = store.ingest(target, config.resource_types or None)
            progress.update(task, completed=min(result.last_seq, newest))
            if result.caught_up:
                break
    counts = store.status_counts(target).get(target, {})
    console.print(f"target {target}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(f"run `python -m service worker --target {target} --until-idle` to send")


@sync_app.command()
def replay(
    target: Annotated[str, typer.Option("--target", help="Target name")],
    resource: Annotated[Optional[str], typer.Option("--resource", help="Only this resource, Type/id")] = None,
) -> None:
    """Replay dead letters (after fixing the cause)."""
    from .admin import SyncAdmin
    from .targets import TargetConfigError

    store, settings = _context()
    try:
        count = SyncAdmin(store, settings).replay(target, resource)
    except TargetConfigError as error:
        _fail(str(error))
    console.print(f"{count} dead letter(s) of {target} are pending again")


@sync_app.command()
def pull(
    target: Annotated[str, typer.Option("--target", help="Target (EHR) name")],
    identifier: Annotated[str, typer.Option("--identifier", help="Patient identifier, system|value")],
    clinic: Annotated[Optional[str], typer.Option("--clinic", help="Clinic the patient belongs to")] = None,
) -> None:
    """Import a patient's Patient, Coverage, Condition and medication history from an EHR."""
    from .admin import SyncAdmin
    from .errors import PermanentError, TemporaryError
    from .pull import PullError
    from .targets import TargetConfigError

    store, settings = _context()
    try:
        report = SyncAdmin(store, settings).pull(target, identifier, clinic)
    except (TargetConfigError, PullError) as error:
        _fail(str(error))
    except (TemporaryError, PermanentError) as error:
        console.print(f"[red]the EHR answered: {error.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"pulled from {target}: {report.counts} ({report.created} new, {report.updated} updated, "
                  f"{report.unchanged} unchanged)")
    for skipped in report.skipped_searches:
        console.print(f"[yellow]skipped {skipped}[/yellow]")


@sync_app.command()
def status(target: Annotated[Optional[str], typer.Option("--target", help="Target name")] = None) -> None:
    """Counts per status and the dead letters with their reasons."""
    from ..store.sync_repository import StatusQuery

    store, _ = _context()
    table = Table("target", "pending", "sending", "sent", "retrying", "dead", title="Sync status")
    for name, counts in sorted(store.status_counts(target).items()):
        table.add_row(name, *(str(counts.get(s, 0)) for s in ("pending", "sending", "sent", "retrying", "dead")))
    console.print(table)
    dead = store.status(StatusQuery(target=target, status="dead", limit=50))
    if dead:
        letters = Table("target", "resource", "attempts", "reason", title="Dead letters (first 50)")
        for d in dead:
            letters.add_row(d.target, f"{d.resource_type}/{d.resource_id}", str(d.attempts), (d.last_error or "")[:200])
        console.print(letters)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.add_typer(sync_app, name="sync")
