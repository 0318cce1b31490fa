"""Domain records -> FHIR R4 (4.0.1) resources, US Core-conformant.

Builders produce plain JSON-ready dicts (the fast path that is stored and served); the
`r4` module pins the fhir.resources model set used to check them in tests and `$validate`.
`map_record(record, ctx)` is the single entry point.
"""

from .context import MappingContext
from .mapper import map_record

__all__ = ["MappingContext", "map_record"]
