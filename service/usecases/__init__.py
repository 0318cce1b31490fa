"""Use cases: one function per verb. Each owns its unit of work (transaction).

- `put_record(uow, kind, payload, idempotency_key=None, *, mode, key)` create or update
- `get_record`, `list_records`, `record_history`                       read
- `preview_fhir(kind, payload, ...)`                                   map without storing
- `course_summary(uow, clinic_id, patient_id, rules)`                  the course summary
- `import_rows(uow_factory, kind, rows)` with `parse_rows`             bulk import, row by row
"""

from .bootstrap import Services
from .errors import (
    Conflict,
    FieldError,
    IdempotencyConflict,
    InvalidRecord,
    MappingUnavailable,
    MissingReference,
    NotFound,
    UnknownCodeError,
    UnknownKind,
    UseCaseError,
    field_errors,
)
from .importing import ImportReport, import_rows, parse_rows
from .records import (
    PutMode,
    PutResult,
    RecordPage,
    RecordView,
    WriteStatus,
    get_record,
    list_records,
    preview_fhir,
    put_record,
    record_history,
    validate_record,
)
from .summary import SummaryRules, course_summary

__all__ = [
    "Conflict", "FieldError", "IdempotencyConflict", "ImportReport", "InvalidRecord", "MappingUnavailable",
    "MissingReference", "NotFound", "PutMode", "PutResult", "RecordPage", "RecordView", "Services",
    "SummaryRules", "UnknownCodeError", "UnknownKind", "UseCaseError", "WriteStatus", "course_summary",
    "field_errors", "get_record", "import_rows", "list_records", "parse_rows", "preview_fhir", "put_record",
    "record_history", "validate_record",
]
