"""IntegrationSession -> Encounter and Procedure (US Core), coded with SNOMED CT for the
modality and the CPT psychotherapy code its documented minutes support
(service/domain/time_based_codes.py, APA time rules [S29]). When minutes are missing or
too short, no CPT code is added and the Procedure says why in a note, rather than guessing.
"""

from __future__ import annotations

from ...domain.psychotherapy import IntegrationSession, Modality
from ...domain.time_based_codes import NotCodable, psychotherapy_code
from ...terminology import coding, codings
from ..codes import concept_cc
from ..context import MappingContext
from ..elements import codeable, instant, meta, period, prune, ref
from ..mapper import builds

KIND = "integration-sessions"
MODALITY_CONCEPT = {
    Modality.EMDR: "emdr",
    Modality.ART: "accelerated_resolution_therapy",
    Modality.IFS: "internal_family_systems",
    Modality.CBT: "cbt",
    Modality.BEHAVIOURAL_ACTIVATION: "behavioural_activation",
    Modality.PREPARATION: "preparation_session",
}


def _end(session: IntegrationSession):
    if session.minutes is None:
        return None
    from datetime import timedelta

    return session.started_at + timedelta(minutes=session.minutes)


@builds(IntegrationSession)
def integration_session(session: IntegrationSession, ctx: MappingContext) -> list[dict]:
    key = session.id
    patient = ctx.patient_ref(session.patient_id)
    practitioner = ctx.practitioner_ref(session.practitioner_id)
    encounter_type = "preparation_session" if session.modality is Modality.PREPARATION else "integration_psychotherapy"
    encounter = prune(
        {
            "resourceType": "Encounter",
            "id": ctx.id("Encounter", KIND, key),
            "meta": meta("us-core-encounter"),
            "identifier": [ctx.identifier(KIND, key)],
            "status": "finished",
            "class": coding("encounter-types", "class_ambulatory"),
            "type": [concept_cc("encounter-types", encounter_type)],
            "subject": patient,
            "episodeOfCare": [ctx.ref("EpisodeOfCare", "enrollments", session.enrollment_id)] if session.enrollment_id else [],
            "partOf": ctx.ref("Encounter", "administration-sessions", session.follows_session_id)
            if session.follows_session_id
            else None,
            "participant": [{"individual": practitioner}],
            "period": period(session.started_at, _end(session)),
            "location": [{"location": ctx.ref("Location", "locations", session.location_id)}] if session.location_id else [],
            "serviceProvider": ctx.organization_ref(),
        }
    )
    procedure_codings = list(codings("procedures", MODALITY_CONCEPT[session.modality]))
    notes = []
    if session.modality is not Modality.PREPARATION:
        cpt = psychotherapy_code(session.minutes, session.with_em_visit)
        if isinstance(cpt, NotCodable):
            notes.append({"text": f"No psychotherapy CPT code: {cpt.reason}"})
        else:
            procedure_codings.append(coding("procedures", f"cpt_{cpt.code}"))
    procedure = prune(
        {
            "resourceType": "Procedure",
            "id": ctx.id("Procedure", KIND, key),
            "meta": meta("us-core-procedure"),
            "identifier": [ctx.identifier(KIND, key)],
            "status": "completed",
            "code": codeable(procedure_codings, f"Integration psychotherapy: {session.modality.value}"),
            "subject": patient,
            "encounter": ref(encounter),
            "performedPeriod": period(session.started_at, _end(session)),
            "performedDateTime": None,
            "performer": [{"actor": practitioner}],
            "location": ctx.ref("Location", "locations", session.location_id) if session.location_id else None,
            "note": notes,
        }
    )
    if session.minutes is None:
        procedure.pop("performedPeriod", None)
        procedure["performedDateTime"] = instant(session.started_at)
    return [encounter, procedure]
