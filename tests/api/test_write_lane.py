"""The write lane (service/api/write_lane.py) answers `PUT /api/v1/<kind>/<key>` exactly as the
FastAPI route does: the same requests - created, unchanged, updated, invalid, unknown codes and
references, malformed or non-JSON bodies, missing / refused / patient-confined / other-clinic
tokens, bad keys, an unexpected failure, a rate limit - sent to an app with the lane and to one
without it give the same status, headers and body, and the same audit events; and the lane did
serve them (it is not silently bypassed)."""

from __future__ import annotations

from typing import Any, Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.api import records as records_api
from service.api import write_lane
from service.config import Settings
from service.store.audit import AuditQuery
from service.usecases import Services
from tests import factories as f
from tests.tokens import bearer

SETUP = ("clinics", "practitioners", "locations", "patients", "enrollments")
COMPARED_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed", "cache-control", "location")


class Served:
    def __init__(self, lane: bool, tmp_path: Any, rate_limit: int = 0) -> None:
        settings = Settings(database_url=f"sqlite:///{tmp_path / ('lane' if lane else 'routed')}.sqlite3",
                            rate_limit_per_minute=rate_limit, rate_limit_burst=3 if rate_limit else None)
        self.services = Services(settings=settings)
        self.services.migrate()
        self.client = TestClient(create_app(services=self.services, write_lane=lane), raise_server_exceptions=False)

    def put(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        response = self.client.put(path, **kwargs)
        headers = {h: response.headers[h] for h in COMPARED_HEADERS if h in response.headers}
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return response.status_code, headers, body

    def audit(self) -> list[tuple]:
        log = self.services.audit_log
        log.flush()
        events = [orjson.loads(line) for line in log.export(AuditQuery())]
        return sorted(
            (e["action"], e["outcome"], tuple(c["code"] for c in e.get("subtype", [])),
             tuple(sorted(str(x.get("what", {}).get("reference") or x.get("what", {}).get("identifier", {}).get("value"))
                          for x in e.get("entity", []))))
            for e in events
        )


@pytest.fixture
def pair(tmp_path) -> Iterator[tuple[Served, Served]]:  # type: ignore[no-untyped-def]
    lane, routed = Served(True, tmp_path), Served(False, tmp_path)
    with lane.client, routed.client:
        yield lane, routed
    lane.services.close()
    routed.services.close()


@pytest.fixture
def lane_calls(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    real = write_lane.RecordWriteLane._serve

    async def counting(self, route, kind, key, scope, receive, send):  # type: ignore[no-untyped-def]
        calls.append(key)
        await real(self, route, kind, key, scope, receive, send)

    monkeypatch.setattr(write_lane.RecordWriteLane, "_serve", counting)
    return calls


def cases() -> list[tuple[str, str, dict[str, Any]]]:
    admin = bearer()
    session = f.FACTORIES["administration-sessions"]()
    key = session["id"]
    clinic = session["clinic_id"]
    path = f"/api/v1/administration-sessions/{key}"
    return [
        *[(kind, f"/api/v1/{kind}/{f.FACTORIES[kind]()['id']}", {"json": f.FACTORIES[kind](), "headers": admin}) for kind in SETUP],
        ("created", path, {"json": session, "headers": admin}),
        ("unchanged", path, {"json": session, "headers": admin}),
        ("updated", path, {"json": {**session, "lot_number": "LOT-2"}, "headers": admin}),
        ("no id in the body", path, {"json": {k: v for k, v in session.items() if k != "id"}, "headers": admin}),
        ("id differs from the key", path, {"json": {**session, "id": "other-key"}, "headers": admin}),
        ("invalid values", path, {"json": {**session, "weight_kg": -3, "route": "rectal"}, "headers": admin}),
        ("unknown code", path, {"json": {**session, "ndc": "00000-000-00"}, "headers": admin}),
        ("missing reference", path, {"json": {**session, "patient_id": "nobody"}, "headers": admin}),
        ("malformed JSON", path, {"content": b"{not json", "headers": {**admin, "Content-Type": "application/json"}}),
        ("JSON array", path, {"content": b"[1]", "headers": {**admin, "Content-Type": "application/json"}}),
        ("empty body", path, {"content": b"", "headers": {**admin, "Content-Type": "application/json"}}),
        ("wrong content type", path, {"content": b"a,b", "headers": {**admin, "Content-Type": "text/csv"}}),
        ("too deep", path, {"content": b"[" * 80 + b"]" * 80, "headers": {**admin, "Content-Type": "application/json"}}),
        ("no token", path, {"json": session}),
        ("bad token", path, {"json": session, "headers": {"Authorization": "Bearer not-a-token"}}),
        ("billing role", path, {"json": session, "headers": bearer(roles=("billing",), clinic=clinic)}),
        ("patient-confined", path, {"json": session, "headers": bearer("patient/*.rs", clinic=clinic, patient="p-1")}),
        ("other clinic", path, {"json": session, "headers": bearer(clinic="another-clinic")}),
        ("bad key", "/api/v1/administration-sessions/-bad key", {"json": session, "headers": admin}),
        ("unknown kind", f"/api/v1/no-such-kind/{key}", {"json": session, "headers": admin}),
    ]


def test_the_lane_answers_every_case_as_the_route_does(pair, lane_calls) -> None:  # type: ignore[no-untyped-def]
    lane, routed = pair
    for name, path, kwargs in cases():
        through_lane, through_route = lane.put(path, **kwargs), routed.put(path, **kwargs)
        assert through_lane == through_route, name
        assert through_lane[0] != 500, (name, through_lane)
    assert lane.audit() == routed.audit()
    # all went through the lane but the bad key and the unknown kind (left to FastAPI) and the
    # too-deep body (refused by the JSON depth middleware outside the lane)
    assert len(lane_calls) == len(cases()) - 3


def test_an_unexpected_failure_is_the_same_500_problem(pair, lane_calls, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lane, routed = pair
    for kind in SETUP:
        for served in pair:
            assert served.put(f"/api/v1/{kind}/{f.FACTORIES[kind]()['id']}", json=f.FACTORIES[kind](), headers=bearer())[0] == 201

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(records_api, "put_record", broken)
    session = f.FACTORIES["administration-sessions"]()
    path = f"/api/v1/administration-sessions/{session['id']}"
    through_lane, through_route = (s.put(path, json=session, headers=bearer()) for s in pair)
    incidents = [answer[2].pop("instance") for answer in (through_lane, through_route)]  # one per failure
    assert incidents[0] != incidents[1] and all(i.startswith("urn:uuid:") for i in incidents)
    assert through_lane == through_route and through_lane[0] == 500
    assert through_lane[2]["status"] == 500 and "disk on fire" not in orjson.dumps(through_lane[2]).decode()
    assert lane.audit() == routed.audit()
    assert session["id"] in lane_calls


def test_the_rate_limit_counts_lane_requests_like_routed_ones(tmp_path, lane_calls) -> None:  # type: ignore[no-untyped-def]
    lane, routed = Served(True, tmp_path, rate_limit=60), Served(False, tmp_path, rate_limit=60)
    with lane.client, routed.client:
        session = f.FACTORIES["clinics"]()
        answers = [[s.put(f"/api/v1/clinics/{session['id']}", json=session, headers=bearer())[:2] for _ in range(5)]
                   for s in (lane, routed)]
    lane.services.close()
    routed.services.close()
    assert answers[0] == answers[1]
    assert [status for status, _ in answers[0]] == [201, 200, 200, 429, 429]
    assert "retry-after" in answers[0][3][1]

