"""Record writes run in their own bounded pool (service/api/offload.py, `write_pool`;
`Settings.write_concurrency`): no more of them run at once than the setting allows, the rest
wait their turn and then succeed, and a full write pool does not hold back reads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from service.api import create_app
from service.api import records as records_api
from service.api.offload import write_pool
from service.config import Settings
from service.usecases import Services
from tests import factories as f
from tests.tokens import bearer


def test_one_pool_per_size_with_that_many_threads() -> None:
    assert write_pool(2) is write_pool(2) and write_pool(3) is not write_pool(2)
    assert write_pool(2)._max_workers == 2
    assert write_pool(2).submit(lambda: threading.current_thread().name).result(5).startswith("api-write")


def test_the_default_is_one_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("service.config.usable_cores", lambda: 6)
    assert Settings(database_url="sqlite:///x.sqlite3").write_concurrency == 6
    monkeypatch.setenv("WRITE_CONCURRENCY", "12")
    assert Settings(database_url="sqlite:///x.sqlite3").write_concurrency == 12
    monkeypatch.setenv("WRITE_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="write_concurrency"):
        Settings(database_url="sqlite:///x.sqlite3")


@pytest.mark.parametrize("lane", [True, False], ids=["write lane", "FastAPI route"])
def test_writes_beyond_the_limit_wait_and_reads_go_past_them(tmp_path, monkeypatch: pytest.MonkeyPatch, lane: bool) -> None:  # type: ignore[no-untyped-def]
    services = Services(settings=Settings(database_url=f"sqlite:///{tmp_path / 'pool.sqlite3'}", write_concurrency=2,
                                          rate_limit_per_minute=0))
    services.migrate()
    app = create_app(services=services, write_lane=lane)
    headers = bearer()
    lock, release, two_running = threading.Lock(), threading.Event(), threading.Event()
    running = {"now": 0, "most": 0}
    real = records_api.put_record

    def held_put_record(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            if running["now"] == 2:
                two_running.set()
        try:
            assert release.wait(10), "the test never released the writes"
            return real(*args, **kwargs)
        finally:
            with lock:
                running["now"] -= 1

    async def main() -> tuple[list[int], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            assert (await client.put(f"/api/v1/clinics/{f.CLINIC}", json=f.clinic())).status_code == 201
            monkeypatch.setattr(records_api, "put_record", held_put_record)
            writes = [
                asyncio.ensure_future(client.put(f"/api/v1/patients/p-{i}", json=f.patient(id=f"p-{i}", mrn=f"MRN-{i}")))
                for i in range(6)
            ]
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, two_running.wait, 10)
            read = await client.get(f"/api/v1/clinics/{f.CLINIC}")  # while both write threads are held
            release.set()
            statuses = [r.status_code for r in await asyncio.gather(*writes)]
            return statuses, read.status_code

    try:
        statuses, read_status = asyncio.run(main())
    finally:
        release.set()
        services.close()
    assert read_status == 200
    assert statuses == [201] * 6
    assert running["most"] == 2
