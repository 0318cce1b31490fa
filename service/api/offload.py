"""Blocking work (database transactions, signature checks) off the event loop: `in_thread`,
and `in_pool` with the bounded pool of domain record writes (`write_pool`).

Starlette's `run_in_threadpool` goes through anyio (a capacity limiter, a cancel scope and
run-variables per call); profiling the session write (docs/decisions/0011) put that hop at
about 6 % of the server's CPU. `in_thread` hands the call to a plain thread pool of the same
size (anyio's default: 40 threads) with the caller's context variables, as anyio does.

Record writes get a pool of their own, `Settings.write_concurrency` threads (one per core by
default): on the API benchmark, 3 writes in flight instead of 8 took PostgreSQL's CPU per
write down and the rate up by ~5-8 %, and 2 instead of 3 another ~6 % once a write was one
statement (docs/decisions/0011, items 20 and 25), and a burst of writes
then queues here instead of holding the shared pool's threads that reads and signature
checks need.

Cancellation: when the awaiting request is cancelled (the client went away), the call still
runs to its end in its thread - a transaction is committed or rolled back whole, never cut
off - and its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")

THREADS = 40
_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="api-worker")


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a worker thread, with this task's context variables."""
    return await in_pool(_pool, fn, *args, **kwargs)


async def in_pool(pool: ThreadPoolExecutor, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in one of `pool`'s threads, with this task's context variables."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


_write_pools: dict[int, ThreadPoolExecutor] = {}
_write_pools_lock = threading.Lock()


def write_pool(size: int) -> ThreadPoolExecutor:
    """The process's pool of `size` threads for record writes (one per size, made on first use,
    so apps of one process with the same setting share it)."""
    pool = _write_pools.get(size)
    if pool is None:
        with _write_pools_lock:
            pool = _write_pools.get(size)
            if pool is None:
                pool = _write_pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="api-write")
    return pool
