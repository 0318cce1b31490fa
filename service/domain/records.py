"""The registry of record kinds: name used by the API and store, model class, and which
fields refer to which other kinds (so a reference to a record that does not exist is caught)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .administration import AdministrationSession
from .common import DomainRecord
from .coverage import CoverageRecord
from .enrollment import Enrollment
from .maintenance import MaintenanceDecision
from .monitoring import AdverseEvent, VitalsReading
from .organization import Clinic, Location, Practitioner
from .patient import Patient
from .psychotherapy import IntegrationSession
from .questionnaires import QuestionnaireAnswers
from .screening import ContraindicationScreen, Diagnosis, MedicalClearance, MedicationTrial

PRACTITIONER_FIELDS = (
    "practitioner_id",
    "prescriber_id",
    "rater_id",
    "recorder_id",
    "care_manager_id",
    "performer_id",
)


@dataclass(frozen=True)
class RecordKind:
    """One kind of record: its URL/store name, model, and reference fields -> target kind."""

    name: str
    model: type[DomainRecord]
    references: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def patient_scoped(self) -> bool:
        return "patient_id" in self.model.model_fields


def _refs(model: type[DomainRecord], extra: dict[str, str] | None = None) -> dict[str, str]:
    refs = {f: "practitioners" for f in PRACTITIONER_FIELDS if f in model.model_fields}
    for name, target in {
        "patient_id": "patients",
        "enrollment_id": "enrollments",
        "location_id": "locations",
        "session_id": "administration-sessions",
        "follows_session_id": "administration-sessions",
    }.items():
        if name in model.model_fields:
            refs[name] = target
    refs.update(extra or {})
    return refs


_KINDS = [
    RecordKind("clinics", Clinic, {}, "A treatment clinic (the tenant)"),
    RecordKind("practitioners", Practitioner, _refs(Practitioner), "A clinician with an NPI"),
    RecordKind("locations", Location, _refs(Location), "A treatment location"),
    RecordKind("patients", Patient, _refs(Patient), "A patient"),
    RecordKind("enrollments", Enrollment, _refs(Enrollment), "Enrollment in a program course"),
    RecordKind("diagnoses", Diagnosis, _refs(Diagnosis), "A diagnosed condition"),
    RecordKind("medication-trials", MedicationTrial, _refs(MedicationTrial), "A prior antidepressant trial"),
    RecordKind(
        "contraindication-screens", ContraindicationScreen, _refs(ContraindicationScreen), "The contraindication screen"
    ),
    RecordKind("medical-clearances", MedicalClearance, _refs(MedicalClearance), "Medical clearance"),
    RecordKind(
        "administration-sessions", AdministrationSession, _refs(AdministrationSession), "A ketamine/esketamine session"
    ),
    RecordKind("vitals", VitalsReading, _refs(VitalsReading), "A time-stamped set of vital signs"),
    RecordKind("adverse-events", AdverseEvent, _refs(AdverseEvent), "An adverse event"),
    RecordKind("integration-sessions", IntegrationSession, _refs(IntegrationSession), "A psychotherapy session"),
    RecordKind(
        "questionnaire-responses", QuestionnaireAnswers, _refs(QuestionnaireAnswers), "A scored questionnaire"
    ),
    RecordKind(
        "maintenance-decisions", MaintenanceDecision, _refs(MaintenanceDecision), "A maintenance decision"
    ),
    RecordKind("coverages", CoverageRecord, _refs(CoverageRecord), "An insurance coverage (payer, member id, plan)"),
]

RECORD_KINDS: dict[str, RecordKind] = {k.name: k for k in _KINDS}
KIND_OF_MODEL: dict[type[DomainRecord], str] = {k.model: k.name for k in _KINDS}


def kind_of(record: DomainRecord) -> RecordKind:
    return RECORD_KINDS[KIND_OF_MODEL[type(record)]]
