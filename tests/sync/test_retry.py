"""Retry policy, Retry-After parsing and the circuit breaker (frozen clock, no sleeping)."""

from __future__ import annotations

import datetime as dt

import pytest

from service.sync.retry import CircuitBreaker, RetryPolicy, is_temporary_status, parse_retry_after

NOW = dt.datetime(2026, 3, 2, 9, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # a non-UTC frozen clock


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_temporary_statuses(status: int) -> None:
    assert is_temporary_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422, 501])
def test_other_statuses_are_not_temporary(status: int) -> None:
    assert not is_temporary_status(status)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("1.5") == 1.5
    # an HTTP date 90 s after the frozen clock (which is in UTC-5)
    assert parse_retry_after("Mon, 02 Mar 2026 14:01:30 GMT", now=NOW) == 90.0
    assert parse_retry_after("Mon, 02 Mar 2026 13:00:00 GMT", now=NOW) == 0.0  # in the past: no wait
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_full_jitter_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0, minimum_seconds=0.0)
    top = lambda: 1.0  # noqa: E731 - the largest jitter draw
    assert policy.delay(1, rng=top) == pytest.approx(1.0)
    assert policy.delay(2, rng=top) == pytest.approx(2.0)
    assert policy.delay(5, rng=top) == pytest.approx(16.0)
    assert policy.delay(30, rng=top) == pytest.approx(60.0)  # capped
    assert policy.delay(3, rng=lambda: 0.0) == 0.0  # full jitter: anywhere from zero
    draws = iter([0.25, 0.5])
    assert policy.delay(3, rng=lambda: next(draws)) == pytest.approx(1.0)


def test_retry_after_is_a_floor_and_is_capped() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0, max_retry_after=120.0)
    assert policy.delay(1, retry_after=30.0, rng=lambda: 0.5) == 30.0
    assert policy.delay(1, retry_after=10_000.0, rng=lambda: 0.5) == 120.0
    assert policy.delay(8, retry_after=1.0, rng=lambda: 0.9) == pytest.approx(0.9 * 60.0)


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not policy.gives_up(2)
    assert policy.gives_up(3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_breaker_opens_probes_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cooldown_seconds=10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == 10.0
    clock.now += 10.0
    assert breaker.allow()  # the probe
    assert breaker.state == "half-open"
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()


def test_a_failed_probe_reopens_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown_seconds=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.opened_count == 2


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_seconds=5.0, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"
