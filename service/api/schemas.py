"""Response models of the domain API (for OpenAPI; handlers return ready JSON bytes).
Request bodies are the domain models themselves (see app.request_body_schemas)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FhirRef(BaseModel):
    resourceType: str
    id: str
    versionId: str


class RecordWritten(BaseModel):
    """The stored record after a write, with the FHIR resources it maps to."""

    kind: str
    status: Literal["created", "updated", "unchanged"]
    version: int = Field(description="Record version (1 on create, +1 per change)")
    record: dict[str, Any]
    fhir: list[FhirRef]


class RecordRead(BaseModel):
    kind: str
    version: int
    created_at: str
    updated_at: str
    record: dict[str, Any]
    fhir: list[FhirRef]


class RecordList(BaseModel):
    items: list[RecordRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class PreviewBundle(BaseModel):
    """A FHIR Bundle (type collection) of the resources the payload would produce."""

    resourceType: Literal["Bundle"]
    type: Literal["collection"]
    entry: list[dict[str, Any]]


class ImportRowReport(BaseModel):
    row: int
    status: Literal["created", "updated", "unchanged", "error"]
    id: str | None = None
    errors: list[dict[str, str]] = Field(default_factory=list)


class ImportReportDoc(BaseModel):
    kind: str
    total: int
    created: int
    updated: int
    unchanged: int
    error: int
    rows: list[ImportRowReport]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
