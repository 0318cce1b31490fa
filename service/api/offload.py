"""Blocking work (database transactions, signature checks) off the event loop: `in_thread`.

Starlette's `run_in_threadpool` goes through anyio (a capacity limiter, a cancel scope and
run-variables per call); profiling the session write (docs/decisions/0011) put that hop at
about 6 % of the server's CPU. `in_thread` hands the call to a plain thread pool of the same
size (anyio's default: 40 threads) with the caller's context variables, as anyio does.

Cancellation: when the awaiting request is cancelled (the client went away), the call still
runs to its end in its thread - a transaction is committed or rolled back whole, never cut
off - and its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")

THREADS = 40
_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="api-worker")


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a worker thread, with this task's context variables."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool, call)
