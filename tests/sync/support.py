"""Shared helpers of the sync tests: load generated courses, put raw resources in the store,
make workers with fast settings."""

from __future__ import annotations

from typing import Any, Callable

from service.courses import generated_courses
from service.store import make_engine, upgrade_to_head
from service.store.sync_repository import SyncStore
from service.store.unit_of_work import SqlUnitOfWork
from service.sync.client import FhirTargetClient
from service.sync.retry import RetryPolicy
from service.sync.targets import TargetConfig
from service.sync.worker import SyncWorker, WorkerOptions
from service.usecases import put_record

FAST = WorkerOptions(
    concurrency=2, batch_items=200, batch_partitions=20, lease_seconds=30, poll_seconds=0.02, defer_seconds=0.0,
    policy=RetryPolicy(base_seconds=0.01, cap_seconds=0.05, max_attempts=50), breaker_threshold=1000,
    breaker_cooldown_seconds=0.05,
)


def migrated_engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    return engine


def load_courses(engine, count: int, seed: int = 7) -> int:  # type: ignore[no-untyped-def]
    records = 0
    for kind, payload in generated_courses(count, seed):
        put_record(SqlUnitOfWork(engine), kind, payload)
        records += 1
    return records


def put_resource(engine, resource: dict[str, Any], clinic_id: str = "riverbend") -> int:  # type: ignore[no-untyped-def]
    """Write one resource straight into the store (with its outbox row); returns its version."""
    with SqlUnitOfWork(engine) as uow:
        write = uow.resources.save(resource, clinic_id=clinic_id)
        if write.changed:
            uow.outbox.append(write)
        uow.commit()
    return write.version_id


def delete_resource(engine, resource_type: str, resource_id: str) -> None:  # type: ignore[no-untyped-def]
    with SqlUnitOfWork(engine) as uow:
        write = uow.resources.delete(resource_type, resource_id)
        assert write is not None
        uow.outbox.append(write)
        uow.commit()


def stored_keys(engine) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    with engine.connect() as connection:
        return {(r[0], r[1]) for r in connection.execute(sa.text("SELECT resource_type, id FROM fhir_resource"))}


def worker_for(engine, target: TargetConfig, client_factory: Callable[[TargetConfig], FhirTargetClient],  # type: ignore[no-untyped-def]
               options: WorkerOptions = FAST) -> SyncWorker:
    return SyncWorker(SyncStore(engine), [target], options, client_factory=client_factory)
