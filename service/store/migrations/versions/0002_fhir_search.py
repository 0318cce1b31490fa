"""FHIR REST search: an index for `date` prefixes that bound the end of a resource's period
(gt, ge, eb), and reference tokens (encounter, context, medication, target) in
`fhir_search_token`, back-filled for resources stored before this revision.

The back-fill carries its own frozen copy of the extraction (migrations must not change when
`fhir_index.py` does later).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import re

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ELEMENTS = {"encounter": ("encounter",), "context": ("context",), "medication": ("medicationReference",), "target": ("target",)}
_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_PARAMS = tuple(_ELEMENTS)


def _references(resource: dict) -> set[tuple[str, str]]:
    found = set()
    for param, names in _ELEMENTS.items():
        for name in names:
            value = resource.get(name)
            for ref in value if isinstance(value, list) else [value]:
                reference = ref.get("reference") if isinstance(ref, dict) else None
                if isinstance(reference, str) and _RELATIVE.match(reference):
                    found.add((param, reference))
    return found


def upgrade() -> None:
    op.create_index("ix_fhir_resource_type_date_end", "fhir_resource", ["resource_type", "date_end"])
    bind = op.get_bind()
    resources = sa.table(
        "fhir_resource", sa.column("resource_type", sa.String), sa.column("id", sa.String), sa.column("json", sa.LargeBinary)
    )
    tokens = sa.table(
        "fhir_search_token", sa.column("resource_type", sa.String), sa.column("resource_id", sa.String),
        sa.column("param", sa.String), sa.column("system", sa.String), sa.column("value", sa.String),
    )
    bind.execute(sa.delete(tokens).where(tokens.c.param.in_(_PARAMS)))
    batch: list[dict] = []
    rows = bind.execute(sa.select(resources.c.resource_type, resources.c.id, resources.c.json)).all()
    for resource_type, resource_id, body in rows:
        for param, reference in _references(orjson.loads(body)):
            batch.append({"resource_type": resource_type, "resource_id": resource_id, "param": param, "system": "", "value": reference})
        if len(batch) >= 1000:
            bind.execute(sa.insert(tokens), batch)
            batch = []
    if batch:
        bind.execute(sa.insert(tokens), batch)


def downgrade() -> None:
    tokens = sa.table("fhir_search_token", sa.column("param", sa.String))
    op.get_bind().execute(sa.delete(tokens).where(tokens.c.param.in_(_PARAMS)))
    op.drop_index("ix_fhir_resource_type_date_end", table_name="fhir_resource")
