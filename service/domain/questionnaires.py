"""Questionnaire responses with item answers (PHQ-9, GAD-7, C-SSRS screener, MADRS, CADSS)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StrictBool, StrictInt, StringConstraints, model_validator

from .common import Instant, PatientRecord, RecordKey
from .scoring import AnswerError, Instrument, ScoreResult, check_answers, score


class Timepoint(StrEnum):
    BASELINE = "baseline"
    PRE_SESSION = "pre-session"
    POST_SESSION = "post-session"
    FOLLOW_UP = "follow-up"
    SCREENING = "screening"


ItemId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,2}b?$")]


class QuestionnaireAnswers(PatientRecord):
    """A completed questionnaire: item answers keyed by item number ("1".."23", C-SSRS "6b").

    PHQ-9/GAD-7/MADRS/CADSS answers are points; C-SSRS screener answers are true/false.
    Copyrighted instruments (MADRS, CADSS) are stored as item scores only, never item text.
    """

    instrument: Instrument
    authored_at: Instant
    timepoint: Timepoint
    answers: dict[ItemId, StrictBool | StrictInt] = Field(min_length=1, max_length=30)
    session_id: RecordKey | None = None
    enrollment_id: RecordKey | None = None
    rater_id: RecordKey | None = None
    """Practitioner who rated (MADRS, CADSS) or administered it; None for self-report."""

    @model_validator(mode="after")
    def _answers_fit(self) -> "QuestionnaireAnswers":
        try:
            check_answers(self.instrument, dict(self.answers))
        except AnswerError as exc:
            raise ValueError(f"answers.{exc.item}: {exc}") from None
        return self

    def result(self) -> ScoreResult:
        return score(self.instrument, dict(self.answers))
