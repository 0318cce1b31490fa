"""Reference extraction, dependency order, chunking, rewriting and Bundle building."""

from __future__ import annotations

import orjson

from service.sync import bundles
from service.sync.client import parse_capabilities


def test_references_are_relative_literal_ones_outside_contained() -> None:
    resource = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Practitioner/x/_history/2"}, {"reference": "#inline"}],
        "derivedFrom": [{"reference": "urn:uuid:abc"}, {"reference": "https://other.example/fhir/Patient/9"}],
        "contained": [{"resourceType": "Medication", "manufacturer": {"reference": "Organization/o1"}}],
    }
    assert bundles.references(resource) == {("Patient", "p1"), ("Practitioner", "x")}


def test_dependency_order_puts_referenced_resources_first_and_keeps_outbox_order() -> None:
    keys = [("Observation", "o"), ("Encounter", "e"), ("Patient", "p"), ("Organization", "org"), ("Flag", "f")]
    refs = {
        ("Observation", "o"): {("Patient", "p"), ("Encounter", "e")},
        ("Encounter", "e"): {("Patient", "p"), ("Organization", "org")},
        ("Patient", "p"): {("Organization", "org")},
        ("Flag", "f"): {("Patient", "p"), ("Location", "elsewhere")},
    }
    rank = {k: i for i, k in enumerate(keys)}
    order = bundles.dependency_order(keys, refs, rank)
    position = {k: i for i, k in enumerate(order)}
    for key, deps in refs.items():
        for dep in deps & set(keys):
            assert position[dep] < position[key]
    assert order[0] == ("Organization", "org")
    assert sorted(order) == sorted(keys)


def test_dependency_cycles_are_broken_by_outbox_order() -> None:
    keys = [("A", "1"), ("B", "2")]
    refs = {("A", "1"): {("B", "2")}, ("B", "2"): {("A", "1")}}
    assert bundles.dependency_order(keys, refs, {("A", "1"): 0, ("B", "2"): 1}) == keys


def test_chunking_respects_size_conditional_limit_and_internal_references() -> None:
    keys = [("T", str(i)) for i in range(7)]
    assert [len(c) for c in bundles.chunk(keys, 3)] == [3, 3, 1]
    assert [len(c) for c in bundles.chunk(keys, 50, conditional_limit=2, is_conditional=lambda k: int(k[1]) % 2 == 0)] == [
        4, 3,
    ]
    refs = {("T", "2"): {("T", "1")}, ("T", "5"): {("T", "0")}}
    chunks = bundles.chunk(keys, 50, refs, split_on_internal_refs=True)
    assert chunks == [[("T", "0"), ("T", "1")], [("T", "2"), ("T", "3"), ("T", "4"), ("T", "5"), ("T", "6")]]


def test_rewriting_references_to_target_ids() -> None:
    resource = {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1", "display": "x"},
                "partOf": {"reference": "Encounter/e0"}, "contained": [{"subject": {"reference": "Patient/p1"}}]}
    mapping = {("Patient", "p1"): "901"}
    body, ident = bundles.for_server_ids(resource, mapping.get)
    sent = orjson.loads(body)
    assert sent["subject"] == {"reference": "Patient/901", "display": "x"}
    assert sent["partOf"] == {"reference": "Encounter/e0"}  # unknown to the target: left alone
    assert sent["contained"][0]["subject"]["reference"] == "Patient/p1"
    assert "id" not in sent
    assert ident == ("_tag", f"{bundles.SYNC_TAG_SYSTEM}|e1")  # no business identifier: matched on a tag
    assert {"system": bundles.SYNC_TAG_SYSTEM, "code": "e1"} in sent["meta"]["tag"]
    assert resource["subject"]["reference"] == "Patient/p1"  # the input is not modified


def test_business_identifier_is_preferred_for_matching() -> None:
    resource = {"resourceType": "Patient", "id": "p", "identifier": [{"value": "no-system"}, {"system": "s", "value": "v"}],
                "meta": {"versionId": "3", "profile": ["x"]}}
    body, ident = bundles.for_server_ids(resource, lambda k: None)
    assert ident == ("identifier", "s|v")
    assert orjson.loads(body)["meta"] == {"profile": ["x"]}


def test_transaction_bundle_splices_stored_bytes() -> None:
    stored = b'{"id":"p1","resourceType":"Patient"}'
    entries = [
        bundles.put_entry("https://ehr.example/fhir", ("Patient", "p1"), stored),
        bundles.conditional_put_entry(("Observation", "o1"), b'{"resourceType":"Observation"}', ("identifier", "http://s|a|b c")),
        bundles.delete_entry(("Flag", "f1"), "77"),
    ]
    bundle = orjson.loads(bundles.transaction_bundle(entries))
    assert bundle["type"] == "transaction"
    first, second, third = bundle["entry"]
    assert first == {"fullUrl": "https://ehr.example/fhir/Patient/p1", "resource": {"id": "p1", "resourceType": "Patient"},
                     "request": {"method": "PUT", "url": "Patient/p1"}}
    assert second["request"]["url"] == "Observation?identifier=http://s|a%7Cb%20c"
    assert second["fullUrl"].startswith("urn:uuid:")
    assert third == {"request": {"method": "DELETE", "url": "Flag/77"}}


def test_capabilities_transactions_conditional_update_and_declared_limits() -> None:
    statement = {
        "resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
        "rest": [{
            "mode": "server",
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
            "resource": [{"type": "Patient", "conditionalUpdate": True}, {"type": "Observation"}],
            "extension": [
                {"url": "https://peer.example/fhir/StructureDefinition/max-transaction-puts", "valueInteger": 50},
                {"url": "https://peer.example/fhir/StructureDefinition/max-conditional-entries", "valueInteger": 8},
            ],
        }],
    }
    caps = parse_capabilities(statement)
    assert caps.transactions
    assert caps.supports_conditional_update("Patient") and not caps.supports_conditional_update("Observation")
    assert caps.max_transaction_entries == 50
    assert caps.max_conditional_entries == 8
    plain = parse_capabilities({"rest": [{"mode": "server", "interaction": [{"code": "transaction"}]}]})
    assert plain.max_transaction_entries == 50 and plain.max_conditional_entries is None
    assert not parse_capabilities({"rest": [{"mode": "server"}]}).transactions


def test_references_from_json_bytes_match_the_parsed_ones() -> None:
    resource = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
                "performer": [{"reference": "Practitioner/x/_history/2"}, {"reference": "#inline"}],
                "derivedFrom": [{"reference": "urn:uuid:abc"}, {"reference": "https://other.example/fhir/Patient/9"}]}
    assert bundles.references_in_json(orjson.dumps(resource)) == bundles.references(resource)


def _plan(ordered, groups, size, refs, **kw):  # type: ignore[no-untyped-def]
    return bundles.plan_chunks(ordered, lambda k: groups[k], size, refs, **kw)


def _send_order_is_valid(plan, refs, ordered) -> None:  # type: ignore[no-untyped-def]
    """Every chunk is after its group's previous chunk and after the chunks holding what it
    refers to (earlier in `ordered`), and the graph has no cycle (so everything gets sent)."""
    position = {k: i for i, k in enumerate(ordered)}
    chunk_of = {k: c.index for c in plan for k in c.keys}
    waiting = {c.index: set(c.after) for c in plan}
    while waiting:  # Kahn: some chunk can always go
        free = [i for i, after in waiting.items() if not after & set(waiting)]
        assert free, "a cycle of chunks waiting on each other"
        for i in free:
            del waiting[i]
    last: dict[str, int] = {}
    for c in plan:
        if c.group in last:
            assert last[c.group] in c.after
        last[c.group] = c.index
        for key in c.keys:
            for dep in refs.get(key, ()):
                if dep in chunk_of and position[dep] < position[key] and chunk_of[dep] != c.index:
                    assert chunk_of[dep] in c.after, (key, dep)


def test_plan_chunks_per_partition_with_cross_partition_dependencies() -> None:
    org = ("Organization", "o")
    a = [("Patient", "a")] + [("Observation", f"a{i}") for i in range(5)]
    b = [("Patient", "b")] + [("Observation", f"b{i}") for i in range(5)]
    groups = {org: "clinic:c", **{k: "patient:a" for k in a}, **{k: "patient:b" for k in b}}
    refs = {k: {org, a[0]} for k in a[1:]} | {k: {org, b[0]} for k in b[1:]} | {a[0]: {org}, b[0]: {org}}
    ordered = [org, a[0], b[0], *a[1:], *b[1:]]
    plan = _plan(ordered, groups, 3, refs)
    assert [c.keys for c in plan if c.group == "clinic:c"] == [[org]]
    assert sum(len(c.keys) for c in plan) == len(ordered)
    assert all(len(c.keys) <= 3 for c in plan)
    assert {c.group for c in plan} == {"clinic:c", "patient:a", "patient:b"}
    _send_order_is_valid(plan, refs, ordered)
    # the two patients' first chunks both wait only on the clinic's: they can go at once
    firsts = [c for c in plan if c.keys[0] in (a[0], b[0])]
    assert all(c.after == {plan[0].index} for c in firsts)


def test_plan_chunks_closes_a_chunk_another_partition_refers_to() -> None:
    # x1 (group X) <- y1 (group Y) <- x2 (group X): x2 may not share x1's chunk while y1 waits on it
    x1, y1, x2 = ("Patient", "x1"), ("Observation", "y1"), ("Observation", "x2")
    groups = {x1: "X", y1: "Y", x2: "X"}
    refs = {y1: {x1}, x2: {y1}}
    plan = _plan([x1, y1, x2], groups, 50, refs)
    assert [c.keys for c in plan] == [[x1], [y1], [x2]]
    _send_order_is_valid(plan, refs, [x1, y1, x2])


def test_plan_chunks_random_graphs_are_acyclic_and_ordered() -> None:
    import random

    rng = random.Random(4)
    for _ in range(200):
        keys = [("Basic", str(i)) for i in range(rng.randint(1, 40))]
        groups = {k: f"g{rng.randint(0, 4)}" for k in keys}
        refs = {k: {rng.choice(keys) for _ in range(rng.randint(0, 3))} - {k} for k in keys}
        ordered = bundles.dependency_order(keys, refs, {k: i for i, k in enumerate(keys)})
        server = rng.random() < 0.5
        plan = _plan(ordered, groups, rng.randint(1, 6), refs, split_on_internal_refs=server)
        assert sorted(k for c in plan for k in c.keys) == sorted(keys)
        _send_order_is_valid(plan, refs, ordered)
        if server:
            for c in plan:  # nothing shares a chunk with what it refers to (cycles aside, as in chunk())
                assert not any(refs[k] & set(c.keys[:i]) for i, k in enumerate(c.keys))
