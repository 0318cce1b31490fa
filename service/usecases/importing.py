"""Bulk import: NDJSON (one JSON object per line) or CSV (flat columns) -> records.

Each row is validated and written in its own transaction through `put_record`, so a bad row
never leaves anything behind and never stops the good ones. The report lists every row with
its status (created / updated / unchanged / error) and, for errors, the offending fields.

CSV columns map generically onto the kind's model: a dotted column is a nested field
(`answers.9`, `address.city`, `premedications.0.drug`), list fields take `;`-separated values
(`given_names` = `Ana;Maria`), and an empty cell means the field is absent.
"""

from __future__ import annotations

import csv
import io
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Union

import orjson
from pydantic import BaseModel

from ..store import UnitOfWork
from .errors import FieldError, UseCaseError
from .records import PutResult, put_record, record_kind

LIST_SEPARATOR = ";"
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class ParsedRow:
    row: int
    """1-based: NDJSON line number; CSV data row number (the header is not counted)."""
    payload: dict | None
    error: FieldError | None = None


@dataclass
class RowReport:
    row: int
    status: str
    id: str | None = None
    errors: list[FieldError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "status": self.status, "id": self.id}
        if self.errors:
            out["errors"] = [e.as_dict() for e in self.errors]
        return out


@dataclass
class ImportReport:
    kind: str
    rows: list[RowReport] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "unchanged": 0, "error": 0}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    @property
    def failed(self) -> int:
        return self.counts()["error"]

    def document(self) -> dict[str, Any]:
        return {"kind": self.kind, "total": len(self.rows), **self.counts(), "rows": [r.as_dict() for r in self.rows]}


# --------------------------------------------------------------------------- parsing


def parse_ndjson(text: str) -> Iterator[ParsedRow]:
    """One JSON object per line; blank lines are skipped (but counted)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield ParsedRow(number, None, FieldError("", f"malformed JSON: {error.args[0] if error.args else error}"))
            continue
        if not isinstance(value, dict):
            yield ParsedRow(number, None, FieldError("", "expected a JSON object"))
            continue
        yield ParsedRow(number, value)


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated: `Annotated[list[X], ...] | None` -> `list[X]`."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _is_bool_or_int(annotation: Any) -> bool:
    target = _unwrap(annotation)
    if typing.get_origin(target) not in (Union, types.UnionType):
        return False
    return {bool, int} <= {_unwrap(member) for member in typing.get_args(target)}


def _convert(annotation: Any, text: str) -> Any:
    """A CSV cell for a field: lists split on ';'; bool|int unions decided by the text
    ('true'/'false' or digits), everything else left to pydantic's lax parsing."""
    target = _unwrap(annotation)
    origin = typing.get_origin(target)
    if origin in (list, tuple, set, frozenset):
        (item,) = typing.get_args(target)[:1] or (str,)
        return [_convert(item, part.strip()) for part in text.split(LIST_SEPARATOR) if part.strip()]
    if _is_bool_or_int(target):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "y"):
            return True
        if lowered in ("false", "no", "n"):
            return False
        if _INT.match(text.strip()):
            return int(text.strip())
    return text


def _annotation_at(model: type[BaseModel] | None, annotation: Any, part: str) -> tuple[type[BaseModel] | None, Any]:
    """Walk one path part into a model field, a dict value or a list item."""
    if model is not None:
        info = model.model_fields.get(part)
        if info is None:
            return None, str
        annotation = info.annotation
    target = _unwrap(annotation)
    origin = typing.get_origin(target)
    if model is None and origin is dict:
        annotation = typing.get_args(target)[1]
    elif model is None and origin is list and part.isdigit():
        annotation = typing.get_args(target)[0]
    nested = _unwrap(annotation)
    return (nested if isinstance(nested, type) and issubclass(nested, BaseModel) else None), annotation


def _set(target: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError("conflicting columns")
    target[path[-1]] = value


def _lists_from_indexed(value: Any, annotation: Any) -> Any:
    """Dicts built from `premedications.0.drug` columns become lists, in index order."""
    target = _unwrap(annotation)
    origin = typing.get_origin(target)
    if isinstance(value, dict):
        if origin is list and all(k.isdigit() for k in value):
            item = typing.get_args(target)[0]
            return [_lists_from_indexed(value[k], item) for k in sorted(value, key=int)]
        nested = target if isinstance(target, type) and issubclass(target, BaseModel) else None
        if nested is not None:
            return {
                k: _lists_from_indexed(v, nested.model_fields[k].annotation) if k in nested.model_fields else v
                for k, v in value.items()
            }
    return value


def unflatten(row: dict[str, str | None], model: type[BaseModel]) -> dict[str, Any]:
    """A flat CSV row -> the nested payload of `model` (see module docstring)."""
    payload: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell.strip() == "":
            continue
        path = [p.strip() for p in column.strip().split(".")]
        current_model: type[BaseModel] | None = model
        annotation: Any = model
        for part in path:
            current_model, annotation = _annotation_at(current_model, annotation, part)
        _set(payload, path, _convert(annotation, cell.strip()))
    return {
        k: _lists_from_indexed(v, model.model_fields[k].annotation) if k in model.model_fields else v
        for k, v in payload.items()
    }


def parse_csv(text: str, kind: str) -> Iterator[ParsedRow]:
    """CSV with a header row; each data row is unflattened onto the kind's model."""
    model = record_kind(kind).model
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, start=1):
        if None in row:
            yield ParsedRow(number, None, FieldError("", "more cells than header columns"))
            continue
        try:
            yield ParsedRow(number, unflatten(row, model))
        except ValueError as error:
            yield ParsedRow(number, None, FieldError("", str(error)))


def parse_rows(data: bytes | str, fmt: str, kind: str) -> Iterator[ParsedRow]:
    """Rows of an NDJSON (`fmt` 'ndjson') or CSV (`fmt` 'csv') document."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    if fmt == "ndjson":
        return parse_ndjson(text)
    if fmt == "csv":
        return parse_csv(text, kind)
    raise ValueError(f"unknown import format {fmt!r}")


# --------------------------------------------------------------------------- import


def import_rows(
    uow_factory: Callable[[], UnitOfWork],
    kind: str,
    rows: Iterable[ParsedRow],
    *,
    on_row: Callable[[RowReport], None] | None = None,
) -> ImportReport:
    """Write every row in its own transaction; returns the per-row report."""
    record_kind(kind)
    report = ImportReport(kind)
    for parsed in rows:
        if parsed.payload is None:
            entry = RowReport(parsed.row, "error", None, [parsed.error or FieldError("", "unreadable row")])
        else:
            row_id = parsed.payload.get("id") if isinstance(parsed.payload.get("id"), str) else None
            try:
                result: PutResult = put_record(uow_factory(), kind, parsed.payload)
                entry = RowReport(parsed.row, result.status.value, row_id)
            except UseCaseError as error:
                entry = RowReport(parsed.row, "error", row_id, error.errors or [FieldError("", error.detail)])
        report.rows.append(entry)
        if on_row is not None:
            on_row(entry)
    return report
