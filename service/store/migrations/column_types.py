"""Column types shared by the migration scripts (timezone-aware timestamps, sized strings)."""

from __future__ import annotations

import sqlalchemy as sa

TS = sa.DateTime(timezone=True)


def _s(length: int) -> sa.String:
    """A VARCHAR of `length` characters."""
    return sa.String(length=length)
