"""Terminology checks: every code key a record carries must exist in the code tables
(`mappings/terminology/`, read through `service.terminology`). An unknown code is an error,
never a silent default.

`CODE_FIELDS` says which field of which kind is looked up in which table; `check_codes`
returns one FieldError per unknown code. The lookup is a plain function
(`set_code_lookup` swaps it, e.g. in tests).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Iterator

from ..domain.common import DomainRecord
from .errors import FieldError

CodeLookup = Callable[[str, str], bool]
"""(table, key) -> known?"""

CODE_FIELDS: dict[str, list[tuple[str, str]]] = {
    # kind -> [(dotted field path, '*' = each list item), table]
    "medication-trials": [("drug", "antidepressants")],
    "administration-sessions": [("product", "medications"), ("premedications.*.drug", "medications")],
    "adverse-events": [("event", "adverse-events")],
    "diagnoses": [("icd10", "icd10cm")],
}
"""'icd10cm' is the pseudo-table of ICD-10-CM codes listed in the diagnoses and
contraindications tables (codes, extra codings, and the contraindication prefixes)."""

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"


@lru_cache(maxsize=1)
def _icd10cm_index() -> tuple[frozenset[str], tuple[str, ...]]:
    from ..terminology import concepts

    codes: set[str] = set()
    prefixes: list[str] = []
    for table in ("diagnoses", "contraindications"):
        for entry in concepts(table).values():
            for coding in [entry, *entry.get("extra_codings", [])]:
                if coding.get("system") == ICD10CM_SYSTEM and coding.get("code"):
                    codes.add(coding["code"])
            prefixes.extend(entry.get("icd10cm_prefixes") or [])
    return frozenset(codes), tuple(prefixes)


def terminology_lookup(table: str, key: str) -> bool:
    """The default lookup, through `service.terminology` (UnknownCode -> False)."""
    from ..terminology import UnknownCode, concept

    if table == "icd10cm":
        codes, prefixes = _icd10cm_index()
        return key in codes or any(key.startswith(prefix) for prefix in prefixes)
    try:
        concept(table, key)
    except UnknownCode:
        return False
    return True


_lookup: CodeLookup = terminology_lookup


def set_code_lookup(lookup: CodeLookup | None) -> None:
    """Replace the lookup (None restores the terminology tables)."""
    global _lookup
    _lookup = lookup or terminology_lookup


def _values(data: Any, path: list[str], prefix: str) -> Iterator[tuple[str, Any]]:
    if not path:
        yield prefix, data
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for index, item in enumerate(data or []):
            yield from _values(item, rest, f"{prefix}.{index}" if prefix else str(index))
    elif isinstance(data, dict) and data.get(head) is not None:
        yield from _values(data[head], rest, f"{prefix}.{head}" if prefix else head)


def check_codes(kind: str, record: DomainRecord) -> list[FieldError]:
    """FieldErrors for every code key of `record` that the terminology tables do not know."""
    specs = CODE_FIELDS.get(kind)
    if not specs:
        return []
    data = record.model_dump(mode="json")
    errors = []
    for path, table in specs:
        for field, value in _values(data, path.split("."), ""):
            if not isinstance(value, str) or not _lookup(table, value):
                label = "ICD-10-CM code" if table == "icd10cm" else f"key in the {table} table"
                errors.append(FieldError(field, f"unknown code {value!r}: not a {label}"))
    return errors
