"""`StoreSession`: what the store's repositories need of the object they are built on - a
SQLAlchemy ORM Session, or a unit of work's `UnitSession` (a Core connection, with an ORM
Session made on it only when asked; service/store/unit_of_work.py)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection


class StoreSession(Protocol):
    def connection(self) -> Connection: ...

    def execute(self, statement: Any, params: Any = None) -> Any: ...

    def flush(self) -> None: ...

    def add(self, instance: Any) -> None: ...

    def get(self, entity: Any, ident: Any) -> Any: ...

    def exec(self, statement: Any) -> Any: ...
