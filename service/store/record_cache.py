"""The domain records a process has read or committed, kept so that a record's first write can
skip the records read (`RecordRepository.read_for_write`, PostgreSQL).

A record write reads its own key and every record it refers to (the clinic, whose data the
mapping uses; the patient, enrollment, practitioners and location it names, which must exist
and belong to its patient). When this process already holds all the referenced records and
does not know the record itself - the common case of documenting something new - the write
takes them from here and presumes itself new. Nothing here is trusted blindly: the write's one
statement carries the (kind, clinic, key, version) of every record it took from the cache, and
fails as a serialization failure when one is no longer the current version (migration 0012's
`record_changed`); a record that does exist after all meets the primary key. Either way the
unit of work reports ConcurrentWriteError and put_record's retry reads (decision 0011, item
24). So an entry made stale by another process costs one refused attempt, never a wrong write.

Entries are committed versions only: reads put what they found, and a unit of work puts the
records it wrote once its commit succeeded. One cache per engine, bounded (least recently used
out first), safe across the write pool's threads. Entries are shared between requests, so a
StoredRecord and its data are read-only (no use case changes one; they build new records).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Iterable, Sequence

import sqlalchemy as sa

from .db import engine_scoped

if TYPE_CHECKING:
    from .repository import RecordKey, StoredRecord

SIZE = 4096
"""Records kept per engine: a clinic's staff, locations and active patients' enrollments."""


class RecordCache:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[RecordKey, StoredRecord] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def knows(self, key: RecordKey) -> bool:
        return key in self._entries

    def all_of(self, keys: Sequence[RecordKey]) -> dict[RecordKey, StoredRecord] | None:
        """The entries for every key, or None when one is missing."""
        found = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    return None
                self._entries.move_to_end(key)
                found[key] = entry
        return found

    def put(self, records: Iterable[StoredRecord]) -> None:
        """Keep these versions (a newer version read or written replaces an older one)."""
        with self._lock:
            for record in records:
                key = (record.kind, record.clinic_id, record.key)
                known = self._entries.get(key)
                if known is None or known.version <= record.version:
                    self._entries[key] = record
                self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def record_cache(engine: sa.Engine) -> RecordCache:
    """The engine's cache (made once, kept on the engine)."""
    return engine_scoped(engine, "_service_record_cache", RecordCache)
