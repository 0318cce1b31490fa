"""PostgreSQL functions that only raise, for the migrations that install them: the write path's
INSERT calls one when a row it is about to write contradicts what the database holds - a
condition a constraint cannot express (docs/decisions/0011, items 23 and 24). SQLite gets
nothing: its write path always reads first."""

from __future__ import annotations

from alembic import op


def create_raising_function(name: str, parameters: str, message: str, arguments: str, errcode: str) -> None:
    """`name(parameters) RETURNS boolean`, which raises `message` (% placeholders filled from
    `arguments`) with SQLSTATE condition `errcode`."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION {name}({parameters})
        RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{message}', {arguments} USING ERRCODE = '{errcode}';
        END
        $$
        """
    )


def drop_function(name: str, types: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION {name}({types})")
