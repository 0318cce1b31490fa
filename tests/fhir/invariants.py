"""Rules every FHIR output must pass, whatever the case (after Microsoft FHIR-Converter's
rule-based functional tests): it parses with the pinned R4 models, ids are unique, every
literal reference resolves among the resources produced, and no element is empty."""

from __future__ import annotations

from typing import Any, Iterable

from service.fhir.r4 import parse


def _walk(value: Any, path: str = ""):
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, value


def empty_elements(resource: dict) -> list[str]:
    found = []
    for path, value in _walk(resource):
        if value in ({}, [], "", None):
            found.append(path)
    return found


def references(resource: dict) -> list[str]:
    return [
        value["reference"]
        for _, value in _walk(resource)
        if isinstance(value, dict) and isinstance(value.get("reference"), str)
    ]


def check_invariants(resources: list[dict], resolvable: Iterable[dict] = ()) -> list[str]:
    """Problems found; empty when every invariant holds."""
    problems: list[str] = []
    keys = [f"{r['resourceType']}/{r['id']}" for r in resources]
    duplicates = {k for k in keys if keys.count(k) > 1}
    problems += [f"duplicate id {k}" for k in sorted(duplicates)]
    known = set(keys) | {f"{r['resourceType']}/{r['id']}" for r in resolvable}
    for resource, key in zip(resources, keys):
        try:
            parse(resource)
        except Exception as exc:  # pydantic ValidationError: report, don't stop
            problems.append(f"{key} does not parse: {exc}")
        for ref in references(resource):
            if ref not in known:
                problems.append(f"{key} refers to {ref}, which is not produced")
        problems += [f"{key} has an empty element at {p}" for p in empty_elements(resource)]
    return problems
