"""AdverseEvent -> FHIR R4 AdverseEvent (no US Core profile exists).

Event codes from mappings/terminology/adverse-events.json (SNOMED CT where verified, else
the program's local adverse-event-type codes); seriousness and severity from the R4
adverse-event-seriousness / adverse-event-severity code systems. R4 AdverseEvent has no
element for the action taken, so actions go in an extension defined by the program
(StructureDefinition adverse-event-action), coded from the local CodeSystem.
"""

from __future__ import annotations

from ...domain.monitoring import AdverseEvent
from ...terminology import coding
from ..codes import concept_cc
from ..context import MappingContext
from ..elements import codeable, instant, prune
from ..ids import canonical
from ..local_codes import local_coding
from ..mapper import builds

ACTION_EXTENSION = canonical("StructureDefinition", "adverse-event-action")


@builds(AdverseEvent)
def adverse_event(event: AdverseEvent, ctx: MappingContext) -> list[dict]:
    kind, key = "adverse-events", event.id
    suspect = (
        [{"instance": ctx.ref("MedicationAdministration", "administration-sessions", event.session_id)}]
        if event.session_id
        else []
    )
    return [
        prune(
            {
                "resourceType": "AdverseEvent",
                "id": ctx.id("AdverseEvent", kind, key),
                "extension": [
                    {"url": ACTION_EXTENSION, "valueCodeableConcept": codeable(local_coding("adverse-event-action", a.value))}
                    for a in event.actions
                ],
                "identifier": ctx.identifier(kind, key),
                "actuality": "actual",
                "event": concept_cc("adverse-events", event.event),
                "subject": ctx.patient_ref(event.patient_id),
                "encounter": ctx.ref("Encounter", "administration-sessions", event.session_id) if event.session_id else None,
                "date": instant(event.occurred_at),
                "recorder": ctx.practitioner_ref(event.recorder_id) if event.recorder_id else None,
                "seriousness": codeable(coding("misc", "adverse_event_serious" if event.serious else "adverse_event_non_serious")),
                "severity": codeable(coding("misc", f"adverse_event_severity_{event.severity.value}")),
                "outcome": codeable(
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/adverse-event-outcome",
                        "code": event.outcome.value,
                    }
                ),
                "suspectEntity": suspect,
            }
        )
    ]
