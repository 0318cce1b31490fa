"""The outbox worker: outbox -> per-target delivery rows -> the EHR, exactly once per resource
at its newest version, in an order the EHR accepts.

One worker process runs `concurrency` lanes (threads). Each lane, per target: takes new outbox
rows into `sync_delivery` (ingest), claims a batch of partitions (patients, or a clinic's
shared resources) with a lease, and sends the batch:

1. Dependencies: a resource's references inside the batch are sent first (topological order
   by reference, ties by outbox order); references outside the batch must already be on the
   target (any version), else the resource waits (deferred, no attempt counted); a reference
   to a dead letter makes it a dead letter too, `blocked_by` that one (replaying the
   dependency replays it).
2. Sending: transaction Bundles chunked to the target's declared limits when its
   CapabilityStatement says it takes transactions, else one PUT per resource; for targets that
   assign their own ids (`id_policy=server`) conditional updates on the business identifier,
   with references rewritten through `sync_id_map`. Deletions are DELETEs.
3. Failures: temporary ones back off (full jitter, Retry-After honoured) and count toward
   the per-target circuit breaker; anything that depends on a failed resource waits with it;
   a transaction refused as a whole (4xx) is re-sent resource by resource so one bad resource
   blocks nothing else; permanent refusals become dead letters with the OperationOutcome text.

PostgreSQL: any number of worker processes share the work (partition leases, SKIP LOCKED).
SQLite: one worker process, enforced with a lock row (a holder whose process on this host is
gone, or whose heartbeat is stale, is replaced).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import orjson

from ..store.audit_buffer import BufferedAuditLog
from ..store.sync_repository import Claim, ClaimedItem, Outcome, SyncStore, utc_now
from . import bundles
from .client import Capabilities, FhirTargetClient, Written
from .errors import FatalTargetError, PermanentError, TemporaryError
from .retry import CircuitBreaker, RetryPolicy
from .settings import SyncSettings
from .targets import TargetConfig

log = logging.getLogger(__name__)

Key = tuple[str, str]
SQLITE_LOCK = "sqlite-single-worker"


class WorkerRefused(RuntimeError):
    """Another worker holds the SQLite single-worker lock."""


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 4
    batch_items: int = 400
    batch_partitions: int = 50
    max_bundle_entries: int = 0
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    defer_seconds: float = 1.0
    dependency_wait_seconds: float = 2.0
    flush_seconds: float = 1.0
    """Record outcomes of a long batch at least this often (a crash then repeats little)."""
    gap_timeout_seconds: float = 120.0
    lock_stale_seconds: float = 60.0
    http_timeout_seconds: float = 30.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_threshold: int = 5
    breaker_cooldown_seconds: float = 30.0

    @classmethod
    def from_settings(cls, s: SyncSettings) -> "WorkerOptions":
        return cls(
            concurrency=s.worker_concurrency, batch_items=s.worker_batch_items, batch_partitions=s.worker_batch_partitions,
            max_bundle_entries=s.worker_max_bundle_entries,
            lease_seconds=s.worker_lease_seconds, poll_seconds=s.worker_poll_seconds, defer_seconds=s.worker_defer_seconds,
            gap_timeout_seconds=s.worker_gap_timeout_seconds, lock_stale_seconds=s.worker_lock_stale_seconds,
            http_timeout_seconds=s.http_timeout_seconds,
            policy=RetryPolicy(base_seconds=s.retry_base_seconds, cap_seconds=s.retry_cap_seconds,
                               max_attempts=s.retry_max_attempts),
            breaker_threshold=s.breaker_threshold, breaker_cooldown_seconds=s.breaker_cooldown_seconds,
        )


class RequestPool:
    """At most `size` requests in flight to one target, shared by the worker's lanes: a lane
    hands a request to the pool only when a slot is free (`try_submit`), and waits on `cond`
    for its requests to finish or a slot to free up (every finish notifies)."""

    def __init__(self, size: int, name: str) -> None:
        self.size = max(1, int(size))
        self.name = name
        self.cond = threading.Condition()
        self.busy = 0
        self._executor: ThreadPoolExecutor | None = None

    def free(self) -> int:
        return self.size - self.busy

    def try_submit(self, work: Callable[[], Any], done: Callable[[Future[Any]], None]) -> Future[Any] | None:
        with self.cond:
            if self.busy >= self.size:
                return None
            self.busy += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
            executor = self._executor

        def finished(future: Future[Any]) -> None:
            with self.cond:
                self.busy -= 1
                done(future)
                self.cond.notify_all()

        try:
            future = executor.submit(work)
        except BaseException:
            with self.cond:
                self.busy -= 1
            raise
        future.add_done_callback(finished)
        return future

    def close(self) -> None:
        with self.cond:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


class TargetRuntime:
    """A target with its client, circuit breaker and (fetched once) capabilities."""

    def __init__(self, config: TargetConfig, client: FhirTargetClient, breaker: CircuitBreaker) -> None:
        self.config = config
        self.client = client
        self.breaker = breaker
        self.requests = RequestPool(config.max_in_flight, f"sync-{config.name}"[:40])
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()
        self._ingest_lock = threading.Lock()
        self.last_ingest = 0.0
        self.caught_up = False

    @property
    def name(self) -> str:
        return self.config.name

    def capabilities(self) -> Capabilities:
        with self._caps_lock:
            if self._caps is None:
                self._caps = self.client.capabilities()
            return self._caps


@dataclass
class RunReport:
    batches: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    fatal: str | None = None

    def add(self, outcomes: Sequence[Outcome]) -> None:
        self.batches += 1
        for o in outcomes:
            if o.kind == "sent":
                self.sent += 1
            elif o.kind == "retry":
                self.retried += 1
            elif o.kind == "dead":
                self.dead += 1
            else:
                self.deferred += 1


@dataclass
class _Batch:
    """The working state of one claimed batch."""

    runtime: TargetRuntime
    claim: Claim
    items: dict[Key, ClaimedItem]
    bodies: dict[Key, dict[str, Any]]
    refs: dict[Key, set[Key]]
    outcomes: dict[Key, Outcome] = field(default_factory=dict)
    failed_until: dict[Key, dt.datetime] = field(default_factory=dict)
    """Keys that did not get through in this batch, with when they may be tried again."""
    id_map: dict[Key, str] = field(default_factory=dict)
    new_ids: dict[Key, str] = field(default_factory=dict)
    renewed_at: float = 0.0
    lease_lost: bool = False
    dead_keys: set[Key] = field(default_factory=set)
    blocked_root: dict[Key, Key] = field(default_factory=dict)
    flushed: set[Key] = field(default_factory=set)
    last_flush: float = 0.0
    in_flight: set[Key] = field(default_factory=set)

    def unflushed(self) -> tuple[list[Outcome], dict[Key, str]]:
        outcomes = [o for k, o in self.outcomes.items() if k not in self.flushed]
        return outcomes, {k: v for k, v in self.new_ids.items() if k not in self.flushed}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


INGEST_BATCH = 150
"""Outbox rows taken in per ingest transaction."""
FIRST_INGEST_BATCH = 100


class WorkSignal:
    """Wakes this process's idle lanes (and lanes waiting on a dependency) when something they
    may be waiting for happened here: a lane recorded outcomes and released partitions, or took
    new outbox rows in. Lanes still poll (`poll_seconds`) for what happens elsewhere: other
    processes' writes, other workers, retry times coming due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def generation(self) -> int:
        return self._generation

    def notify(self, everyone: bool = False) -> None:
        """Wake one waiting lane (it passes the baton on when it finds work: no herd of lanes
        querying for the same batch), or every one (`everyone`, e.g. to stop)."""
        with self._cond:
            self._generation += 1
            if everyone:
                self._cond.notify_all()
            else:
                self._cond.notify()

    def wait(self, seen: int, timeout: float) -> None:
        """Until notified after generation `seen`, at most `timeout` seconds."""
        with self._cond:
            if self._generation == seen:
                self._cond.wait(timeout)


class SyncWorker:
    def __init__(
        self,
        store: SyncStore,
        targets: Sequence[TargetConfig],
        options: WorkerOptions | None = None,
        *,
        worker_id: str | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        client_factory: Callable[[TargetConfig], FhirTargetClient] | None = None,
    ) -> None:
        self.store = store
        self.options = options or WorkerOptions()
        self.worker_id = worker_id or f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.rng = rng
        factory = client_factory or (lambda t: FhirTargetClient(t, timeout=self.options.http_timeout_seconds))
        self.runtimes = [
            TargetRuntime(
                t, factory(t),
                CircuitBreaker(self.options.breaker_threshold, self.options.breaker_cooldown_seconds, clock=monotonic),
            )
            for t in targets
            if t.enabled
        ]
        self.report = RunReport()
        self._report_lock = threading.Lock()
        self._stop = threading.Event()
        self._work = WorkSignal()
        self._holds_lock = False
        self._audit = BufferedAuditLog(store.engine, store.clock, write_lock=store.write_lock)
        """Transmission audit events, group-committed (one write per ~50 ms, not one per batch)."""

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        self._stop.set()
        self._work.notify(everyone=True)

    def acquire_single_worker_lock(self) -> None:
        """SQLite: only one worker process at a time. Raises WorkerRefused when taken."""
        if not self.store.is_sqlite:
            return
        ok, holder = self.store.acquire_lock(
            SQLITE_LOCK, self.worker_id, socket.gethostname()[:255], os.getpid(),
            stale_seconds=self.options.lock_stale_seconds, pid_alive=_pid_alive,
        )
        if not ok:
            raise WorkerRefused(f"another sync worker is running on this SQLite database: {holder}")
        if not self._holds_lock:
            self._holds_lock = True
            released = self.store.release_all_leases()
            if released:
                log.info("took over the SQLite worker lock; %d in-flight items made claimable again", released)

    def run(self, *, until_idle: bool = False, max_seconds: float | None = None) -> RunReport:
        """Run the lanes until stopped (or, with until_idle, until nothing is left to send but
        dead letters)."""
        self.acquire_single_worker_lock()
        for rt in self.runtimes:
            self.store.ensure_cursor(rt.name)
            # the CapabilityStatement is needed by the first batch: fetch it while the outbox is taken in
            threading.Thread(target=_prefetch_capabilities, args=(rt,), name="sync-capabilities", daemon=True).start()
        deadline = self.monotonic() + max_seconds if max_seconds else None
        heartbeat = threading.Thread(target=self._heartbeat, name="sync-heartbeat", daemon=True)
        heartbeat.start()
        lanes = [
            threading.Thread(target=self._lane, args=(index, until_idle, deadline), name=f"sync-lane-{index}", daemon=True)
            for index in range(self.options.concurrency)
        ]
        for lane in lanes:
            lane.start()
        try:
            for lane in lanes:
                while lane.is_alive():
                    lane.join(0.5)
        except KeyboardInterrupt:
            self.stop()
            for lane in lanes:
                lane.join()
        finally:
            self.stop()
            if self._holds_lock:
                self.store.release_lock(SQLITE_LOCK, self.worker_id)
                self._holds_lock = False
            for rt in self.runtimes:
                rt.requests.close()
                rt.client.close()
            self._audit.close()  # pending transmission audit events are written before run() returns
        counts = self.store.status_counts()
        self.report.dead_letters = {t: c.get("dead", 0) for t, c in counts.items() if c.get("dead")}
        return self.report

    def _heartbeat(self) -> None:
        interval = max(0.5, self.options.lock_stale_seconds / 4)
        while not self._stop.wait(interval):
            if self.store.is_sqlite:
                try:
                    self.acquire_single_worker_lock()
                except WorkerRefused:
                    log.error("lost the SQLite worker lock; stopping")
                    self.stop()
                except Exception:  # noqa: BLE001 - a failed heartbeat is retried next interval
                    log.warning("worker heartbeat failed", exc_info=True)

    def _lane(self, index: int, until_idle: bool, deadline: float | None) -> None:
        try:
            while not self._stop.is_set():
                if deadline is not None and self.monotonic() >= deadline:
                    self.stop()
                    return
                seen = self._work.generation()
                worked = 0
                count = len(self.runtimes)
                for offset in range(count):
                    rt = self.runtimes[(index + offset) % count]
                    worked += self.step(rt)
                if worked:
                    self._work.notify()  # there may be more: another idle lane looks too
                    continue
                if until_idle and self.idle():
                    self.stop()
                    return
                self._work.wait(seen, self.options.poll_seconds)
        except FatalTargetError as error:
            log.error("sync worker stopping: %s", error)
            self.report.fatal = str(error)
            self.stop()
        except Exception:
            log.exception("sync lane %d crashed", index)
            self.report.fatal = self.report.fatal or "a sync lane crashed (see the log)"
            self.stop()

    def idle(self) -> bool:
        """Nothing left to send on any target (dead letters aside) and the outbox fully taken in."""
        for rt in self.runtimes:
            self.ingest(rt, force=True)
            if not rt.caught_up:  # more to take in: the lanes do that a batch at a time, between claims
                return False
            if self.store.has_active(rt.name):
                return False
        return True

    def ingest(self, rt: TargetRuntime, *, force: bool = False) -> None:
        """Take one batch of the outbox into delivery rows (at most every poll interval while
        caught up; at once while behind, so a backlog is taken in between claims and the first
        requests go out before all of it is in). `force` waits for a lane already at it."""
        now = self.monotonic()
        if not force and rt.caught_up and now - rt.last_ingest < min(0.25, self.options.poll_seconds):
            return
        if not rt._ingest_lock.acquire(blocking=force):
            return
        try:
            # the first batch small: the first requests go out while the rest of a backlog is taken in
            batch = FIRST_INGEST_BATCH if rt.last_ingest == 0.0 else INGEST_BATCH
            result = self.store.ingest(rt.name, rt.config.resource_types or None, batch=batch,
                                       gap_timeout=self.options.gap_timeout_seconds)
            rt.last_ingest = self.monotonic()
            rt.caught_up = result.caught_up
            if result.rows:
                self._work.notify()
        finally:
            rt._ingest_lock.release()

    def step(self, rt: TargetRuntime) -> int:
        """Ingest, claim one batch for `rt` and send it. Returns the number of items handled."""
        if rt.breaker.seconds_until_probe() > 0:
            return 0
        self.ingest(rt)
        claim = self.store.claim(
            rt.name, self.worker_id, max_items=self.options.batch_items,
            max_partitions=self.options.batch_partitions, lease_seconds=self.options.lease_seconds,
        )
        if not claim.items:
            return 0
        outcomes, rest, new_ids = self.process(rt, claim)
        self.store.complete(rt.name, self.worker_id, rest, claim.partitions, new_ids)
        self._work.notify()  # partitions released, outcomes recorded: idle lanes look again
        _audit_transmissions(self._audit, self.store, rt.name, claim, outcomes)  # the audit trail of outbound data
        with self._report_lock:
            self.report.add(outcomes)
        kinds: dict[str, int] = {}
        for o in outcomes:
            kinds[o.kind] = kinds.get(o.kind, 0) + 1
        log.info("sync target %s: batch of %d items: %s", rt.name, len(claim.items), kinds)
        return len(claim.items)

    # ------------------------------------------------------------------ one batch

    def process(self, rt: TargetRuntime, claim: Claim) -> tuple[list[Outcome], list[Outcome], dict[Key, str]]:
        """Send a claimed batch. Returns every outcome, and those (with new target ids) not yet
        recorded: long batches record outcomes as they go (`flush_seconds`)."""
        items = {i.key: i for i in claim.items}
        bodies: dict[Key, dict[str, Any]] = {}
        refs: dict[Key, set[Key]] = {}
        parse = rt.config.id_policy == "server"  # only id-assigning targets need the parsed resource
        for item in claim.items:
            if item.deleted or item.json is None:
                refs[item.key] = set()
            elif parse:
                body = orjson.loads(item.json)
                bodies[item.key] = body
                refs[item.key] = bundles.references(body) - {item.key}
            else:
                refs[item.key] = bundles.references_in_json(item.json) - {item.key}
        batch = _Batch(rt, claim, items, bodies, refs, renewed_at=self.monotonic(), last_flush=self.monotonic())
        now = self.clock()
        try:
            caps = rt.capabilities()
        except TemporaryError as error:
            rt.breaker.record_failure()
            for key in items:
                self._retry(batch, key, error, now)
            return list(batch.outcomes.values()), list(batch.outcomes.values()), {}
        except PermanentError as error:
            raise FatalTargetError(f"target {rt.name}: cannot read its CapabilityStatement ({error.message})") from None

        order = bundles.dependency_order(list(items), refs, {k: i.seq for k, i in items.items()})
        self._check_external_dependencies(batch, order, now)
        if rt.config.id_policy == "server":
            wanted = set(items) | set().union(*refs.values())
            batch.id_map = self.store.id_map(rt.name, wanted)
        upserts = [k for k in order if k not in batch.outcomes and not items[k].deleted]
        deletes = [k for k in reversed(order) if k not in batch.outcomes and items[k].deleted]
        self._run_tasks(batch, self._plan(batch, upserts, deletes, caps), caps)
        rest, new_ids = batch.unflushed()
        return list(batch.outcomes.values()), rest, new_ids

    def _plan(self, batch: _Batch, upserts: list[Key], deletes: list[Key], caps: Capabilities) -> list[_Task]:
        """The batch's requests: transaction chunks (or, without transactions, runs of single
        sends), per partition, each after its partition's previous one and after the chunks
        holding what it refers to; deletions after every upsert, in reverse order."""
        server = batch.runtime.config.id_policy == "server"
        if caps.transactions:
            mode = "transaction"
            if server:
                unsupported = [k for k in upserts if not caps.supports_conditional_update(k[0])]
                for key in unsupported:
                    self._dead(batch, key, PermanentError(None, f"target does not declare conditional update for {key[0]}"))
                upserts = [k for k in upserts if k not in batch.outcomes]
            size = caps.max_transaction_entries
            if self.options.max_bundle_entries:
                size = min(size, self.options.max_bundle_entries)
            if server and caps.max_conditional_entries:  # a transaction with any conditional entry has a lower cap
                size = min(size, caps.max_conditional_entries)
            conditional_limit = caps.max_conditional_entries if server else None
        else:
            mode, size, conditional_limit = "each", 50, None
        items = batch.items
        planned = bundles.plan_chunks(
            upserts, lambda k: items[k].partition_key, size, batch.refs, split_on_internal_refs=server and mode == "transaction",
            conditional_limit=conditional_limit, is_conditional=(lambda k: True) if server else None,
        )
        if deletes:
            planned += bundles.plan_chunks(
                deletes, lambda k: "~deletions", size, after_all=[c.index for c in planned], first_index=len(planned),
            )
        return [_Task(c.index, c.keys, c.after, mode, c.group) for c in planned]

    def _check_external_dependencies(self, batch: _Batch, order: list[Key], now: dt.datetime) -> None:
        external = set().union(*batch.refs.values()) - set(batch.items) if batch.refs else set()
        states = self.store.dependency_states(batch.runtime.name, external) if external else {}
        # A dependency being sent right now (another lane or worker holds it) is usually on the
        # target within a round trip: wait a little, holding our lease, rather than give the
        # whole batch back and claim it again.
        started = self.monotonic()
        while not self._stop.is_set():
            seen = self._work.generation()
            unsent = [s for s in states.values() if s.sent_version_id is None and s.status != "dead"]
            if not unsent or any(s.status != "sending" for s in unsent):
                break
            if self.monotonic() - started >= self.options.dependency_wait_seconds:
                break
            self._work.wait(seen, 0.05)  # woken when a lane here records outcomes
            if not self._lease_ok(batch):
                break
            states = self.store.dependency_states(batch.runtime.name, external)
        now = self.clock()
        blocked: dict[Key, str] = {}
        waiting: set[Key] = set()
        later = now + dt.timedelta(seconds=self.options.defer_seconds)
        wait_until: dict[Key, dt.datetime] = {}
        for key in order:
            for dep in batch.refs[key]:
                if dep in batch.items:
                    if dep in blocked:
                        blocked[key] = blocked[dep]
                    elif dep in waiting:
                        waiting.add(key)
                        wait_until[key] = max(wait_until.get(key, later), wait_until.get(dep, later))
                    continue
                state = states.get(dep)
                if state is None or state.sent_version_id is not None:
                    continue  # not ours to send (or excluded), or already on the target
                if state.status == "dead":
                    blocked[key] = f"{dep[0]}/{dep[1]}"
                else:  # wait for it; no sooner than its own next attempt
                    waiting.add(key)
                    due = state.next_attempt_at if state.status == "retrying" and state.next_attempt_at else later
                    wait_until[key] = max(wait_until.get(key, later), due, later)
            if key in blocked:
                waiting.discard(key)
        for key, dep in blocked.items():
            batch.outcomes[key] = Outcome(
                key, "dead", batch.items[key].version_id, attempts=batch.items[key].attempts,
                error=f"waiting on {dep}, which is a dead letter (replay it to send this too)", blocked_by=dep,
            )
        for key in waiting:
            until = wait_until.get(key, later)
            batch.outcomes[key] = Outcome(key, "defer", batch.items[key].version_id, next_attempt_at=until,
                                          error="waiting for a referenced resource to reach the target")
            batch.failed_until[key] = until

    # ------------------------------------------------------------------ sending

    def _blocked_by_failure(self, batch: _Batch, key: Key) -> bool:
        """Defer `key` if something it refers to did not get through in this batch."""
        failed = [batch.failed_until[d] for d in batch.refs[key] if d in batch.failed_until]
        if not failed:
            return False
        dead = sorted(d for d in batch.refs[key] if d in batch.dead_keys)
        if dead:
            blocker = batch.blocked_root.get(dead[0], dead[0])
            batch.outcomes[key] = Outcome(
                key, "dead", batch.items[key].version_id, attempts=batch.items[key].attempts,
                error=f"waiting on {blocker[0]}/{blocker[1]}, which is a dead letter (replay it to send this too)",
                blocked_by=f"{blocker[0]}/{blocker[1]}",
            )
            batch.dead_keys.add(key)
            batch.blocked_root[key] = blocker
            batch.failed_until[key] = max(failed)
            return True
        until = max(failed)
        batch.outcomes[key] = Outcome(key, "defer", batch.items[key].version_id, next_attempt_at=until)
        batch.failed_until[key] = until
        return True

    def _flush(self, batch: _Batch, *, force: bool = False) -> None:
        """Record the outcomes so far (keeping the partition leases) when the batch is long, or
        at once (`force`) when other partitions may be waiting on them."""
        if batch.lease_lost or (not force and self.monotonic() - batch.last_flush < self.options.flush_seconds):
            return
        outcomes, new_ids = batch.unflushed()
        if outcomes:
            self.store.complete(batch.runtime.name, self.worker_id, outcomes, [], new_ids)
            batch.flushed.update(o.key for o in outcomes)
            self._work.notify(everyone=force)  # lanes waiting on these (as dependencies) look again
        batch.last_flush = self.monotonic()

    def _lease_ok(self, batch: _Batch) -> bool:
        if batch.lease_lost:
            return False
        if self.monotonic() - batch.renewed_at > self.options.lease_seconds / 3:
            if not self.store.renew(batch.runtime.name, self.worker_id, batch.claim.partitions, self.options.lease_seconds):
                log.warning("sync target %s: lease lost; leaving the rest of the batch", batch.runtime.name)
                batch.lease_lost = True
                return False
            batch.renewed_at = self.monotonic()
        return True

    def _breaker_defer(self, batch: _Batch, keys: Sequence[Key]) -> None:
        wait = max(self.options.defer_seconds, batch.runtime.breaker.seconds_until_probe())
        until = self.clock() + dt.timedelta(seconds=wait)
        for key in keys:
            if key not in batch.outcomes:
                batch.outcomes[key] = Outcome(key, "defer", batch.items[key].version_id, next_attempt_at=until,
                                              error="circuit breaker open")
                batch.failed_until[key] = until

    def _retry(self, batch: _Batch, key: Key, error: TemporaryError, now: dt.datetime | None = None) -> None:
        item = batch.items[key]
        attempts = item.attempts + 1
        now = now or self.clock()
        if self.options.policy.gives_up(attempts):
            batch.outcomes[key] = Outcome(key, "dead", item.version_id, attempts=attempts,
                                          error=f"gave up after {attempts} attempts; last: {error.message}")
            batch.failed_until[key] = now + dt.timedelta(days=3650)
            batch.dead_keys.add(key)
            return
        delay = self.options.policy.delay(attempts, error.retry_after, self.rng)
        until = now + dt.timedelta(seconds=delay)
        batch.outcomes[key] = Outcome(key, "retry", item.version_id, attempts=attempts, next_attempt_at=until,
                                      error=error.message)
        batch.failed_until[key] = until

    def _dead(self, batch: _Batch, key: Key, error: PermanentError) -> None:
        item = batch.items[key]
        batch.outcomes[key] = Outcome(key, "dead", item.version_id, attempts=item.attempts + 1, error=error.message)
        batch.failed_until[key] = self.clock() + dt.timedelta(days=3650)
        batch.dead_keys.add(key)

    def _sent(self, batch: _Batch, key: Key, written: Written) -> None:
        item = batch.items[key]
        if batch.runtime.config.id_policy == "server" and written.target_id and not item.deleted:
            batch.id_map[key] = written.target_id
            batch.new_ids[key] = written.target_id
        target_id = written.target_id if not item.deleted else None
        batch.outcomes[key] = Outcome(key, "sent", item.version_id, target_id=target_id,
                                      target_version=written.target_version)

    def _mapped(self, batch: _Batch) -> Callable[[Key], str | None]:
        return lambda key: batch.id_map.get(key)

    def _entry(self, batch: _Batch, key: Key) -> bundles.BundleEntry | None:
        """The Bundle entry for `key`; None for a deletion the target never saw."""
        item = batch.items[key]
        config = batch.runtime.config
        if item.deleted:
            target_id = batch.id_map.get(key) if config.id_policy == "server" else key[1]
            return bundles.delete_entry(key, target_id) if target_id else None
        if config.id_policy == "server":
            body, ident = bundles.for_server_ids(batch.bodies[key], self._mapped(batch))
            return bundles.conditional_put_entry(key, body, ident)
        return bundles.put_entry(batch.runtime.client.base, key, item.json or b"")

    # ------------------------------------------------------------------ requests in flight

    def _run_tasks(self, batch: _Batch, tasks: list[_Task], caps: Capabilities) -> None:
        """Send the planned requests, up to the target's `max_in_flight` at once (shared with the
        other lanes): a task goes when the tasks it is after are through. Outcomes are applied
        here, in the lane's thread, as requests finish; the lease is renewed while they are in
        flight. A lost lease or an open circuit breaker stops new requests; those in flight are
        waited for."""
        rt = batch.runtime
        pool = rt.requests
        by_index = {t.index: t for t in tasks}
        open_tasks = {t.index for t in tasks}
        finished: list[Future[Any]] = []
        in_flight: dict[Future[Any], tuple[_Task, Any]] = {}
        dispatching = True
        wake = max(0.05, min(1.0, self.options.lease_seconds / 6))

        def done(future: Future[Any]) -> None:  # called with pool.cond held
            finished.append(future)

        def ready() -> list[_Task]:
            return [
                by_index[i] for i in sorted(open_tasks)
                if not by_index[i].busy and all(a not in open_tasks for a in by_index[i].after)
            ]

        while True:
            with pool.cond:
                completed, finished[:] = list(finished), []
            shared = False
            for future in completed:
                task, request = in_flight.pop(future)
                task.busy = False
                self._apply(batch, task, request, future)
                if task.finished():
                    open_tasks.discard(task.index)
                shared = shared or task.group.startswith("clinic:")
            if completed:
                # a clinic's shared resources are what other partitions wait on: record them at once
                self._flush(batch, force=shared)
            # renewed while requests are in flight, too: a slow target must not cost the lease
            if (in_flight or (dispatching and open_tasks)) and not self._lease_ok(batch):
                dispatching = False
            while dispatching:
                candidates = ready()
                if not candidates or pool.free() <= 0:
                    break
                progressed = False
                for task in candidates:
                    request = self._next_request(batch, task)
                    if request is None:
                        if task.finished():
                            open_tasks.discard(task.index)
                            progressed = True
                        continue
                    if request is _BREAKER_OPEN:
                        self._breaker_defer(batch, [k for i in sorted(open_tasks) for k in by_index[i].remaining()
                                                    if k not in batch.in_flight])
                        dispatching = False
                        break
                    future = pool.try_submit(self._request_work(batch, request), done)
                    if future is None:  # no free slot after all: try again when one frees up
                        task.unsend(request)
                        break
                    task.busy = True
                    batch.in_flight.update(request.keys)
                    in_flight[future] = (task, request)
                    progressed = True
                    if pool.free() <= 0:
                        break
                if not progressed:
                    break
            if not in_flight and (not dispatching or not open_tasks):
                return
            with pool.cond:
                if not finished and not (dispatching and pool.free() > 0 and ready()):
                    pool.cond.wait(wake)

    def _next_request(self, batch: _Batch, task: _Task) -> _Request | object | None:
        """The task's next request (None when it has nothing more to send), or _BREAKER_OPEN."""
        rt = batch.runtime
        if task.mode == "transaction":
            task.position = len(task.keys)
            keys = [k for k in task.keys if k not in batch.outcomes and not self._blocked_by_failure(batch, k)]
            entries: list[bundles.BundleEntry] = []
            for key in keys:
                entry = self._entry(batch, key)
                if entry is None:
                    self._sent(batch, key, Written(None, None))
                else:
                    entries.append(entry)
            if not entries:
                return None
            if not rt.breaker.allow():
                task.position = 0
                return _BREAKER_OPEN
            return _Request("transaction", entries, 0)
        while task.position < len(task.keys):
            start = task.position
            key = task.keys[task.position]
            task.position += 1
            if key in batch.outcomes or self._blocked_by_failure(batch, key):
                continue
            entry = self._entry(batch, key)
            if entry is None:
                self._sent(batch, key, Written(None, None))
                continue
            if not rt.breaker.allow():
                task.position = start
                return _BREAKER_OPEN
            return _Request("single", [entry], start)
        return None

    def _request_work(self, batch: _Batch, request: _Request) -> Callable[[], Any]:
        """The HTTP part of a request, run on the pool: no batch state is touched there."""
        rt = batch.runtime
        client = rt.client
        server = rt.config.id_policy == "server"
        if request.kind == "transaction":
            body = bundles.transaction_bundle(request.entries)
            return lambda: client.transaction(body)
        entry = request.entries[0]
        key = entry.key

        def single() -> Written:
            if entry.method == "DELETE":
                client.delete(key[0], entry.url.split("/", 1)[1])
                return Written(None, None)
            if server:
                return client.conditional_put(key[0], _match_of(entry), entry.body or b"")
            return client.put(key[0], key[1], entry.body or b"")

        return single

    def _apply(self, batch: _Batch, task: _Task, request: _Request, future: Future[Any]) -> None:
        """Record what a finished request did (in the lane's thread)."""
        rt = batch.runtime
        batch.in_flight.difference_update(request.keys)
        server = rt.config.id_policy == "server"
        try:
            result = future.result()
        except TemporaryError as error:
            rt.breaker.record_failure()
            now = self.clock()
            for entry in request.entries:
                self._retry(batch, entry.key, error, now)
            return
        except PermanentError as error:
            rt.breaker.record_success()
            if request.kind == "transaction":
                log.info("sync target %s: transaction of %d refused (%s); sending one by one",
                         rt.name, len(request.entries), error.status)
                task.mode, task.keys, task.position = "each", request.keys, 0
                return
            key = request.entries[0].key
            log.info("sync target %s: %s/%s refused (HTTP %s)", rt.name, key[0], key[1], error.status)
            self._dead(batch, key, error)
            return
        rt.breaker.record_success()
        if request.kind == "transaction":
            responses = result
            for entry, response in zip(request.entries, responses + [{}] * (len(request.entries) - len(responses))):
                self._sent(batch, entry.key, bundles_written(response, entry, server))
        else:
            self._sent(batch, request.entries[0].key, result)


_BREAKER_OPEN = object()


@dataclass
class _Request:
    kind: str  # transaction | single
    entries: list[bundles.BundleEntry]
    start: int
    """The task position it was taken from (single sends), to give it back unsent."""

    @property
    def keys(self) -> list[Key]:
        return [e.key for e in self.entries]


@dataclass
class _Task:
    """A planned run of a batch: one transaction chunk, or (targets without transactions, and
    a transaction refused as a whole) keys sent one at a time, in order."""

    index: int
    keys: list[Key]
    after: set[int]
    mode: str  # transaction | each
    group: str = ""
    position: int = 0
    busy: bool = False

    def finished(self) -> bool:
        return not self.busy and self.position >= len(self.keys)

    def remaining(self) -> list[Key]:
        return self.keys[self.position:]

    def unsend(self, request: _Request) -> None:
        self.position = 0 if request.kind == "transaction" else request.start


def _prefetch_capabilities(rt: TargetRuntime) -> None:
    try:
        rt.capabilities()
    except Exception:  # noqa: BLE001 - the first batch asks again and handles the error
        pass


def _match_of(entry: bundles.BundleEntry) -> tuple[str, str]:
    from urllib.parse import unquote

    param, _, token = entry.url.split("?", 1)[1].partition("=")
    return param, unquote(token)


def bundles_written(response: dict[str, Any], entry: bundles.BundleEntry, server: bool) -> Written:
    from .client import written_from

    written = written_from(response.get("location"), response.get("etag"))
    if written.target_id is None and not server and entry.method == "PUT":
        written = Written(entry.key[1], written.target_version)
    return written


def _audit_transmissions(
    audit: BufferedAuditLog, store: SyncStore, target: str, claim: Claim, outcomes: Sequence[Outcome]
) -> None:
    """One AuditEvent (DICOM 110106 Export) per patient per batch for what was attempted: the
    resources as references, outcome 0 when all were sent, 8 when any failed. Never raises."""
    from ..store.audit import AuditLog, AuditRecord

    try:
        attempted = {o.key: o for o in outcomes if o.kind in ("sent", "retry", "dead")}
        by_patient: dict[str | None, list[Any]] = {}
        for item in claim.items:
            if (item.resource_type, item.resource_id) in attempted:
                by_patient.setdefault(item.patient_id, []).append(item)
        records = []
        for patient, items in by_patient.items():
            failed = any(attempted[(i.resource_type, i.resource_id)].kind != "sent" for i in items)
            records.append(AuditRecord(
                action="R", outcome="8" if failed else "0", subtype="sync-send", outbound_to=f"sync-target:{target}",
                clinic_id=getattr(items[0], "clinic_id", None), patient_ids=[patient] if patient else [],
                entities=[f"{i.resource_type}/{i.resource_id}/_history/{i.version_id}" for i in items],
            ))
        refused = [record for record in records if not audit.submit(record)]
        if refused:  # the buffer is full or closed: write them now
            with store.write_lock():
                AuditLog(store.engine, store.clock).append(refused)
    except Exception:  # noqa: BLE001 - auditing must not stop delivery; the type is logged, not the data
        log.error("could not record sync audit events for target %s", target)


def open_worker(store: SyncStore, targets: Sequence[TargetConfig], settings: SyncSettings, **kwargs: Any) -> SyncWorker:
    return SyncWorker(store, targets, WorkerOptions.from_settings(settings), **kwargs)
