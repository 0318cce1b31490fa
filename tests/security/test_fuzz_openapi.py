"""Schemathesis (4.x) against the OpenAPI document, in process (ASGI transport), authenticated
with an admin dev token of the demo clinic: generated requests for EVERY operation, at least
2,000 in all, zero 5xx, and every response conforming to the schema (documented status code,
content type, and body schema).

Bounded: `MAX_EXAMPLES` per operation, generation phase only, no example database, so a run
takes a few minutes on 2 cores (the total number of requests is printed and asserted)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import CLINIC
from tests.tokens import bearer

MAX_EXAMPLES = 25
MIN_REQUESTS = 2000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_generated_requests_on_every_operation(app, services) -> None:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = bearer(roles=("admin",), clinic=CLINIC, lifetime=3600)
    sent: dict[str, int] = {}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 100

    for operation in operations:
        label = operation.label

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers=headers)
            sent[label] = sent.get(label, 0) + 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - collected; first failure per operation reported
                failures.setdefault(label, f"{response.status_code} {type(error).__name__}: {str(error)[:600]}")

        run()
    total = sum(sent.values())
    print(f"schemathesis: {total} requests over {len(operations)} operations; {len(failures)} failing operations")
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in sorted(failures.items()))
    assert set(sent) == {o.label for o in operations}, "every operation was exercised"
    assert total >= MIN_REQUESTS, total
