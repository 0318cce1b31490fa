"""What the FHIR API serves, as registered by its modules: resource type -> interactions,
system interactions, and operations. The CapabilityStatement (metadata.py) is generated from
this registry plus the search parameter table (usecases.fhir_search.SEARCH_PARAMETERS), so it
cannot drift from the routes.

Adding an operation (e.g. bulk `$export`): write `operations/<name>.py` with a
`register(router, registry)` that adds its route and calls `registry.operation(...)`, and list
the module in `api/fhir/__init__.py` MODULES.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Operation:
    name: str
    """Without the '$', e.g. 'validate'."""
    definition: str
    """Canonical URL of the OperationDefinition."""
    resource_types: tuple[str, ...] = ()
    """Types it is offered on (type or instance level); empty = system level."""
    documentation: str = ""


@dataclass
class Registry:
    interactions: dict[str, list[str]] = field(default_factory=dict)
    """Resource type -> type/instance interaction codes (read, vread, search-type, ...)."""
    system_interactions: list[str] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    conditional_create: set[str] = field(default_factory=set)
    conditional_update: set[str] = field(default_factory=set)
    instantiates: list[str] = field(default_factory=list)
    """Canonical URLs of CapabilityStatements this server also conforms to (e.g. Bulk Data)."""

    def interaction(self, code: str, resource_types: tuple[str, ...] | list[str]) -> None:
        for resource_type in resource_types:
            codes = self.interactions.setdefault(resource_type, [])
            if code not in codes:
                codes.append(code)

    def system(self, code: str) -> None:
        if code not in self.system_interactions:
            self.system_interactions.append(code)

    def operation(self, operation: Operation) -> None:
        self.operations.append(operation)

    def instantiate(self, canonical: str) -> None:
        if canonical not in self.instantiates:
            self.instantiates.append(canonical)

    def supports(self, resource_type: str, code: str) -> bool:
        return code in self.interactions.get(resource_type, [])
