"""A FaultProxy that also records what reaches the peer: request bodies (for validating sent
Bundles) and, per resource, requests in flight at the same moment (two workers must never
send the same resource at the same time)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from urllib.parse import unquote, urlsplit

from tests.peers.fault_proxy import FaultProxy


def resource_keys(method: str, target: str, body: bytes) -> list[str]:
    """The resources a request writes: `Type/id` or `Type?identifier=...` for PUT/DELETE,
    each entry's request url for a transaction Bundle POSTed to the base."""
    path = unquote(urlsplit(target).path)
    query = unquote(urlsplit(target).query)
    if method in ("PUT", "DELETE"):
        tail = "/".join(path.rstrip("/").split("/")[-2:]) if not query else path.rstrip("/").split("/")[-1] + "?" + query
        return [tail]
    if method == "POST" and body[:200].find(b'"Bundle"') >= 0:
        try:
            bundle = json.loads(body)
        except ValueError:
            return []
        return [unquote(e.get("request", {}).get("url", "")) for e in bundle.get("entry") or []]
    return []


class RecordingProxy(FaultProxy):
    def __init__(self, *args, keep_bodies: int = 200, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._rec_lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.concurrent_duplicates: list[str] = []
        self.max_in_flight = 0
        self.bundles: list[bytes] = []
        self.keep_bodies = keep_bodies
        self.forwarded_writes = 0

    async def _forward(self, method: str, target: str, headers, body: bytes) -> bytes:  # type: ignore[no-untyped-def]
        keys = resource_keys(method, target, body)
        with self._rec_lock:
            for key in keys:
                if self.in_flight[key]:
                    self.concurrent_duplicates.append(key)
                self.in_flight[key] += 1
            self.max_in_flight = max(self.max_in_flight, sum(1 for v in self.in_flight.values() if v))
            if keys:
                self.forwarded_writes += 1
            if method == "POST" and keys and len(self.bundles) < self.keep_bodies:
                self.bundles.append(body)
        try:
            return await super()._forward(method, target, headers, body)
        finally:
            with self._rec_lock:
                for key in keys:
                    self.in_flight[key] -= 1
                    if not self.in_flight[key]:
                        del self.in_flight[key]
