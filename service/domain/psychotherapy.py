"""Integration psychotherapy sessions that follow administration sessions (program.md step 4)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from .common import Instant, PatientRecord, RecordKey


class Modality(StrEnum):
    EMDR = "emdr"
    ART = "art"
    """Accelerated Resolution Therapy."""
    IFS = "ifs"
    """Internal Family Systems."""
    CBT = "cbt"
    BEHAVIOURAL_ACTIVATION = "behavioural-activation"
    PREPARATION = "preparation"
    """Set-and-setting preparation before the first administration (program.md step 2)."""


class IntegrationSession(PatientRecord):
    """A psychotherapy session. Minutes are what the clinician documented face to face;
    they drive the psychotherapy CPT code, so a missing value is kept missing, not guessed.
    Psychotherapy notes are deliberately not stored (HIPAA gives them special protection)."""

    follows_session_id: RecordKey | None = None
    """The administration session this integration session follows (None for preparation)."""
    enrollment_id: RecordKey | None = None
    modality: Modality
    started_at: Instant
    minutes: int | None = Field(default=None, ge=1, le=240)
    practitioner_id: RecordKey
    location_id: RecordKey | None = None
    with_em_visit: bool = False
    """Performed together with an E/M service by the prescriber (psychotherapy add-on codes)."""

    @model_validator(mode="after")
    def _link(self) -> "IntegrationSession":
        if self.modality is not Modality.PREPARATION and self.follows_session_id is None:
            raise ValueError("an integration session needs follows_session_id (the administration it follows)")
        return self
