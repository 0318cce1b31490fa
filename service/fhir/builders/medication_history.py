"""MedicationTrial -> US Core MedicationRequest (reported history of an antidepressant trial).

US Core represents medication history as MedicationRequest with `reported[x]`, and Da Vinci
PAS accepts only MedicationRequest as supporting information (clinical-coding.md §6.3).
The trial's outcome is the `statusReason` (local antidepressant-trial-outcome codes); dose
and period go in `dosageInstruction`; the prescriber of a past trial is usually unknown and
is then named as such rather than guessed.
"""

from __future__ import annotations

from ...domain.screening import MedicationTrial, TrialOutcome
from ..codes import concept_cc
from ..context import MappingContext
from ..elements import codeable, num, prune, quantity
from ..local_codes import local_coding
from ..mapper import builds

MEDREQ_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"


def _status(trial: MedicationTrial) -> str:
    if trial.end_date is None:
        return "active"
    return "completed" if trial.outcome is TrialOutcome.RESPONSE else "stopped"


@builds(MedicationTrial)
def medication_trial(trial: MedicationTrial, ctx: MappingContext) -> list[dict]:
    kind, key = "medication-trials", trial.id
    weeks = trial.duration_weeks(trial.end_date or trial.recorded_on)
    bounds = {"start": trial.start_date.isoformat()}
    if trial.end_date:
        bounds["end"] = trial.end_date.isoformat()
    note = (
        f"Prior antidepressant trial ({trial.source.value}): {num(trial.daily_dose_mg)} mg/day for {num(weeks)} weeks; "
        f"adequate dose: {'yes' if trial.adequate_dose else 'no'}; outcome: {trial.outcome.value}; "
        f"{'current' if trial.current_episode else 'earlier'} episode."
    )
    return [
        prune(
            {
                "resourceType": "MedicationRequest",
                "id": ctx.id("MedicationRequest", kind, key),
                "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"]},
                "identifier": [ctx.identifier(kind, key)],
                "status": _status(trial),
                "statusReason": codeable(local_coding("antidepressant-trial-outcome", trial.outcome.value)),
                "intent": "order",
                "category": [codeable({"system": MEDREQ_CATEGORY, "code": "community", "display": "Community"})],
                "reportedBoolean": True,
                "medicationCodeableConcept": concept_cc("antidepressants", trial.drug),
                "subject": ctx.patient_ref(trial.patient_id),
                "authoredOn": trial.start_date.isoformat(),
                "requester": {"display": "Prescriber of the prior trial (not recorded)"},
                "recorder": ctx.practitioner_ref(trial.recorder_id) if trial.recorder_id else None,
                "note": [{"text": note}],
                "dosageInstruction": [
                    {
                        "text": f"{num(trial.daily_dose_mg)} mg daily",
                        "timing": {"repeat": {"boundsPeriod": bounds, "frequency": 1, "period": 1, "periodUnit": "d"}},
                        "doseAndRate": [{"doseQuantity": quantity(trial.daily_dose_mg, "mg")}],
                    }
                ],
            }
        )
    ]
