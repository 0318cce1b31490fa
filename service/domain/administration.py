"""Ketamine and esketamine administration sessions.

Sources: IV racemic ketamine 0.5 mg/kg over 40 minutes (Fava et al. 2020 [S34]); SPRAVATO
28 mg per device, 56 mg = 2 devices, 84 mg = 3 devices (label, How Supplied [S23]);
routes per clinical-coding.md §3.2.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .common import Instant, NonBlank, PatientRecord, RecordKey

ESKETAMINE_MG_PER_DEVICE = Decimal(28)
ESKETAMINE_DOSES_MG = frozenset({Decimal(28), Decimal(56), Decimal(84)})


class Agent(StrEnum):
    KETAMINE = "ketamine"
    """Racemic ketamine hydrochloride (off-label for depression)."""
    ESKETAMINE = "esketamine"
    """SPRAVATO nasal spray."""


class Route(StrEnum):
    INTRAVENOUS = "intravenous"
    INTRAMUSCULAR = "intramuscular"
    SUBLINGUAL = "sublingual"
    INTRANASAL = "intranasal"
    ORAL = "oral"


ROUTES_BY_AGENT = {
    Agent.KETAMINE: frozenset({Route.INTRAVENOUS, Route.INTRAMUSCULAR, Route.SUBLINGUAL}),
    Agent.ESKETAMINE: frozenset({Route.INTRANASAL}),
}


class SessionStatus(StrEnum):
    """Mirrors FHIR MedicationAdministration.status for what a clinic records."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    """Started but stopped early (e.g. blood pressure, distress)."""
    NOT_DONE = "not-done"
    """Planned but not given (e.g. failed pre-dose check)."""


MedicationKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,60}$")]
Ndc = Annotated[str, StringConstraints(pattern=r"^\d{4,5}-\d{3,4}(-\d{1,2})?$")]


class Premedication(BaseModel):
    """A drug given before the session, e.g. ondansetron against nausea."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drug: MedicationKey
    """Key in mappings/terminology/medications.json."""
    dose_mg: Decimal = Field(gt=0, le=1000, max_digits=7, decimal_places=3)
    route: Route
    given_at: Instant


class AdministrationSession(PatientRecord):
    """One dosing session: what was given, how, to whom, by whom, and the observation period."""

    enrollment_id: RecordKey
    location_id: RecordKey
    practitioner_id: RecordKey
    """The practitioner who administered (or supervised self-administration of) the dose."""
    prescriber_id: RecordKey | None = None
    agent: Agent
    route: Route
    product: MedicationKey
    """Key of the product in mappings/terminology/medications.json."""
    ndc: Ndc | None = None
    lot_number: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-]{1,20}$")] | None = None
    status: SessionStatus = SessionStatus.COMPLETED
    status_reason: NonBlank | None = None
    weight_kg: Decimal | None = Field(default=None, ge=20, le=350, max_digits=5, decimal_places=1)
    """Body weight measured before the session (required for weight-based ketamine dosing)."""
    prescribed_mg_per_kg: Decimal | None = Field(default=None, gt=0, le=3, max_digits=4, decimal_places=3)
    dose_mg: Decimal = Field(gt=0, le=1000, max_digits=7, decimal_places=2)
    """The absolute dose actually administered."""
    concentration_mg_per_ml: Decimal | None = Field(default=None, gt=0, le=100, max_digits=6, decimal_places=3)
    """Concentration of the infused solution; with it the pump rate in mL/h is derived."""
    pump_rate_ml_per_h: Decimal | None = Field(default=None, gt=0, le=2000, max_digits=7, decimal_places=2)
    devices: int | None = Field(default=None, ge=1, le=3)
    """Esketamine: number of 28 mg nasal devices used."""
    started_at: Instant
    ended_at: Instant | None = None
    """End of infusion or of the last nasal device."""
    premedications: list[Premedication] = Field(default_factory=list, max_length=5)
    discharged_at: Instant | None = None
    discharge_ready: bool | None = None
    """The provider judged the patient ready for discharge (REMS: provider decides)."""

    @model_validator(mode="after")
    def _consistent(self) -> "AdministrationSession":
        if self.route not in ROUTES_BY_AGENT[self.agent]:
            allowed = ", ".join(sorted(ROUTES_BY_AGENT[self.agent]))
            raise ValueError(f"route {self.route.value} is not used for {self.agent.value} (allowed: {allowed})")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if self.discharged_at is not None and self.discharged_at < (self.ended_at or self.started_at):
            raise ValueError("discharged_at is before the end of dosing")
        if self.route is Route.INTRAVENOUS:
            if self.weight_kg is None:
                raise ValueError("an intravenous session needs weight_kg (dose is weight-based)")
            if self.ended_at is None and self.status is SessionStatus.COMPLETED:
                raise ValueError("a completed intravenous session needs ended_at (infusion stop time)")
        if self.agent is Agent.ESKETAMINE:
            if self.dose_mg not in ESKETAMINE_DOSES_MG:
                raise ValueError("esketamine dose_mg must be 28, 56 or 84 (28 mg per device)")
            expected = int(self.dose_mg / ESKETAMINE_MG_PER_DEVICE)
            if self.devices is not None and self.devices != expected:
                raise ValueError(f"{self.dose_mg} mg of esketamine is {expected} devices, not {self.devices}")
        elif self.devices is not None:
            raise ValueError("devices applies to esketamine only")
        if self.status is SessionStatus.NOT_DONE and self.status_reason is None:
            raise ValueError("a session that was not done needs status_reason")
        return self

    @property
    def infusion_minutes(self) -> Decimal | None:
        """Documented dosing duration in minutes (stop minus start)."""
        if self.ended_at is None:
            return None
        return Decimal((self.ended_at - self.started_at).total_seconds()) / Decimal(60)

    @property
    def administered_mg_per_kg(self) -> Decimal | None:
        """Administered dose per kg of the pre-session weight, to 3 decimals."""
        if self.weight_kg is None:
            return None
        return (self.dose_mg / self.weight_kg).quantize(Decimal("0.001"))

    @property
    def esketamine_devices(self) -> int | None:
        if self.agent is not Agent.ESKETAMINE:
            return None
        return self.devices or int(self.dose_mg / ESKETAMINE_MG_PER_DEVICE)

    @property
    def observation_minutes(self) -> Decimal | None:
        """Minutes from the end of dosing to discharge (REMS requires at least 120)."""
        if self.discharged_at is None:
            return None
        end = self.ended_at or self.started_at
        return Decimal((self.discharged_at - end).total_seconds()) / Decimal(60)
