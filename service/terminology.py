"""Terminology as data: read-only access to the code tables in ``mappings/``.

Every code the service sends lives in a JSON file under ``mappings/terminology/``
together with the source it was verified against (see ``mappings/README.md``).
This module is the only reader of those files.  It never makes a code up:

* an unknown ``(table, key)`` raises :class:`UnknownCode` (a ``ValueError``);
* a concept whose code could not be verified is stored with ``"code": null`` and
  ``"verification": "U"``; asking for its coding raises :class:`UnverifiedCode`
  so the caller can fall back to ``CodeableConcept.text`` explicitly.

Layout of the data directory (``Path(__file__).resolve().parents[1] / "mappings"``,
overridable with the environment variable ``MAPPINGS_DIR``)::

    terminology/<table>.json              {"table", "description", "concepts": {key: concept}}
    terminology/code-systems.json         {"table", "systems": {name: uri}}
    terminology/codesystems/<id>.json     FHIR R4 CodeSystem for our local codes
    questionnaires/<id>.json              FHIR R4 Questionnaire

A concept is ``{"system", "code", "display", "verification" (V|V2|U), "source",
optional "extra_codings": [...], optional "note", ...}``; any further fields
(``ucum``, ``profile``, ``kind``, ``items`` ...) are kept in :attr:`Concept.extra`.

Loaded JSON is cached (``functools.lru_cache``); call :func:`clear_cache` after
changing ``MAPPINGS_DIR`` or the files.  Pure stdlib + orjson.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import orjson

__all__ = [
    "Concept",
    "TerminologyError",
    "UnknownCode",
    "UnverifiedCode",
    "clear_cache",
    "codesystem",
    "coding",
    "codings",
    "concept",
    "concepts",
    "load_table",
    "mappings_dir",
    "questionnaire",
    "system",
    "table_names",
]

VERIFICATION_TAGS = frozenset({"V", "V2", "U"})
_CORE_FIELDS = ("system", "code", "display", "verification", "source", "extra_codings")


class TerminologyError(ValueError):
    """Base class for terminology lookup errors."""


class UnknownCode(TerminologyError):
    """The table, key, system, questionnaire or code system does not exist."""

    def __init__(self, table: str, key: str, detail: str = "") -> None:
        self.table = table
        self.key = key
        msg = f"unknown terminology key {key!r} in table {table!r}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class UnverifiedCode(TerminologyError):
    """The concept exists but its code is unverified (code null, tag U): send text only."""

    def __init__(self, table: str, key: str, display: str, note: str | None) -> None:
        self.table = table
        self.key = key
        self.display = display
        self.note = note
        super().__init__(
            f"concept {key!r} in table {table!r} has no verified code; "
            f"send CodeableConcept.text {display!r} instead" + (f" ({note})" if note else "")
        )


@dataclass(frozen=True)
class Concept:
    """One concept of a terminology table."""

    table: str
    key: str
    system: str
    code: str | None
    display: str
    verification: str
    source: str
    extra_codings: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def verified(self) -> bool:
        return self.code is not None and self.verification in ("V", "V2")

    @property
    def note(self) -> str | None:
        note = self.extra.get("note")
        return note if isinstance(note, str) else None


@lru_cache(maxsize=1)
def mappings_dir() -> Path:
    """The data directory: ``$MAPPINGS_DIR`` or ``<project root>/mappings``, read once (every
    code lookup of a mapping asks for it; ``clear_cache()`` reads it again)."""
    env = os.environ.get("MAPPINGS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[1] / "mappings"


@lru_cache(maxsize=None)
def _read(path: str) -> Any:
    try:
        return orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as exc:  # pragma: no cover - data error
        raise TerminologyError(f"invalid JSON in {path}: {exc}") from exc


def clear_cache() -> None:
    """Forget cached files and the data directory (after changing ``MAPPINGS_DIR`` or editing data)."""
    mappings_dir.cache_clear()
    _read.cache_clear()
    _concept.cache_clear()


def _safe_name(name: str, kind: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UnknownCode(kind, name, "invalid name")
    return name


def table_names() -> list[str]:
    """Names of all terminology tables (file stems under ``terminology/``)."""
    return sorted(p.stem for p in (mappings_dir() / "terminology").glob("*.json"))


def load_table(name: str) -> dict[str, Any]:
    """The parsed JSON of ``terminology/<name>.json`` (cached; do not mutate)."""
    path = mappings_dir() / "terminology" / f"{_safe_name(name, 'table')}.json"
    try:
        return _read(str(path))
    except FileNotFoundError:
        raise UnknownCode(name, "*", f"no table file {path}") from None


def concepts(table: str) -> dict[str, Any]:
    """The raw ``concepts`` mapping of a table."""
    data = load_table(table)
    found = data.get("concepts")
    if not isinstance(found, dict):
        raise UnknownCode(table, "*", "table has no 'concepts'")
    return found


@lru_cache(maxsize=None)
def _concept(root: str, table: str, key: str) -> Concept:
    raw = concepts(table).get(key)
    if not isinstance(raw, dict):
        raise UnknownCode(table, key)
    extra = {k: v for k, v in raw.items() if k not in _CORE_FIELDS}
    return Concept(
        table=table,
        key=key,
        system=raw["system"],
        code=raw.get("code"),
        display=raw["display"],
        verification=raw["verification"],
        source=raw["source"],
        extra_codings=tuple(MappingProxyType(dict(x)) for x in raw.get("extra_codings", ())),
        extra=MappingProxyType(extra),
    )


def concept(table: str, key: str) -> Concept:
    """The concept ``key`` of ``table``; raises :class:`UnknownCode`."""
    return _concept(str(mappings_dir()), table, key)


def _as_coding(entry: Mapping[str, Any]) -> dict[str, str]:
    return {"system": entry["system"], "code": entry["code"], "display": entry["display"]}


def coding(table: str, key: str) -> dict[str, str]:
    """FHIR Coding ``{system, code, display}`` of the primary coding.

    Raises :class:`UnknownCode` for an unknown key and :class:`UnverifiedCode`
    when the concept's code is null (unverified).
    """
    c = concept(table, key)
    if c.code is None:
        raise UnverifiedCode(table, key, c.display, c.note)
    return {"system": c.system, "code": c.code, "display": c.display}


def codings(table: str, key: str) -> list[dict[str, str]]:
    """Primary coding followed by every extra coding that has a code."""
    result = [coding(table, key)]
    for extra in concept(table, key).extra_codings:
        if extra.get("code") is not None:
            result.append(_as_coding(extra))
    return result


def system(name: str) -> str:
    """A code system URI by short name (``"loinc"``, ``"program_instruments"`` ...)."""
    systems = load_table("code-systems").get("systems", {})
    try:
        return systems[name]
    except KeyError:
        raise UnknownCode("code-systems", name) from None


def questionnaire(id_: str) -> dict[str, Any]:
    """The Questionnaire resource ``questionnaires/<id>.json`` (cached; do not mutate)."""
    path = mappings_dir() / "questionnaires" / f"{_safe_name(id_, 'questionnaires')}.json"
    try:
        return _read(str(path))
    except FileNotFoundError:
        raise UnknownCode("questionnaires", id_) from None


def codesystem(id_: str) -> dict[str, Any]:
    """The local CodeSystem resource ``terminology/codesystems/<id>.json``."""
    path = mappings_dir() / "terminology" / "codesystems" / f"{_safe_name(id_, 'codesystems')}.json"
    try:
        return _read(str(path))
    except FileNotFoundError:
        raise UnknownCode("codesystems", id_) from None
