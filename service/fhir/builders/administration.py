"""AdministrationSession -> Encounter (US Core), Medication (US Core, with lot number),
MedicationAdministration (base R4: US Core has no profile for it), Procedure (US Core), the
pre-session body-weight Observation (US Core body weight) and pre-medication administrations.

Structure per clinical-coding.md §3.3: the administered absolute dose in mg in `dose`
(never mg/kg), the weight-based intent in `dosage.text`, the rate as mg/min (rateRatio) or
as the pump rate in mL/h (rateQuantity) when the concentration or pump rate is known, and
the body-weight Observation linked through `supportingInformation`.
"""

from __future__ import annotations

from decimal import Decimal

from ...domain.administration import Agent, AdministrationSession, Route, SessionStatus
from ...domain.dosing import infusion_plan
from ...domain.time_based_codes import NotCodable, iv_administration_lines
from ...terminology import coding, concept
from ..codes import category, concept_cc
from ..context import MappingContext
from ..elements import codeable, instant, meta, num, period, prune, quantity, ref
from ..mapper import builds
from .vital_signs import vital_sign

KIND = "administration-sessions"
PROCEDURE_STATUS = {SessionStatus.COMPLETED: "completed", SessionStatus.STOPPED: "stopped", SessionStatus.NOT_DONE: "not-done"}
ENCOUNTER_STATUS = {SessionStatus.COMPLETED: "finished", SessionStatus.STOPPED: "finished", SessionStatus.NOT_DONE: "cancelled"}
AGENT_CONCEPT = {Agent.KETAMINE: "ketamine", Agent.ESKETAMINE: "spravato_nasal_spray"}
ADMINISTRATION_SNOMED = ("procedures", "ketamine_infusion")  # 18629005 Administration of medicine


def _medication(session: AdministrationSession, ctx: MappingContext) -> dict:
    """The product given at this session, with its lot (US Core Medication)."""
    codings = []
    product = concept("medications", session.product)
    agent = concept("medications", AGENT_CONCEPT[session.agent])
    for spec in (agent, product):
        if spec.verified:
            codings.append({"system": spec.system, "code": spec.code, "display": spec.display})
    if session.ndc and not any(c["code"] == session.ndc for c in codings):
        codings.append({"system": "http://hl7.org/fhir/sid/ndc", "code": session.ndc})
    ingredient = None
    if product.system != "http://hl7.org/fhir/sid/ndc" and product.extra.get("ingredient"):
        ingredient = [{"itemCodeableConcept": concept_cc("medications", product.extra["ingredient"]), "isActive": True}]
    return prune(
        {
            "resourceType": "Medication",
            "id": ctx.id("Medication", KIND, session.id, "medication"),
            "meta": meta("us-core-medication"),
            "code": codeable(codings, product.display),
            "ingredient": ingredient,
            "batch": {"lotNumber": session.lot_number} if session.lot_number else None,
        }
    )


def _rate(session: AdministrationSession) -> dict:
    minutes = session.infusion_minutes
    if session.route is not Route.INTRAVENOUS or not minutes:
        return {}
    if session.pump_rate_ml_per_h is not None:
        return {"rateQuantity": quantity(session.pump_rate_ml_per_h, "mL/h")}
    if session.concentration_mg_per_ml is not None:
        plan = infusion_plan(session.weight_kg, session.dose_mg / session.weight_kg, int(minutes), session.concentration_mg_per_ml)
        return {"rateQuantity": quantity(plan.pump_rate_ml_per_h, "mL/h")}
    per_min = (session.dose_mg / minutes).quantize(Decimal("0.001"))
    return {"rateRatio": {"numerator": quantity(per_min, "mg"), "denominator": quantity(1, "min")}}


def _dosage_text(session: AdministrationSession) -> str:
    parts = [f"{num(session.dose_mg)} mg {session.agent.value} {session.route.value}"]
    if session.administered_mg_per_kg is not None:
        parts.append(f"{num(session.administered_mg_per_kg)} mg/kg of {num(session.weight_kg)} kg")
    if session.prescribed_mg_per_kg is not None:
        parts.append(f"prescribed {num(session.prescribed_mg_per_kg)} mg/kg")
    if session.infusion_minutes is not None and session.route is Route.INTRAVENOUS:
        parts.append(f"over {num(session.infusion_minutes.quantize(Decimal('1')))} min")
    if session.esketamine_devices:
        parts.append(f"{session.esketamine_devices} x 28 mg devices")
    return "; ".join(parts)


def _procedure_code(session: AdministrationSession) -> dict:
    codings = [coding(*ADMINISTRATION_SNOMED)]
    if session.route is Route.INTRAVENOUS:
        lines = iv_administration_lines(session.infusion_minutes)
        if not isinstance(lines, NotCodable):
            codings += [coding("procedures", f"cpt_{line.code}") for line in lines]
    elif session.route is Route.INTRAMUSCULAR:
        codings.append(coding("procedures", "im_injection"))
    return codeable(codings, f"{session.agent.value.capitalize()} administration ({session.route.value})")


def _encounter_type(session: AdministrationSession) -> dict:
    if session.agent is Agent.ESKETAMINE:
        if session.dose_mg > 56:
            return concept_cc("procedures", "esketamine_session_over_56mg")
        return concept_cc("encounter-types", "esketamine_session")
    return concept_cc("encounter-types", "ketamine_session")


@builds(AdministrationSession)
def administration_session(session: AdministrationSession, ctx: MappingContext) -> list[dict]:
    key = session.id
    patient = ctx.patient_ref(session.patient_id)
    practitioner = ctx.practitioner_ref(session.practitioner_id)
    encounter = prune(
        {
            "resourceType": "Encounter",
            "id": ctx.id("Encounter", KIND, key),
            "meta": meta("us-core-encounter"),
            "identifier": [ctx.identifier(KIND, key)],
            "status": ENCOUNTER_STATUS[session.status],
            "class": coding("encounter-types", "class_ambulatory"),
            "type": [_encounter_type(session)],
            "subject": patient,
            "episodeOfCare": [ctx.ref("EpisodeOfCare", "enrollments", session.enrollment_id)],
            "participant": [{"individual": practitioner}],
            "period": period(session.started_at, session.discharged_at or session.ended_at),
            "location": [{"location": ctx.ref("Location", "locations", session.location_id)}],
            "serviceProvider": ctx.organization_ref(),
        }
    )
    encounter_ref = ref(encounter)
    out = [encounter]
    weight = None
    if session.weight_kg is not None:
        weight = vital_sign(
            ctx, kind=KIND, key=key, part="body_weight", concept_key="body_weight", patient_id=session.patient_id,
            when=session.started_at, value=session.weight_kg, encounter=encounter_ref, performer=practitioner,
        )
        out.append(weight)
    medication = _medication(session, ctx)
    out.append(medication)
    effective = (
        {"effectivePeriod": period(session.started_at, session.ended_at)}
        if session.ended_at
        else {"effectiveDateTime": instant(session.started_at)}
    )
    administration = prune(
        {
            "resourceType": "MedicationAdministration",
            "id": ctx.id("MedicationAdministration", KIND, key),
            "identifier": [ctx.identifier(KIND, key)],
            "status": PROCEDURE_STATUS[session.status],
            "statusReason": [{"text": session.status_reason}] if session.status_reason else [],
            "medicationReference": ref(medication),
            "subject": patient,
            "context": encounter_ref,
            "supportingInformation": [ref(weight)] if weight else [],
            **effective,
            "performer": [{"actor": practitioner}],
            "dosage": {
                "text": _dosage_text(session),
                "route": concept_cc("routes", session.route.value),
                "dose": quantity(session.dose_mg, "mg"),
                **_rate(session),
            },
        }
    )
    out.append(administration)
    for index, premed in enumerate(session.premedications, start=1):
        out.append(
            prune(
                {
                    "resourceType": "MedicationAdministration",
                    "id": ctx.id("MedicationAdministration", KIND, key, f"premedication-{index}"),
                    "status": "completed",
                    "medicationCodeableConcept": concept_cc("medications", premed.drug),
                    "subject": patient,
                    "context": encounter_ref,
                    "effectiveDateTime": instant(premed.given_at),
                    "performer": [{"actor": practitioner}],
                    "dosage": {
                        "text": f"{num(premed.dose_mg)} mg {premed.drug} {premed.route.value} (pre-medication)",
                        "route": concept_cc("routes", premed.route.value),
                        "dose": quantity(premed.dose_mg, "mg"),
                    },
                }
            )
        )
    procedure = {
        "resourceType": "Procedure",
        "id": ctx.id("Procedure", KIND, key),
        "meta": meta("us-core-procedure"),
        "identifier": [ctx.identifier(KIND, key)],
        "status": PROCEDURE_STATUS[session.status],
        "statusReason": {"text": session.status_reason} if session.status_reason else None,
        "code": _procedure_code(session),
        "subject": patient,
        "encounter": encounter_ref,
        "performer": [{"actor": practitioner, "onBehalfOf": ctx.organization_ref()}],
        "location": ctx.ref("Location", "locations", session.location_id),
        "usedReference": [ref(medication)],
    }
    if session.status is not SessionStatus.NOT_DONE:
        procedure["performedPeriod"] = period(session.started_at, session.ended_at)
    out.append(prune(procedure))
    if session.discharge_ready is not None and session.discharged_at is not None:
        out.append(
            prune(
                {
                    "resourceType": "Observation",
                    "id": ctx.id("Observation", KIND, key, "discharge-readiness"),
                    "status": "final",
                    "category": [category("observation_category_exam")],
                    "code": concept_cc("instruments", "discharge_readiness"),
                    "subject": patient,
                    "encounter": encounter_ref,
                    "effectiveDateTime": instant(session.discharged_at),
                    "performer": [practitioner],
                    "valueBoolean": session.discharge_ready,
                    "note": [{"text": f"Observed {num(session.observation_minutes.quantize(Decimal('1')))} min after dosing"}]
                    if session.observation_minutes is not None
                    else [],
                }
            )
        )
    return out
