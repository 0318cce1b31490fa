"""FHIR Bundles assembled from stored JSON bytes (no model objects on the read path): the
envelope is serialized once with orjson and every entry's `resource` is the stored canonical
JSON spliced in as it is."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..store.repository import format_instant


@dataclass(frozen=True)
class BundleEntry:
    """One entry: `resource` is raw JSON bytes (or None), the rest plain JSON-ready values."""

    resource: bytes | None
    full_url: str | None = None
    search_mode: str | None = None
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        parts: list[bytes] = []
        if self.full_url is not None:
            parts.append(b'"fullUrl":' + orjson.dumps(self.full_url))
        if self.resource is not None:
            parts.append(b'"resource":' + self.resource)
        if self.search_mode is not None:
            parts.append(b'"search":' + orjson.dumps({"mode": self.search_mode}))
        if self.request is not None:
            parts.append(b'"request":' + orjson.dumps(self.request))
        if self.response is not None:
            parts.append(b'"response":' + orjson.dumps(self.response))
        return b"{" + b",".join(parts) + b"}"


@dataclass
class Bundle:
    type: str
    entries: list[BundleEntry] = field(default_factory=list)
    total: int | None = None
    links: list[tuple[str, str]] = field(default_factory=list)
    timestamp: dt.datetime | None = None

    def to_bytes(self) -> bytes:
        now = self.timestamp or dt.datetime.now(dt.timezone.utc)
        head: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": format_instant(now)},
            "type": self.type,
        }
        if self.total is not None:
            head["total"] = self.total
        if self.links:
            head["link"] = [{"relation": r, "url": u} for r, u in self.links]
        envelope = orjson.dumps(head)
        if not self.entries:
            return envelope
        return envelope[:-1] + b',"entry":[' + b",".join(e.to_bytes() for e in self.entries) + b"]}"
