"""Alembic environment: runs migrations on the connection `upgrade_to_head` hands over, or on
a new engine from DATABASE_URL when Alembic is run from the command line."""

from __future__ import annotations

from alembic import context

from service.store.tables import metadata

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from service.config import get_settings
    from service.store.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or get_settings().database_url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run_migrations_online()
