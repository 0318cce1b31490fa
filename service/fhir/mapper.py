"""Dispatch from a domain record to the builder that maps it (one builder per record kind)."""

from __future__ import annotations

from typing import Callable, TypeVar

from ..domain.common import DomainRecord
from .context import MappingContext
from .narrative import with_narrative
from .provenance import provenance

Resource = dict
Builder = Callable[[DomainRecord, MappingContext], list[Resource]]
R = TypeVar("R", bound=DomainRecord)

_BUILDERS: dict[type[DomainRecord], Builder] = {}


def builds(model: type[R]) -> Callable[[Callable[[R, MappingContext], list[Resource]]], Callable[[R, MappingContext], list[Resource]]]:
    """Register the builder of a record kind."""

    def register(fn: Callable[[R, MappingContext], list[Resource]]) -> Callable[[R, MappingContext], list[Resource]]:
        _BUILDERS[model] = fn  # type: ignore[assignment]
        return fn

    return register


def map_record(record: DomainRecord, ctx: MappingContext) -> list[Resource]:
    """All FHIR resources (JSON dicts) that one record produces, in dependency order
    (a resource comes after the resources it refers to that this record also produces)."""
    _load_builders()
    try:
        builder = _BUILDERS[type(record)]
    except KeyError:
        raise TypeError(f"no FHIR mapping for {type(record).__name__}") from None
    resources = builder(record, ctx)
    return [with_narrative(r) for r in (*resources, provenance(record, resources, ctx))]


def _load_builders() -> None:
    if _BUILDERS:
        return
    from . import builders  # noqa: F401  (importing registers every builder)
