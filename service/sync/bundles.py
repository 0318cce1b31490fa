"""Pure functions that shape what is sent: references a resource makes, dependency order,
chunking to the target's limits, reference rewriting to a target's own ids, the business
identifier for conditional updates, and transaction Bundles built from stored JSON bytes
(client-id targets get the stored bytes spliced in unchanged: no re-serialisation).
"""

from __future__ import annotations

import heapq
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import orjson

from .client import conditional_url

Key = tuple[str, str]

_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
_URN_NAMESPACE = uuid.UUID("0b9c2a3e-5c1d-4f7a-9a77-3b1c6f0e2d41")


def references(resource: Any) -> set[Key]:
    """Every relative literal reference (`Type/id`) in a resource, contained ones excluded."""
    found: set[Key] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "reference" and isinstance(value, str):
                    match = _RELATIVE.match(value)
                    if match:
                        found.add((match.group(1), match.group(2)))
                elif key != "contained":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(resource)
    return found


_REFERENCE_BYTES = re.compile(rb'"reference":"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"')


def references_in_json(data: bytes) -> set[Key]:
    """`references()` straight from compact JSON bytes (as the store keeps them), without
    parsing: the hot path of the worker. Contained resources are not told apart here (a
    reference from inside one only adds an ordering constraint, never a wrong send)."""
    return {(m.group(1).decode(), m.group(2).decode()) for m in _REFERENCE_BYTES.finditer(data)}


def rewrite_references(resource: Any, mapping: Callable[[Key], str | None]) -> Any:
    """A copy with `Type/id` references replaced by `mapping(key)` where it returns a value."""
    if isinstance(resource, dict):
        out = {}
        for key, value in resource.items():
            if key == "reference" and isinstance(value, str):
                match = _RELATIVE.match(value)
                replacement = mapping((match.group(1), match.group(2))) if match else None
                out[key] = replacement if replacement is not None else value
            elif key == "contained":
                out[key] = value
            else:
                out[key] = rewrite_references(value, mapping)
        return out
    if isinstance(resource, list):
        return [rewrite_references(v, mapping) for v in resource]
    return resource


def dependency_order(keys: Sequence[Key], refs: dict[Key, set[Key]], rank: dict[Key, int]) -> list[Key]:
    """Topological order of `keys` (a resource after those it refers to within `keys`); ties
    and cycles broken by `rank` (outbox order), so the result is deterministic."""
    members = set(keys)
    deps = {k: {r for r in refs.get(k, ()) if r in members and r != k} for k in keys}
    users: dict[Key, list[Key]] = {k: [] for k in keys}
    for k, ds in deps.items():
        for d in ds:
            users[d].append(k)
    remaining = {k: len(ds) for k, ds in deps.items()}
    ready = [(rank.get(k, 0), k) for k, n in remaining.items() if n == 0]
    heapq.heapify(ready)
    order: list[Key] = []
    done: set[Key] = set()
    while len(order) < len(keys):
        if not ready:  # a cycle: release the earliest remaining resource
            k = min((k for k in keys if k not in done), key=lambda k: (rank.get(k, 0), k))
            remaining[k] = 0
            heapq.heappush(ready, (rank.get(k, 0), k))
        _, k = heapq.heappop(ready)
        if k in done:
            continue
        done.add(k)
        order.append(k)
        for user in users[k]:
            if user not in done:
                remaining[user] -= 1
                if remaining[user] == 0:
                    heapq.heappush(ready, (rank.get(user, 0), user))
    return order


def chunk(
    ordered: Sequence[Key], size: int, refs: dict[Key, set[Key]] | None = None, *, split_on_internal_refs: bool = False,
    conditional_limit: int | None = None, is_conditional: Callable[[Key], bool] | None = None,
) -> list[list[Key]]:
    """Split a dependency-ordered list into chunks of at most `size` entries (and at most
    `conditional_limit` conditional entries). With `split_on_internal_refs`, a resource never
    shares a chunk with one it refers to (for targets whose ids we only learn from the
    response), so each chunk's references are all known before it is sent."""
    chunks: list[list[Key]] = []
    current: list[Key] = []
    members: set[Key] = set()
    conditional = 0
    for key in ordered:
        cond = bool(is_conditional and is_conditional(key))
        full = len(current) >= size or (cond and conditional_limit is not None and conditional >= conditional_limit)
        clash = split_on_internal_refs and refs is not None and bool(refs.get(key, set()) & members)
        if current and (full or clash):
            chunks.append(current)
            current, members, conditional = [], set(), 0
        current.append(key)
        members.add(key)
        conditional += cond
    if current:
        chunks.append(current)
    return chunks


@dataclass
class PlannedChunk:
    """One request's worth of keys, and the chunks that must be through before it is sent."""

    index: int
    keys: list[Key]
    group: str
    after: set[int]


def plan_chunks(
    ordered: Sequence[Key], group_of: Callable[[Key], str], size: int, refs: dict[Key, set[Key]] | None = None, *,
    split_on_internal_refs: bool = False, conditional_limit: int | None = None,
    is_conditional: Callable[[Key], bool] | None = None, after_all: Iterable[int] = (), first_index: int = 0,
) -> list[PlannedChunk]:
    """Chunk a dependency-ordered list per group (partition), for sending groups concurrently.

    A group's chunks are sent one after another (each is `after` the group's previous one), and a
    chunk is `after` every chunk holding something it refers to that comes before it in
    `ordered` (references to later keys are cycles, broken as `dependency_order` broke them).
    A chunk another group's key refers to is closed at that point, so the graph has no cycles:
    every chunk waits only on chunks closed before it. Limits as in `chunk`."""
    chunks: list[PlannedChunk] = []
    open_by_group: dict[str, PlannedChunk] = {}
    last_by_group: dict[str, int] = {}
    members: dict[int, set[Key]] = {}
    conditional: dict[int, int] = {}
    chunk_of: dict[Key, int] = {}
    base_after = set(after_all)

    def close(group: str) -> None:
        open_by_group.pop(group, None)

    for key in ordered:
        group = group_of(key)
        deps = refs.get(key, set()) if refs is not None else set()
        placed = {chunk_of[d] for d in deps if d in chunk_of}
        for index in placed:  # something another group's open chunk holds: that chunk is complete now
            other = chunks[index - first_index]
            if other.group != group and open_by_group.get(other.group) is other:
                close(other.group)
        cond = bool(is_conditional and is_conditional(key))
        current = open_by_group.get(group)
        if current is not None:
            full = len(current.keys) >= size or (
                cond and conditional_limit is not None and conditional[current.index] >= conditional_limit
            )
            clash = split_on_internal_refs and bool(deps & members[current.index])
            if full or clash:
                close(group)
                current = None
        if current is None:
            index = first_index + len(chunks)
            after = set(base_after)
            if group in last_by_group:
                after.add(last_by_group[group])
            current = PlannedChunk(index, [], group, after)
            chunks.append(current)
            open_by_group[group] = current
            last_by_group[group] = index
            members[index] = set()
            conditional[index] = 0
        current.after.update(i for i in placed if i != current.index)
        current.keys.append(key)
        members[current.index].add(key)
        conditional[current.index] += cond
        chunk_of[key] = current.index
    return chunks


def business_identifier(resource: dict[str, Any]) -> tuple[str, str] | None:
    """The identifier to match on: the first with both system and value."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    for ident in identifiers or []:
        if isinstance(ident, dict) and isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str):
            return ident["system"], ident["value"]
    return None


SYNC_TAG_SYSTEM = "http://ketamine-interop.example.org/fhir/CodeSystem/sync-resource-id"
"""meta.tag system carrying our id, to match resources without a business identifier."""

Match = tuple[str, str]  # (search parameter, token), e.g. ("identifier", "system|value")


def match_for(resource: dict[str, Any]) -> tuple[dict[str, Any], Match]:
    """The resource and what a conditional update matches it on: its business identifier, or
    (for resources without one, e.g. Provenance, which has no identifier element) a `meta.tag`
    carrying our id, matched with `_tag`."""
    found = business_identifier(resource)
    if found is not None:
        return resource, ("identifier", f"{found[0]}|{found[1]}")
    copy = dict(resource)
    meta = dict(copy.get("meta") or {})
    tag = {"system": SYNC_TAG_SYSTEM, "code": str(resource["id"])}
    meta["tag"] = [t for t in meta.get("tag") or [] if t.get("system") != SYNC_TAG_SYSTEM] + [tag]
    copy["meta"] = meta
    return copy, ("_tag", f"{SYNC_TAG_SYSTEM}|{resource['id']}")


def for_server_ids(resource: dict[str, Any], mapping: Callable[[Key], str | None]) -> tuple[bytes, Match]:
    """A resource prepared for an id-assigning target: references to resources it already has
    rewritten to its ids, our id and version meta removed, and what to match it on."""
    body, match = match_for(resource)
    body = rewrite_references(body, lambda key: f"{key[0]}/{mapping(key)}" if mapping(key) else None)
    body.pop("id", None)
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        body["meta"] = meta
    else:
        body.pop("meta", None)
    return orjson.dumps(body), match


def urn_for(key: Key) -> str:
    return f"urn:uuid:{uuid.uuid5(_URN_NAMESPACE, f'{key[0]}/{key[1]}')}"


@dataclass(frozen=True)
class BundleEntry:
    key: Key
    method: str  # PUT | DELETE
    url: str
    body: bytes | None = None
    full_url: str | None = None


def put_entry(base_url: str, key: Key, body: bytes) -> BundleEntry:
    return BundleEntry(key, "PUT", f"{key[0]}/{key[1]}", body, f"{base_url}/{key[0]}/{key[1]}")


def conditional_put_entry(key: Key, body: bytes, match: Match) -> BundleEntry:
    return BundleEntry(key, "PUT", conditional_url(key[0], match), body, urn_for(key))


def delete_entry(key: Key, target_id: str) -> BundleEntry:
    return BundleEntry(key, "DELETE", f"{key[0]}/{target_id}")


def transaction_bundle(entries: Iterable[BundleEntry]) -> bytes:
    """A transaction Bundle; resource bytes are spliced in as they are."""
    parts = []
    for entry in entries:
        request = orjson.dumps({"method": entry.method, "url": entry.url})
        piece = b"{"
        if entry.full_url:
            piece += b'"fullUrl":' + orjson.dumps(entry.full_url) + b","
        if entry.body is not None:
            piece += b'"resource":' + entry.body + b","
        piece += b'"request":' + request + b"}"
        parts.append(piece)
    return b'{"resourceType":"Bundle","type":"transaction","entry":[' + b",".join(parts) + b"]}"
