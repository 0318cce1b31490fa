"""Persistence: SQLModel tables, repositories, the unit of work, the outbox, and Alembic
migrations. The only package that imports SQLModel/SQLAlchemy; it hands plain dataclasses
(never table rows) to its callers."""

from .canonical import canonical_json, content_hash
from .db import make_engine
from .migrations import upgrade_to_head
from .unit_of_work import SqlUnitOfWork, UnitOfWork

__all__ = ["SqlUnitOfWork", "UnitOfWork", "canonical_json", "content_hash", "make_engine", "upgrade_to_head"]
