"""Record validation of the domain models (pydantic): each rule rejected at its location.

Field-level rules must fail at the field's location; cross-field (model) rules fail at the
model location () with a message naming the fields.

Sources: NPI Luhn check digit over prefix 80840 (CMS NPI enumeration requirements, cited in
organization.py); FHIR dateTime with a time needs an offset (common.py); SPRAVATO 28 mg per
device, 56 mg = 2, 84 mg = 3 (label, How Supplied [S23]); routes per agent
(clinical-coding.md §3.2/§3.3); weight before each infusion (program.md step 3; Fava 2020
[S34]); integration follows an administration (program.md step 4); ICD-10-CM F32/F33
(clinical-coding.md §5.1, VSAC [S21]).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from service.domain.administration import AdministrationSession
from service.domain.monitoring import VitalsReading
from service.domain.organization import Clinic, Practitioner, npi_check_digit_ok
from service.domain.psychotherapy import IntegrationSession
from service.domain.screening import ContraindicationScreen, Diagnosis, MedicationTrial, classify_mdd

from ._builders import (
    DROP,
    T0,
    assert_rejected,
    esketamine_session,
    integration,
    iv_session,
    minutes,
    practitioner,
    screen,
    trial,
    vitals,
)

# --------------------------------------------------------------------------- NPI


@pytest.mark.parametrize(
    ("npi", "valid"),
    [
        ("1234567893", True),  # the CMS worked example
        ("1234567890", False),  # wrong check digit
        ("1234567891", False),
        ("1245319599", True),
        ("1245319598", False),
        ("123456789", False),  # 9 digits
        ("12345678930", False),  # 11 digits
        ("12345678a3", False),
        ("", False),
    ],
)
def test_npi_check_digit(npi: str, valid: bool) -> None:
    """Luhn (ISO/IEC 7812) over '80840' + the first 9 digits (CMS NPI check digit)."""
    assert npi_check_digit_ok(npi) is valid


def test_practitioner_accepts_valid_npi() -> None:
    assert Practitioner.model_validate(practitioner()).npi == "1234567893"


@pytest.mark.parametrize("npi", ["1234567890", "123456789", "abcdefghij"])
def test_practitioner_rejects_invalid_npi_at_field(npi: str) -> None:
    assert_rejected(Practitioner, practitioner(npi=npi), loc=("npi",))


def test_clinic_optional_npi_checked() -> None:
    data = dict(id="clinic-1", clinic_id="clinic-1", name="Clinic", identifier_system="https://clinic-1.example.org/ids")
    assert Clinic.model_validate(data).npi is None
    assert Clinic.model_validate(data | {"npi": "1234567893"}).npi == "1234567893"
    assert_rejected(Clinic, data | {"npi": "1234567890"}, loc=("npi",), match="NPI")


# --------------------------------------------------------------------------- common


@pytest.mark.parametrize(
    ("model", "builder", "field"),
    [
        (AdministrationSession, iv_session, "started_at"),
        (VitalsReading, vitals, "taken_at"),
        (IntegrationSession, integration, "started_at"),
    ],
)
def test_timestamps_need_an_offset(model, builder, field) -> None:  # type: ignore[no-untyped-def]
    """FHIR dateTime with a time must carry a zone offset (common.Instant)."""
    naive = T0.replace(tzinfo=None)
    data = builder(**{field: naive})
    if model is AdministrationSession:
        data["ended_at"] = naive + minutes(40)
    assert_rejected(model, data, loc=(field,), match="offset")


@pytest.mark.parametrize("text", ["2026-03-02T09:00:00", "2026-03-02T09:00"])
def test_timestamp_strings_without_offset_rejected(text: str) -> None:
    assert_rejected(VitalsReading, vitals(taken_at=text), loc=("taken_at",))


@pytest.mark.parametrize("text", ["2026-03-02T09:00:00Z", "2026-03-02T09:00:00-05:00", "2026-03-02T09:00:00+00:00"])
def test_timestamp_strings_with_offset_accepted(text: str) -> None:
    assert VitalsReading.model_validate(vitals(taken_at=text)).taken_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("model", "builder"),
    [
        (AdministrationSession, iv_session),
        (VitalsReading, vitals),
        (IntegrationSession, integration),
        (MedicationTrial, trial),
        (ContraindicationScreen, screen),
        (Practitioner, practitioner),
    ],
)
def test_unknown_field_rejected(model, builder) -> None:  # type: ignore[no-untyped-def]
    """extra='forbid': a typo never disappears silently (common.DomainRecord)."""
    assert_rejected(model, builder(dose_mgg=1), loc=("dose_mgg",), error_type="extra_forbidden")


@pytest.mark.parametrize("key", ["", "-abc", "a b", "a/b", "x" * 65])
def test_record_key_pattern(key: str) -> None:
    assert_rejected(VitalsReading, vitals(id=key), loc=("id",))


def test_records_are_frozen() -> None:
    reading = VitalsReading.model_validate(vitals())
    with pytest.raises(Exception):
        reading.systolic_mmhg = 200  # type: ignore[misc]


# --------------------------------------------------------------------------- AdministrationSession


def test_valid_iv_session() -> None:
    s = AdministrationSession.model_validate(iv_session())
    assert s.infusion_minutes == Decimal(40)
    assert s.administered_mg_per_kg == Decimal("0.500")
    assert s.esketamine_devices is None


@pytest.mark.parametrize(
    ("dose", "devices"),
    [(Decimal(28), 1), (Decimal(56), 2), (Decimal(84), 3), (Decimal("56.00"), 2), (Decimal(84), None)],
)
def test_valid_esketamine_session(dose: Decimal, devices: int | None) -> None:
    """SPRAVATO 28 mg per device: 28 = 1, 56 = 2, 84 = 3 devices [S23]."""
    s = AdministrationSession.model_validate(esketamine_session(dose_mg=dose, devices=devices))
    assert s.esketamine_devices == int(dose / 28)


@pytest.mark.parametrize("route", ["intravenous", "intramuscular", "sublingual"])
def test_ketamine_routes(route: str) -> None:
    data = iv_session(route=route)
    assert AdministrationSession.model_validate(data).route.value == route


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        pytest.param(dict(route="intranasal"), "route intranasal", id="ketamine-intranasal"),
        pytest.param(dict(route="oral"), "route oral", id="ketamine-oral"),
        pytest.param(dict(weight_kg=DROP), "weight_kg", id="iv-without-weight"),
        pytest.param(dict(ended_at=T0 - minutes(1)), "ended_at is before started_at", id="ended-before-started"),
        pytest.param(dict(ended_at=None), "ended_at", id="completed-iv-without-stop"),
        pytest.param(dict(status="not-done"), "status_reason", id="not-done-without-reason"),
        pytest.param(dict(devices=1), "esketamine only", id="devices-on-ketamine"),
        pytest.param(dict(discharged_at=T0 + minutes(39)), "discharged_at", id="discharged-before-end"),
    ],
)
def test_iv_session_rejections(overrides: dict, match: str) -> None:
    assert_rejected(AdministrationSession, iv_session(**overrides), loc=(), match=match)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        pytest.param(dict(dose_mg=Decimal(70), devices=None), "28, 56 or 84", id="esketamine-70mg"),
        pytest.param(dict(dose_mg=Decimal(112), devices=None), "28, 56 or 84", id="esketamine-112mg"),
        pytest.param(dict(dose_mg=Decimal(84), devices=2), "3 devices, not 2", id="84mg-with-2-devices"),
        pytest.param(dict(dose_mg=Decimal(28), devices=2), "1 devices, not 2", id="28mg-with-2-devices"),
        pytest.param(dict(route="intravenous", weight_kg=Decimal(70)), "route intravenous", id="esketamine-iv"),
        pytest.param(dict(route="sublingual"), "route sublingual", id="esketamine-sublingual"),
    ],
)
def test_esketamine_session_rejections(overrides: dict, match: str) -> None:
    assert_rejected(AdministrationSession, esketamine_session(**overrides), loc=(), match=match)


def test_esketamine_devices_out_of_range_at_field() -> None:
    assert_rejected(AdministrationSession, esketamine_session(devices=4), loc=("devices",))


def test_session_edge_cases_accepted() -> None:
    # ended exactly at start; stopped IV without stop time; not-done with reason
    AdministrationSession.model_validate(iv_session(ended_at=T0))
    AdministrationSession.model_validate(iv_session(status="stopped", ended_at=None))
    AdministrationSession.model_validate(
        iv_session(status="not-done", status_reason="BP 170/100 pre-dose", ended_at=None)
    )
    # IM ketamine needs no weight
    AdministrationSession.model_validate(iv_session(route="intramuscular", weight_kg=DROP, ended_at=None))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight_kg", Decimal("19.9")),
        ("weight_kg", Decimal("350.1")),
        ("weight_kg", Decimal("70.25")),  # one decimal place
        ("dose_mg", Decimal(0)),
    ],
)
def test_session_field_bounds(field: str, value: Decimal) -> None:
    assert_rejected(AdministrationSession, iv_session(**{field: value}), loc=(field,))


def test_observation_minutes() -> None:
    """REMS: monitoring >= 2 hours after dosing [S24][S25]; derived from end of dosing."""
    s = AdministrationSession.model_validate(esketamine_session(discharged_at=T0 + minutes(125)))
    assert s.observation_minutes == Decimal(120)


# --------------------------------------------------------------------------- VitalsReading


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        pytest.param(dict(diastolic_mmhg=None), "go together", id="systolic-without-diastolic"),
        pytest.param(dict(systolic_mmhg=None), "go together", id="diastolic-without-systolic"),
        pytest.param(dict(systolic_mmhg=80, diastolic_mmhg=80), "above diastolic", id="systolic-equals-diastolic"),
        pytest.param(dict(systolic_mmhg=70, diastolic_mmhg=80), "above diastolic", id="systolic-below-diastolic"),
        pytest.param(dict(systolic_mmhg=None, diastolic_mmhg=None), "at least one measurement", id="no-measurement"),
    ],
)
def test_vitals_rejections(overrides: dict, match: str) -> None:
    assert_rejected(VitalsReading, vitals(**overrides), loc=(), match=match)


@pytest.mark.parametrize(
    ("overrides", "measurements"),
    [
        (dict(systolic_mmhg=81, diastolic_mmhg=80), ["blood_pressure"]),
        (dict(systolic_mmhg=None, diastolic_mmhg=None, heart_rate_bpm=72), ["heart_rate"]),
        (dict(systolic_mmhg=None, diastolic_mmhg=None, spo2_percent=97), ["spo2"]),
        (dict(systolic_mmhg=None, diastolic_mmhg=None, temperature_c=Decimal("36.8")), ["body_temperature"]),
        (dict(heart_rate_bpm=72, respiratory_rate=14), ["blood_pressure", "heart_rate", "respiratory_rate"]),
    ],
)
def test_vitals_accepted(overrides: dict, measurements: list[str]) -> None:
    assert VitalsReading.model_validate(vitals(**overrides)).measurements() == measurements


@pytest.mark.parametrize(("field", "value"), [("spo2_percent", 101), ("heart_rate_bpm", 19), ("systolic_mmhg", 301)])
def test_vitals_field_bounds(field: str, value: int) -> None:
    assert_rejected(VitalsReading, vitals(**{field: value}), loc=(field,))


# --------------------------------------------------------------------------- IntegrationSession


@pytest.mark.parametrize("modality", ["emdr", "art", "ifs", "cbt", "behavioural-activation"])
def test_integration_needs_follows_session(modality: str) -> None:
    """Integration follows an administration (program.md step 4)."""
    assert_rejected(
        IntegrationSession, integration(modality=modality, follows_session_id=None), loc=(), match="follows_session_id"
    )


def test_preparation_needs_no_follows_session() -> None:
    """Preparation comes before the first administration (program.md step 2)."""
    assert IntegrationSession.model_validate(integration(modality="preparation", follows_session_id=None))


@pytest.mark.parametrize("mins", [0, 241])
def test_integration_minutes_bounds(mins: int) -> None:
    assert_rejected(IntegrationSession, integration(minutes=mins), loc=("minutes",))


def test_integration_minutes_may_be_missing() -> None:
    assert IntegrationSession.model_validate(integration(minutes=None)).minutes is None


# --------------------------------------------------------------------------- MedicationTrial


def test_trial_end_before_start_rejected() -> None:
    assert_rejected(
        MedicationTrial, trial(end_date=dt.date(2024, 12, 31)), loc=(), match="end_date is before start_date"
    )


def test_trial_end_equal_start_accepted() -> None:
    assert MedicationTrial.model_validate(trial(end_date=dt.date(2025, 1, 1)))


def test_trial_start_after_recorded_rejected() -> None:
    assert_rejected(MedicationTrial, trial(recorded_on=dt.date(2024, 12, 31)), loc=(), match="recorded_on")


@pytest.mark.parametrize(("field", "value"), [("daily_dose_mg", 0), ("drug", "Sertraline"), ("outcome", "cured")])
def test_trial_field_rules(field: str, value: object) -> None:
    assert_rejected(MedicationTrial, trial(**{field: value}), loc=(field,))


# --------------------------------------------------------------------------- ContraindicationScreen


def test_screen_duplicate_item_rejected() -> None:
    findings = [{"item": "pregnancy", "present": False}, {"item": "pregnancy", "present": True}]
    assert_rejected(ContraindicationScreen, screen(findings=findings), loc=(), match="once")


def test_screen_needs_findings() -> None:
    assert_rejected(ContraindicationScreen, screen(findings=[]), loc=("findings",))


def test_screen_bp_pair() -> None:
    assert_rejected(ContraindicationScreen, screen(systolic_mmhg=150), loc=(), match="go together")


def test_screen_unknown_item_rejected() -> None:
    data = screen(findings=[{"item": "migraine", "present": True}])
    assert_rejected(ContraindicationScreen, data, loc=("findings", 0, "item"))


# --------------------------------------------------------------------------- ICD-10-CM MDD


@pytest.mark.parametrize(
    ("code", "episode", "severity", "psychotic"),
    [
        ("F32.0", "single", "mild", False),
        ("F32.1", "single", "moderate", False),
        ("F32.2", "single", "severe", False),
        ("F32.3", "single", "severe-psychotic", True),
        ("F32.4", "single", "partial-remission", False),
        ("F32.5", "single", "full-remission", False),
        ("F32.9", "single", "unspecified", False),
        ("F32.A", "single", "unspecified", False),
        ("F32.89", "single", "other-specified", False),
        ("F33.0", "recurrent", "mild", False),
        ("F33.1", "recurrent", "moderate", False),
        ("F33.2", "recurrent", "severe", False),
        ("F33.3", "recurrent", "severe-psychotic", True),
        ("F33.40", "recurrent", "remission-unspecified", False),
        ("F33.41", "recurrent", "partial-remission", False),
        ("F33.42", "recurrent", "full-remission", False),
        ("F33.9", "recurrent", "unspecified", False),
    ],
)
def test_classify_mdd(code: str, episode: str, severity: str, psychotic: bool) -> None:
    """Every F32/F33 code of clinical-coding.md §5.1 (VSAC 'Major Depression Including
    Remission' [S21])."""
    result = classify_mdd(code)
    assert result is not None
    assert (result.episode, result.severity, result.psychotic) == (episode, severity, psychotic)


@pytest.mark.parametrize(
    "code",
    [
        "F33.4",  # not a valid billable code: recurrent remission needs F33.40/.41/.42
        "F33.5",
        "F33.A",
        "F33.89",
        "F32.40",  # fifth characters exist only for F33.4x
        "F32.41",
        "F32.42",
        "F32.8",
        "F32.81",
        "F32.6",
        "F31.81",  # bipolar II
        "F41.1",
        "F32",
        "F322",
        "f32.1",
    ],
)
def test_classify_mdd_rejects_other_codes(code: str) -> None:
    assert classify_mdd(code) is None


@pytest.mark.parametrize("code", ["F33.41", "F32.A", "I10", "Z33.1"])
def test_diagnosis_accepts_dotted_icd10(code: str) -> None:
    data = dict(id="dx-1", clinic_id="clinic-1", patient_id="pat-1", icd10=code, recorded_on=dt.date(2026, 1, 1))
    assert Diagnosis.model_validate(data).icd10 == code


@pytest.mark.parametrize("code", ["F3341", "F33.", "f33.1", "F33.12345"])
def test_diagnosis_rejects_malformed_icd10(code: str) -> None:
    """clinical-coding.md §5.1: in FHIR write codes with the dot."""
    data = dict(id="dx-1", clinic_id="clinic-1", patient_id="pat-1", icd10=code, recorded_on=dt.date(2026, 1, 1))
    assert_rejected(Diagnosis, data, loc=("icd10",))
