"""An in-process FHIR server for worker unit tests (httpx.MockTransport): PUT by id or by
conditional identifier (assigning its own ids), DELETE, transactions, referential integrity,
and a hook to refuse resources. Integration tests use the real peers instead."""

from __future__ import annotations

import itertools
import re
import threading
from typing import Any, Callable

import httpx
import orjson

from service.sync import bundles


class FakeFhir:
    def __init__(self, *, transactions: bool = True, assign_ids: bool = False, max_entries: int | None = None,
                 max_conditional: int | None = None, enforce_references: bool = True) -> None:
        self.transactions = transactions
        self.assign_ids = assign_ids
        self.max_entries = max_entries
        self.max_conditional = max_conditional
        self.enforce_references = enforce_references
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.refuse: Callable[[dict[str, Any]], str | None] = lambda r: None
        self.fail_next: list[httpx.Response] = []
        self.requests: list[tuple[str, str]] = []
        self.bundles: list[dict[str, Any]] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def metadata(self) -> dict[str, Any]:
        rest: dict[str, Any] = {"mode": "server", "interaction": [{"code": "transaction"}] if self.transactions else [],
                                "resource": [{"type": t, "conditionalUpdate": True} for t in TYPES]}
        ext = []
        if self.max_entries:
            ext.append({"url": "https://fake.example/max-transaction-entries", "valueInteger": self.max_entries})
        if self.max_conditional:
            ext.append({"url": "https://fake.example/max-conditional-entries", "valueInteger": self.max_conditional})
        if ext:
            rest["extension"] = ext
        return {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [rest]}

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            path = request.url.path.split("/fhir", 1)[1].strip("/")
            self.requests.append((request.method, path))
            if self.fail_next:
                return self.fail_next.pop(0)
            if path == "metadata":
                return httpx.Response(200, json=self.metadata())
            if request.method == "POST" and path == "":
                return self._transaction(orjson.loads(request.content))
            if request.method == "PUT":
                url = path + (("?" + request.url.query.decode()) if request.url.query else "")
                status, body = self._put(url, orjson.loads(request.content))
                return httpx.Response(status, json=body)
            if request.method == "DELETE":
                t, i = path.split("/")
                self.resources.pop((t, i), None)
                return httpx.Response(204)
            return httpx.Response(404)

    def _outcome(self, text: str) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}]}

    def _put(self, url: str, resource: dict[str, Any], pending: set[tuple[str, str]] = frozenset()) -> tuple[int, dict]:  # type: ignore[assignment]
        reason = self.refuse(resource)
        if reason:
            return 422, self._outcome(reason)
        if self.enforce_references:
            for ref in bundles.references(resource):
                if ref not in self.resources and ref not in pending:
                    return 400, self._outcome(f"reference {ref[0]}/{ref[1]} does not resolve")
        if "?" in url:
            from urllib.parse import unquote

            t, query = url.split("?", 1)
            param, _, token = query.partition("=")
            system, _, value = unquote(token).partition("|")
            if param == "identifier":
                matches = [k for k, r in self.resources.items() if k[0] == t and any(
                    i.get("system") == system and i.get("value") == value for i in _listed(r.get("identifier")))]
            else:
                matches = [k for k, r in self.resources.items() if k[0] == t and any(
                    g.get("system") == system and g.get("code") == value for g in (r.get("meta") or {}).get("tag") or [])]
            key = matches[0] if matches else (t, str(next(self._ids)))
        else:
            t, i = url.split("/")
            if self.assign_ids:
                return 405, self._outcome("this server assigns ids")
            key = (t, i)
        self.versions[key] = self.versions.get(key, 0) + 1
        stored = {**resource, "id": key[1], "meta": {**(resource.get("meta") or {}), "versionId": str(self.versions[key])}}
        self.resources[key] = stored
        return (201 if self.versions[key] == 1 else 200), stored

    def _transaction(self, bundle: dict[str, Any]) -> httpx.Response:
        if not self.transactions:
            return httpx.Response(400, json=self._outcome("no transactions"))
        self.bundles.append(bundle)
        entries = bundle["entry"]
        if self.max_entries and len(entries) > self.max_entries:
            return httpx.Response(400, json=self._outcome("too many entries"))
        conditional = sum("?" in e["request"]["url"] for e in entries)
        if self.max_conditional and conditional > self.max_conditional:
            return httpx.Response(400, json=self._outcome("too many conditional entries"))
        snapshot = (dict(self.resources), dict(self.versions))
        pending = {tuple(e["request"]["url"].split("/")) for e in entries if e["request"]["method"] == "PUT" and "?" not in e["request"]["url"]}
        out = []
        for entry in entries:
            req = entry["request"]
            if req["method"] == "DELETE":
                self.resources.pop(tuple(req["url"].split("/")), None)
                out.append({"response": {"status": "204 No Content"}})
                continue
            status, body = self._put(req["url"], entry["resource"], pending)  # type: ignore[arg-type]
            if status >= 300:
                self.resources, self.versions = snapshot
                return httpx.Response(status, json=body)
            out.append({"response": {"status": f"{status}", "location": f"{body['resourceType']}/{body['id']}/_history/{body['meta']['versionId']}"}})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": out})


def _listed(value: Any) -> list[dict[str, Any]]:
    return [value] if isinstance(value, dict) else list(value or [])


TYPES = ("Patient", "Organization", "Practitioner", "Location", "Encounter", "Observation", "Procedure", "Condition",
         "MedicationAdministration", "MedicationRequest", "Medication", "QuestionnaireResponse", "Provenance", "Flag",
         "EpisodeOfCare", "CarePlan", "AdverseEvent", "Coverage", "MedicationStatement")
_ = re
