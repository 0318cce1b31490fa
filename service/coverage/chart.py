"""A patient's chart as the coverage rules see it: typed domain records plus, for each, the
FHIR resources it produced (for links and for PAS Bundles)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..domain.administration import AdministrationSession
from ..domain.common import DomainRecord
from ..domain.coverage import CoverageRecord
from ..domain.enrollment import Enrollment
from ..domain.monitoring import VitalsReading
from ..domain.organization import Clinic, Location, Practitioner
from ..domain.patient import Patient
from ..domain.psychotherapy import IntegrationSession
from ..domain.questionnaires import QuestionnaireAnswers
from ..domain.records import RECORD_KINDS, kind_of
from ..domain.scoring import Instrument
from ..domain.screening import ContraindicationScreen, Diagnosis, MedicationTrial

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Link:
    """Where a piece of evidence lives: the domain record and its FHIR resources."""

    kind: str
    key: str
    api: str
    fhir: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "api": self.api, "fhir": list(self.fhir)}


@dataclass
class PatientChart:
    clinic: Clinic
    patient: Patient
    records: dict[str, list[DomainRecord]] = field(default_factory=dict)
    fhir_refs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(kind, key) -> ["Type/id", ...] of the resources the record produced."""
    resources: dict[str, dict] = field(default_factory=dict)
    """"Type/id" -> stored JSON of every resource of this patient's chart (and clinic refs)."""
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)

    @classmethod
    def from_data(cls, clinic: Clinic, patient: Patient, rows: Iterable[tuple[str, dict]]) -> "PatientChart":
        chart = cls(clinic, patient)
        for kind, data in rows:
            model = RECORD_KINDS[kind].model
            chart.records.setdefault(kind, []).append(model.model_validate(data))
        return chart

    def of(self, kind: str) -> list[Any]:
        return list(self.records.get(kind, []))

    def link(self, record: DomainRecord) -> Link:
        kind = kind_of(record).name
        api = f"{API_PREFIX}/{kind}/{record.id}?clinic_id={record.clinic_id}"
        return Link(kind, record.id, api, tuple(self.fhir_refs.get((kind, record.id), [])))

    def primary_ref(self, record: DomainRecord, resource_type: str) -> str | None:
        kind = kind_of(record).name
        return next((r for r in self.fhir_refs.get((kind, record.id), []) if r.startswith(resource_type + "/")), None)

    # typed views -----------------------------------------------------------
    @property
    def diagnoses(self) -> list[Diagnosis]:
        return self.of("diagnoses")

    @property
    def trials(self) -> list[MedicationTrial]:
        return self.of("medication-trials")

    @property
    def screens(self) -> list[ContraindicationScreen]:
        return sorted(self.of("contraindication-screens"), key=lambda s: (s.screened_on, s.id))

    @property
    def sessions(self) -> list[AdministrationSession]:
        return sorted(self.of("administration-sessions"), key=lambda s: (s.started_at, s.id))

    @property
    def integration_sessions(self) -> list[IntegrationSession]:
        return sorted(self.of("integration-sessions"), key=lambda s: (s.started_at, s.id))

    @property
    def vitals(self) -> list[VitalsReading]:
        return sorted(self.of("vitals"), key=lambda v: (v.taken_at, v.id))

    @property
    def enrollments(self) -> list[Enrollment]:
        return self.of("enrollments")

    @property
    def coverages(self) -> list[CoverageRecord]:
        return self.of("coverages")

    def questionnaires(self, instrument: Instrument) -> list[QuestionnaireAnswers]:
        return sorted(
            (q for q in self.of("questionnaire-responses") if q.instrument is instrument), key=lambda q: (q.authored_at, q.id)
        )

    def coverage(self, key: str) -> CoverageRecord | None:
        return next((c for c in self.coverages if c.id == key), None)

    def session(self, key: str) -> AdministrationSession | None:
        return next((s for s in self.sessions if s.id == key), None)


def local_date(moment: dt.datetime) -> dt.date:
    """The calendar date at the place the time was recorded (its own offset)."""
    return moment.date()
