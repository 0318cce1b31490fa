"""MaintenanceDecision -> CarePlan (base R4): the maintenance plan after an induction course,
coded with the local maintenance-decision CodeSystem, linked to the course's EpisodeOfCare
through the `supportingInfo` and authored by the deciding practitioner."""

from __future__ import annotations

from ...domain.maintenance import MaintenanceDecision
from ..context import MappingContext
from ..elements import codeable, period, prune
from ..local_codes import local_coding
from ..mapper import builds


@builds(MaintenanceDecision)
def maintenance_plan(decision: MaintenanceDecision, ctx: MappingContext) -> list[dict]:
    kind, key = "maintenance-decisions", decision.id
    choice = local_coding("maintenance-decision", decision.decision.value)
    return [
        prune(
            {
                "resourceType": "CarePlan",
                "id": ctx.id("CarePlan", kind, key),
                "identifier": [ctx.identifier(kind, key)],
                "status": "active",
                "intent": "plan",
                "category": [codeable(choice)],
                "title": f"Maintenance decision: {choice['display']}",
                "description": decision.rationale,
                "subject": ctx.patient_ref(decision.patient_id),
                "period": period(decision.decided_on, decision.next_review_on),
                "created": decision.decided_on.isoformat(),
                "author": ctx.practitioner_ref(decision.practitioner_id),
                "supportingInfo": [ctx.ref("EpisodeOfCare", "enrollments", decision.enrollment_id)],
            }
        )
    ]
