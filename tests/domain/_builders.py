"""Shared builders for domain tests: valid record payloads and answer sets.

Each builder returns a *valid* payload; tests override or drop single fields to probe one
rule at a time (``DROP`` removes a key).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

EST = dt.timezone(dt.timedelta(hours=-5))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=EST)
DAY0 = dt.date(2026, 3, 2)

DROP = object()
"""Override value meaning: remove this key from the payload."""


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def iv_session(**overrides: Any) -> dict[str, Any]:
    """IV racemic ketamine 0.5 mg/kg over 40 min for 70 kg = 35 mg (Fava 2020 [S34];
    clinical-coding.md §3.3)."""
    base = dict(
        id="ses-1",
        clinic_id="clinic-1",
        patient_id="pat-1",
        enrollment_id="enr-1",
        location_id="loc-1",
        practitioner_id="prac-1",
        agent="ketamine",
        route="intravenous",
        product="ketamine_hcl_100mg_ml",
        weight_kg=Decimal("70.0"),
        prescribed_mg_per_kg=Decimal("0.5"),
        dose_mg=Decimal("35"),
        started_at=T0,
        ended_at=T0 + minutes(40),
    )
    return _apply(base, overrides)


def esketamine_session(**overrides: Any) -> dict[str, Any]:
    """Intranasal SPRAVATO 56 mg = 2 devices of 28 mg (label, How Supplied [S23])."""
    base = dict(
        id="ses-2",
        clinic_id="clinic-1",
        patient_id="pat-1",
        enrollment_id="enr-1",
        location_id="loc-1",
        practitioner_id="prac-1",
        agent="esketamine",
        route="intranasal",
        product="spravato_56mg",
        dose_mg=Decimal("56"),
        devices=2,
        started_at=T0,
        ended_at=T0 + minutes(5),
    )
    return _apply(base, overrides)


def vitals(**overrides: Any) -> dict[str, Any]:
    base = dict(
        id="vit-1",
        clinic_id="clinic-1",
        patient_id="pat-1",
        taken_at=T0,
        phase="pre-dose",
        systolic_mmhg=120,
        diastolic_mmhg=80,
    )
    return _apply(base, overrides)


def integration(**overrides: Any) -> dict[str, Any]:
    base = dict(
        id="int-1",
        clinic_id="clinic-1",
        patient_id="pat-1",
        follows_session_id="ses-1",
        modality="emdr",
        started_at=T0 + dt.timedelta(hours=3),
        minutes=60,
        practitioner_id="prac-2",
    )
    return _apply(base, overrides)


def trial(**overrides: Any) -> dict[str, Any]:
    """An adequate failed trial: therapeutic dose, 8 weeks, no response, current episode."""
    base = dict(
        id="tr-1",
        clinic_id="clinic-1",
        patient_id="pat-1",
        drug="sertraline",
        daily_dose_mg=Decimal("150"),
        start_date=dt.date(2025, 1, 1),
        end_date=dt.date(2025, 1, 1) + dt.timedelta(weeks=8),
        adequate_dose=True,
        outcome="no-response",
        recorded_on=dt.date(2026, 1, 15),
    )
    return _apply(base, overrides)


def screen(**overrides: Any) -> dict[str, Any]:
    base = dict(
        id="scr-1",
        clinic_id="clinic-1",
        patient_id="pat-1",
        screened_on=DAY0,
        practitioner_id="prac-1",
        findings=[{"item": "active_psychosis", "present": False}],
    )
    return _apply(base, overrides)


def practitioner(**overrides: Any) -> dict[str, Any]:
    base = dict(
        id="prac-1",
        clinic_id="clinic-1",
        npi="1234567893",
        family_name="Rivera",
        given_names=["Ana"],
        role="prescriber",
    )
    return _apply(base, overrides)


def spread(total: int, items: tuple[str, ...] | list[str], max_points: int) -> dict[str, int]:
    """Item answers (in item order, each filled up to max_points) that sum to `total`."""
    answers: dict[str, int] = {}
    remaining = total
    for item in items:
        value = min(max_points, remaining)
        answers[item] = value
        remaining -= value
    assert remaining == 0, f"{total} does not fit {len(items)} items of 0-{max_points}"
    return answers


def assert_rejected(
    model: type[BaseModel],
    data: dict[str, Any],
    *,
    loc: tuple[Any, ...] | None = None,
    match: str | None = None,
    error_type: str | None = None,
) -> list[dict[str, Any]]:
    """Validation must fail; with `loc`, some error must sit exactly at that location
    (() for a model-level rule), and with `match`, that error's message must contain it."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    errors = info.value.errors()
    candidates = [e for e in errors if loc is None or tuple(e["loc"]) == loc]
    assert candidates, f"no error at {loc!r}: {errors}"
    if match is not None:
        assert any(match in e["msg"] for e in candidates), f"no {match!r} in {candidates}"
    if error_type is not None:
        assert any(e["type"] == error_type for e in candidates), f"no {error_type!r} in {candidates}"
    return errors
