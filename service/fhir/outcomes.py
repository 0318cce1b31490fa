"""Outcome status Observations derived from a patient's score trajectory.

Per clinical-coding.md §1.6: "store the derived result as an Observation with a local code
plus derivedFrom pointing at the baseline and follow-up score Observations". One Observation
per follow-up score (PHQ-9 or MADRS), its value a program-outcomes code (response,
partial-response, non-response, remission, relapse, not-evaluable), the applied rule in a
note. These depend on several records, so the use case that stores a questionnaire
recomputes them; the ids are deterministic, so unchanged outcomes are not re-versioned.
"""

from __future__ import annotations

from ..domain.outcomes import OutcomePoint, OutcomeRules
from ..domain.scoring import Instrument
from .codes import category, concept_cc
from .context import MappingContext
from .elements import codeable, instant, num, prune
from .local_codes import local_coding

KIND = "questionnaire-responses"
STATUS_CODE = {Instrument.PHQ9: "phq9_response_status", Instrument.MADRS: "madrs_response_status"}


def outcome_observations(
    instrument: Instrument, patient_id: str, track: list[OutcomePoint], rules: OutcomeRules, ctx: MappingContext
) -> list[dict]:
    """Observations for every point after the baseline of `track` (from domain.outcomes.trajectory)."""
    if len(track) < 2:
        return []
    baseline = track[0].point
    baseline_ref = ctx.ref("Observation", KIND, baseline.record_id, "total")
    out = []
    for item in track[1:]:
        reduction = f"{num(item.reduction * 100)} % reduction" if item.reduction is not None else "reduction not computable"
        out.append(
            prune(
                {
                    "resourceType": "Observation",
                    "id": ctx.id("Observation", KIND, item.point.record_id, "outcome"),
                    "status": "final",
                    "category": [category("observation_category_survey")],
                    "code": concept_cc("instruments", STATUS_CODE[instrument]),
                    "subject": ctx.patient_ref(patient_id),
                    "effectiveDateTime": instant(item.point.when),
                    "valueCodeableConcept": codeable(local_coding("program-outcomes", item.status.value)),
                    "derivedFrom": [baseline_ref, ctx.ref("Observation", KIND, item.point.record_id, "total")],
                    "note": [
                        {
                            "text": f"Baseline {baseline.total}, follow-up {item.point.total}: {reduction}. "
                            f"Rule: {rules.describe(instrument)}."
                        }
                    ],
                }
            )
        )
    return out
