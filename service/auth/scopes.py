"""SMART on FHIR scopes (App Launch 2.x "v2" and 1.0 "v1") parsed into permissions.

Grammar handled (clinical-coding.md section 7):

- v2: `<context>/<type>.<letters>[?<param>=<value>[&...]]` with `context` in patient | user |
  system, `type` a FHIR resource type or `*`, and `letters` a non-empty subset of `c r u d s`
  **in that order** (`.rs`, `.cruds`; `.dus` or `.sr` are invalid). The `?...` part is a
  granular search-parameter filter (e.g. `?category=...|vital-signs`); it is parsed and kept on
  the `Permission` (`filters`), and reported on every `Grant` so the caller can apply it.
- v1: `.read` -> `rs`, `.write` -> `cud`, `.*` -> `cruds`. v1 scopes take no filter.
- Anything else that looks like a resource scope but is malformed is *ignored with a reason*
  (`ScopeSet.ignored`): an invalid scope never grants anything and never fails the token.
  Non-resource scopes (`openid`, `fhirUser`, `launch/patient`, `offline_access`, ...) are kept in
  `ScopeSet.other`.

Interactions asked of a `ScopeSet`: create, read, update, delete, search; `vread` and `history`
count as read. Operations: `$everything` needs read+search on every type it returns, `$export`
needs read+search on every type *and* a `system/` scope (`allows_operation`, `permitted_types`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl

Context = Literal["patient", "user", "system"]
Letter = Literal["c", "r", "u", "d", "s"]
Filter = tuple[tuple[str, str], ...]
"""A granular filter: (search parameter, value) pairs, all of which must hold."""

CONTEXTS: tuple[str, ...] = ("patient", "user", "system")
LETTERS = "cruds"
ALL_LETTERS: frozenset[str] = frozenset(LETTERS)

INTERACTION_LETTER: dict[str, str] = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history": "r",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "search": "s",
}
"""FHIR interaction -> SMART v2 permission letter."""

V1_SUFFIX: dict[str, frozenset[str]] = {
    "read": frozenset("rs"),
    "write": frozenset("cud"),
    "*": ALL_LETTERS,
}

_SCOPE = re.compile(r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Za-z]+)\.(?P<suffix>[^?]+)(?:\?(?P<query>.*))?$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_V2_LETTERS = re.compile(r"^c?r?u?d?s?$")
_SEARCH_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.:]*$")


@dataclass(frozen=True)
class Permission:
    """One granted resource scope: context, resource type (or `*`) and interaction letters."""

    context: Context
    resource_type: str
    """A FHIR resource type, or `*` for all types."""
    interactions: frozenset[str]
    """Subset of the letters c, r, u, d, s."""
    filters: Filter = ()
    """Granular v2 filter; empty means unrestricted."""
    scope: str = ""
    """The scope string this came from."""
    version: Literal[1, 2] = 2

    def covers(self, resource_type: str, letter: str) -> bool:
        return letter in self.interactions and self.resource_type in ("*", resource_type)


@dataclass(frozen=True)
class IgnoredScope:
    """A scope that grants nothing, and why."""

    scope: str
    reason: str


@dataclass(frozen=True)
class Grant:
    """Why an interaction is allowed, and the limits the caller must enforce.

    `contexts`: the contexts whose scopes allow it. When it is only `{"patient"}`, the request
    must be confined to the token's patient compartment (`Principal.grant` sets `patient_id`).
    `filters`: when non-empty, every allowing scope was granular: results must match at least one
    of these filters (each a conjunction of `param=value`). Empty means unrestricted.
    """

    resource_type: str
    interaction: str
    contexts: frozenset[str]
    filters: tuple[Filter, ...] = ()
    patient_id: str | None = None

    @property
    def patient_only(self) -> bool:
        return self.contexts == {"patient"}


def _letter_for(interaction: str) -> str:
    try:
        return INTERACTION_LETTER[interaction]
    except KeyError:
        raise ValueError(f"unknown interaction {interaction!r}; expected one of {sorted(INTERACTION_LETTER)}") from None


def parse_scope(scope: str) -> Permission | IgnoredScope | None:
    """One scope token -> a `Permission`, an `IgnoredScope` (malformed), or None (not a resource scope)."""
    head = scope.split("?", 1)[0]
    if "/" not in head or head.split("/", 1)[0] not in CONTEXTS:
        return None  # openid, fhirUser, launch, launch/patient, offline_access, ...
    match = _SCOPE.match(scope)
    if match is None:
        return IgnoredScope(scope, "not of the form <context>/<ResourceType|*>.<permissions>")
    context, resource_type, suffix, query = match.group("context", "type", "suffix", "query")
    if resource_type != "*" and not _RESOURCE_TYPE.match(resource_type):
        return IgnoredScope(scope, "resource type must be a FHIR resource type name or '*'")
    if suffix in V1_SUFFIX:
        if query is not None:
            return IgnoredScope(scope, "v1 scopes (.read/.write/.*) do not take a ?filter")
        return Permission(context, resource_type, V1_SUFFIX[suffix], (), scope, 1)  # type: ignore[arg-type]
    if not suffix or not _V2_LETTERS.match(suffix):
        return IgnoredScope(scope, "v2 permissions must be letters from 'cruds' in that order (e.g. .rs, .cruds)")
    filters: Filter = ()
    if query is not None:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            return IgnoredScope(scope, "granular filter is not a valid query string")
        if not pairs or any(not _SEARCH_PARAM.match(name) or value == "" for name, value in pairs):
            return IgnoredScope(scope, "granular filter needs param=value pairs")
        filters = tuple(pairs)
    return Permission(context, resource_type, frozenset(suffix), filters, scope, 2)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ScopeSet:
    """The parsed `scope` claim."""

    permissions: tuple[Permission, ...] = ()
    ignored: tuple[IgnoredScope, ...] = ()
    other: tuple[str, ...] = ()
    raw: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, scope: str | Iterable[str] | None) -> ScopeSet:
        """Parse a space-separated scope string (or a list of scope tokens)."""
        if scope is None:
            tokens: list[str] = []
        elif isinstance(scope, str):
            tokens = scope.split()
        else:
            tokens = [token for item in scope for token in str(item).split()]
        permissions: list[Permission] = []
        ignored: list[IgnoredScope] = []
        other: list[str] = []
        for token in dict.fromkeys(tokens):  # de-duplicate, keep order
            parsed = parse_scope(token)
            if parsed is None:
                other.append(token)
            elif isinstance(parsed, IgnoredScope):
                ignored.append(parsed)
            else:
                permissions.append(parsed)
        return cls(tuple(permissions), tuple(ignored), tuple(other), tuple(dict.fromkeys(tokens)))

    def without_context(self, context: Context, reason: str) -> ScopeSet:
        """A copy in which the scopes of `context` are moved to `ignored` with `reason`."""
        kept = tuple(p for p in self.permissions if p.context != context)
        dropped = tuple(IgnoredScope(p.scope, reason) for p in self.permissions if p.context == context)
        return ScopeSet(kept, self.ignored + dropped, self.other, self.raw)

    @property
    def contexts(self) -> frozenset[str]:
        return frozenset(p.context for p in self.permissions)

    def grant(self, resource_type: str, interaction: str) -> Grant | None:
        """How `interaction` on `resource_type` is allowed, or None. Interaction names: see module doc."""
        letter = _letter_for(interaction)
        matching = [p for p in self.permissions if p.covers(resource_type, letter)]
        if not matching:
            return None
        contexts = frozenset(p.context for p in matching)
        # a system/user grant frees the request from patient confinement, so only filters of the
        # least-confined matching scopes count; any unfiltered one means unrestricted
        governing = [p for p in matching if p.context != "patient"] or matching
        filters: tuple[Filter, ...] = ()
        if all(p.filters for p in governing):
            filters = tuple(dict.fromkeys(p.filters for p in governing))
        return Grant(resource_type, interaction, contexts, filters)

    def allows(self, resource_type: str, interaction: str) -> bool:
        """Whether any scope allows `interaction` (create/read/update/delete/search/vread/history)."""
        return self.grant(resource_type, interaction) is not None

    def permitted_types(
        self, resource_types: Iterable[str], interactions: Iterable[str] = ("read", "search")
    ) -> list[str]:
        """The subset of `resource_types` on which all `interactions` are allowed (order kept)."""
        wanted = tuple(interactions)
        return [t for t in resource_types if all(self.allows(t, i) for i in wanted)]

    def allows_operation(self, operation: str, resource_types: Iterable[str]) -> bool:
        """`$everything` / `$export`: read+search on every one of `resource_types`.

        `$export` also needs a `system/` scope for each type (bulk data is a system-level job).
        """
        types = list(resource_types)
        if operation == "$everything":
            return bool(types) and len(self.permitted_types(types)) == len(types)
        if operation == "$export":
            system_only = ScopeSet(tuple(p for p in self.permissions if p.context == "system"))
            return bool(types) and len(system_only.permitted_types(types)) == len(types)
        raise ValueError(f"unknown operation {operation!r}")
