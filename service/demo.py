"""The demo: `load_demo(uow_factory)` loads the demo course (`service.courses.demo_course()`) into the store
through the `put_record` use case, one transaction per record, and returns how many records
were created, updated or left unchanged. Loading twice changes nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from .store import UnitOfWork


def load_demo(uow_factory: Callable[[], UnitOfWork]) -> dict[str, int]:
    """Load the demo course; returns counts per write status (created/updated/unchanged)."""
    from .courses import demo_course
    from .usecases import put_record

    counts: Counter[str] = Counter()
    for kind, payload in demo_course():
        counts[put_record(uow_factory(), kind, payload).status.value] += 1
    return dict(counts)
