"""Persistence: SQLModel tables, repositories, the unit of work, the outbox, and Alembic
migrations. The only package that imports SQLModel/SQLAlchemy; it hands plain dataclasses
(never table rows) to its callers."""

from .canonical import canonical_json, content_hash
from .db import make_engine
from .migrations import upgrade_to_head
from .unit_of_work import SqlUnitOfWork, UnitOfWork
from . import sync_tables  # noqa: F401,E402  (registers the sync worker's tables on the metadata)
from . import coverage_tables  # noqa: F401,E402  (registers the coverage workflow tables on the metadata)
from . import export_tables  # noqa: F401,E402  (registers the FHIR $export job table on the metadata)
from . import audit  # noqa: F401,E402  (registers the audit_event table on the metadata)

__all__ = ["SqlUnitOfWork", "UnitOfWork", "canonical_json", "content_hash", "make_engine", "upgrade_to_head"]
