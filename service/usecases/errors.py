"""Errors the use cases raise. Each names the offending fields with dotted paths
("answers.9", "premedications.0.drug"); the API turns them into problem documents."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class FieldError:
    field: str
    """Dotted path of the offending field ('' for the document as a whole)."""
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class UseCaseError(Exception):
    """Base of the errors a caller can act on (never a server fault)."""

    kind = "error"
    title = "Request could not be processed"

    def __init__(self, detail: str, errors: Iterable[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)


class InvalidRecord(UseCaseError):
    kind = "invalid-record"
    title = "The record is not valid"


class MissingReference(UseCaseError):
    kind = "missing-reference"
    title = "A referenced record does not exist"


class UnknownCodeError(UseCaseError):
    kind = "unknown-code"
    title = "A code is not in the terminology tables"


class NotFound(UseCaseError):
    kind = "not-found"
    title = "Not found"


class UnknownKind(NotFound):
    kind = "unknown-kind"
    title = "Unknown record kind"


class Conflict(UseCaseError):
    kind = "conflict"
    title = "The record already exists with different content"


class IdempotencyConflict(UseCaseError):
    kind = "idempotency-key-reused"
    title = "The Idempotency-Key was already used for a different request"


class MappingUnavailable(UseCaseError):
    kind = "mapping-unavailable"
    title = "No FHIR mapping for this record kind yet"


# --------------------------------------------------------------------------- pydantic errors

_TYPE_TAGS = {
    "bool", "int", "float", "str", "decimal", "list", "dict", "date", "datetime", "time", "none",
    "uuid", "bytes", "tuple", "set", "is-instance", "literal", "enum", "model", "union",
}
_FIELD_PREFIX = re.compile(r"^(?:Value error, )?([A-Za-z_][\w]*(?:\.[\w]+)+): (.*)$", re.S)


def _clean_loc(loc: Iterable[Any]) -> list[str]:
    """Drop pydantic's internal location parts: union member tags ('int', 'bool',
    'function-after[...]'), '[key]' markers, and FastAPI's 'body'/'query' prefixes."""
    parts = []
    for index, part in enumerate(loc):
        text = str(part)
        if index == 0 and text in ("body", "query", "path", "header"):
            continue
        if "[" in text or "(" in text or (parts and text in _TYPE_TAGS):
            continue
        parts.append(text)
    return parts


def _message(error: dict) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _mentioned_field(message: str, model: type[BaseModel] | None) -> str:
    """For a model-level rule ('ended_at is before started_at'), the first field it names."""
    if model is None:
        return ""
    best: tuple[int, str] | None = None
    for name in model.model_fields:
        match = re.search(rf"\b{re.escape(name)}\b", message)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), name)
    return best[1] if best else ""


def field_errors(errors: Iterable[dict], model: type[BaseModel] | None = None) -> list[FieldError]:
    """Pydantic (or FastAPI) error dicts -> FieldErrors with clean dotted paths."""
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for error in errors:
        parts = _clean_loc(error.get("loc", ()))
        message = _message(error)
        if not parts:
            prefixed = _FIELD_PREFIX.match(message)
            if prefixed:  # e.g. "answers.9: item 9 must be 0-3" from a model validator
                path, message = prefixed[1], prefixed[2]
            else:
                path = _mentioned_field(message, model)
        else:
            path = ".".join(parts)
        if error.get("type") == "extra_forbidden":
            message = "unknown field (not part of this record kind)"
        key = (path, message)
        if key not in seen:
            seen.add(key)
            out.append(FieldError(path, message))
    return out


def invalid_record(error: ValidationError, model: type[BaseModel]) -> InvalidRecord:
    errors = field_errors(error.errors(include_url=False, include_input=False), model)
    fields = ", ".join(sorted({e.field or "(record)" for e in errors}))
    return InvalidRecord(f"{model.__name__} is not valid: {fields}", errors)
