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
