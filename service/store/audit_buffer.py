"""Group commit for the audit trail: `BufferedAuditLog` takes AuditEvents from request handlers
without a database round trip and writes them in batches from one background thread.

Every API request is audited (service/api/audit.py). Written one per request, each event was
its own transaction: a threadpool hop, BEGIN/INSERT/COMMIT round trips and a commit record
per request - about a tenth of a session write's cost. Here a request only appends to a
buffer; the writer thread inserts everything pending in one transaction (at most `batch`
rows), so the cost per event is a share of one multi-row INSERT.

Guarantees (see docs/decisions/0011-audit-group-commit.md):
- an event is timestamped when submitted (not when written);
- reads through this object (`search`, `count`, `read`, `export`) flush first, so a caller
  sees every event submitted before its read; another process sees them within one batch
  interval (`max_delay`, 50 ms by default);
- a write that fails is retried (backoff up to 5 s) with its events kept in order; never
  dropped. While the buffer holds `limit` events, `submit` refuses and the caller writes
  synchronously (back-pressure instead of unbounded memory);
- `close()` (app shutdown) writes what is pending before returning. A process killed with
  SIGKILL loses at most the events of its last `max_delay` - the same window as before, when
  the event was written after the response had been sent.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .audit import AuditLog, AuditQuery, AuditRecord

log = logging.getLogger("service.audit")


class BufferedAuditLog(AuditLog):
    """An `AuditLog` whose `submit` buffers events for a background writer (module docstring)."""

    def __init__(self, engine: Any, clock: Any = None, *, max_delay: float = 0.05, batch: int = 500,
                 limit: int = 20_000, write_lock: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        super().__init__(engine, clock)
        self.write_lock = write_lock or nullcontext
        """Taken around each write (the sync worker's SQLite lock: its lanes and this writer
        then hand the database over at once instead of meeting in SQLite's busy handler)."""
        self.max_delay = max_delay
        self.batch = batch
        self.limit = limit
        self._pending: deque[AuditRecord] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._written = threading.Condition(self._lock)
        self._submitted = 0
        """Events submitted so far (a sequence number)."""
        self._durable = 0
        """Events written so far (they are written in submission order)."""
        self._closing = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ writing

    def submit(self, record: AuditRecord) -> bool:
        """Buffer one event (timestamped now); False when the buffer is full or closed (then
        write it with `append` yourself)."""
        if record.recorded is None:
            record.recorded = self.clock()
        with self._lock:
            if self._closing or len(self._pending) >= self.limit:
                return False
            self._pending.append(record)
            self._submitted += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
            elif len(self._pending) >= self.batch:
                self._wake.notify()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every event submitted before this call is written; False on timeout."""
        with self._lock:
            target = self._submitted
            if self._durable >= target:
                return True
            self._wake.notify()
            return self._written.wait_for(lambda: self._durable >= target, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is pending and stop the writer thread."""
        with self._lock:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while True:
            with self._lock:
                if not self._pending and not self._closing:
                    self._wake.wait(self.max_delay)
                if not self._pending:
                    if self._closing:
                        return
                    continue
                if not self._closing and failures == 0 and len(self._pending) < self.batch:
                    # let a burst gather (other requests finishing now) before writing
                    self._wake.wait(self.max_delay / 5)
                chunk = [self._pending[i] for i in range(min(self.batch, len(self._pending)))]
            try:
                with self.write_lock():
                    self.append(chunk)
            except Exception as error:  # noqa: BLE001 - the database may be down: keep the events, retry
                failures += 1
                log.error("could not write %d audit events (%s); retrying", len(chunk), type(error).__name__)
                with self._lock:
                    if self._closing and failures >= 3:
                        log.error("giving up on %d audit events at shutdown", len(self._pending))
                        return
                    self._wake.wait(min(5.0, 0.1 * 2 ** failures))
                continue
            failures = 0
            with self._lock:
                for _ in chunk:
                    self._pending.popleft()
                self._durable += len(chunk)
                self._written.notify_all()

    # ------------------------------------------------------------------ reading (flush first)

    def search(self, query: AuditQuery) -> Any:
        self.flush()
        return super().search(query)

    def count(self, query: AuditQuery) -> int:
        self.flush()
        return super().count(query)

    def read(self, event_id: str) -> Any:
        self.flush()
        return super().read(event_id)

    def export(self, query: AuditQuery, batch: int = 1000) -> Iterator[bytes]:
        self.flush()
        return super().export(query, batch)
