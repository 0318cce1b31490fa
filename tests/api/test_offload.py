"""`in_thread` (service/api/offload.py): results and exceptions come back to the awaiting
task, context variables travel with the call, it runs off the event loop's thread, and a
cancelled caller does not cut the call short."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from service.api.offload import in_thread

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_the_result_comes_back_and_the_call_ran_in_another_thread() -> None:
    async def main() -> tuple[int, str]:
        return await in_thread(lambda a, b=0: a + b, 2, b=3), await in_thread(lambda: threading.current_thread().name)

    total, thread = asyncio.run(main())
    assert total == 5 and thread.startswith("api-worker") and thread != threading.current_thread().name


def test_an_exception_is_raised_in_the_awaiting_task() -> None:
    def fail() -> None:
        raise LookupError("no such record")

    async def main() -> None:
        await in_thread(fail)

    with pytest.raises(LookupError, match="no such record"):
        asyncio.run(main())


def test_context_variables_travel_with_the_call() -> None:
    async def main() -> str:
        REQUEST_ID.set("req-42")
        return await in_thread(REQUEST_ID.get)

    assert asyncio.run(main()) == "req-42"


def test_a_cancelled_caller_does_not_cut_the_call_short() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(5)
        finished.set()

    async def main() -> None:
        task = asyncio.ensure_future(in_thread(work))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    asyncio.run(main())
    assert finished.wait(5)  # the call ran to its end after its caller was gone
