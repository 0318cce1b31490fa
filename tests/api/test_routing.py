"""Gated routers (service/api/routing.py): a router refuses paths outside its gate without
trying its routes, and the app still answers every path as before (404 for unknown ones)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.routing import GatedRouter


def test_a_gated_router_serves_its_paths_and_leaves_others_to_the_next_router() -> None:
    app = FastAPI()
    tried: list[str] = []
    gated = GatedRouter(gate="/api/v1/patients")

    @gated.get("/api/v1/patients/{key}")
    async def patient(key: str) -> dict:
        tried.append(key)
        return {"patient": key}

    catch_all = GatedRouter(gate="/api")

    @catch_all.get("/api/{rest:path}")
    async def anything(rest: str) -> dict:
        return {"rest": rest}

    app.include_router(gated)
    app.include_router(catch_all)
    client = TestClient(app)
    assert client.get("/api/v1/patients/pt-1").json() == {"patient": "pt-1"}
    assert client.get("/api/v1/sessions/s-1").json() == {"rest": "v1/sessions/s-1"}
    assert client.get("/other").status_code == 404
    assert client.post("/api/v1/patients/pt-1").status_code == 405  # gate passed, method refused
    assert tried == ["pt-1"]
