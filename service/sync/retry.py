"""Failure handling for outbound FHIR calls: which failures are temporary, how long to wait
(exponential backoff with full jitter, `Retry-After` honoured), and a per-target circuit
breaker. Clock and randomness are injectable so tests run with a frozen clock.

Temporary: transport errors (connect/read timeouts, dropped connections), 408, 429, 500, 502,
503, 504. A 401 re-authenticates once (handled by the client). Everything else 4xx is
permanent: the item becomes a dead letter with the server's OperationOutcome text.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_temporary_status(status: int) -> bool:
    return status in TEMPORARY_STATUSES


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None if
    absent or unparseable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        seconds = float(value)
        if seconds >= 0:
            return seconds
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (moment - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)),
    but never less than the server's Retry-After (itself capped at `max_retry_after`)."""

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    max_attempts: int = 25
    max_retry_after: float = 3600.0
    minimum_seconds: float = 0.05

    def delay(self, attempt: int, retry_after: float | None = None, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(0, min(attempt, 60) - 1)))
        wait = max(self.minimum_seconds, rng() * ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


@dataclass
class CircuitBreaker:
    """Per target: opens after `threshold` consecutive failures; after `cooldown` seconds one
    probe is let through (half-open); its success closes the breaker, its failure re-opens it."""

    threshold: int = 5
    cooldown_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    state: str = "closed"  # closed | open | half-open
    opened_at: float = 0.0
    _probing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    opened_count: int = 0

    def allow(self) -> bool:
        """May a request be sent now? In half-open state only one caller (the probe) gets True."""
        with self._lock:
            if self.state == "closed":
                return True
            if self.state == "open":
                if self.clock() - self.opened_at < self.cooldown_seconds:
                    return False
                self.state = "half-open"
                self._probing = False
            if self._probing:
                return False
            self._probing = True
            return True

    def seconds_until_probe(self) -> float:
        with self._lock:
            if self.state != "open":
                return 0.0
            return max(0.0, self.cooldown_seconds - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self.state = "closed"
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == "half-open" or self.failures >= self.threshold:
                if self.state != "open":
                    self.opened_count += 1
                self.state = "open"
                self.opened_at = self.clock()
                self._probing = False
