"""Coverage record -> US Core Coverage (+ the insurer Organization), and the Da Vinci PAS
variants used inside prior-authorization Bundles.

- US Core Coverage 7.0.0 (`us-core-coverage`): identifier slice memberid typed
  v2-0203#MB, status, type (Source of Payment Typology), beneficiary, relationship 1..1,
  period, payor max 1, class slices group/plan (clinical-coding.md §6.2).
- PAS Coverage (`profile-coverage`, on US Core Coverage 7.0.0): beneficiary -> PAS
  Beneficiary, payor -> PAS Insurer, relationship may add the X12 1069 code (PAS examples).
- Insurer: `us-core-organization` typed organization-type#pay when stored; PAS Insurer
  (`profile-insurer`, type bound to X12 98, `PR` = payer as in the PAS examples) in PAS Bundles.
"""

from __future__ import annotations

from ...domain.coverage import CoverageRecord, SubscriberRelationship
from ...payers import PAYER_SYSTEM, Payer, load_payer
from ..context import MappingContext
from ..elements import meta, period, prune
from ..ids import resource_id
from ..mapper import builds

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
X12_1069 = "https://codesystem.x12.org/005010/1069"
X12_98 = "https://codesystem.x12.org/005010/98"
X12_RELATIONSHIP = {
    # X12 005010 individual relationship codes: 18 self (PAS Coverage example), 01 spouse,
    # 19 child, G8 other relationship (V2: X12 code list, content X12-copyrighted)
    SubscriberRelationship.SELF: "18",
    SubscriberRelationship.SPOUSE: "01",
    SubscriberRelationship.CHILD: "19",
    SubscriberRelationship.OTHER: "G8",
}
RELATIONSHIP_DISPLAY = {"self": "Self", "spouse": "Spouse", "child": "Child", "other": "Other"}


def insurer_id(payer_key: str) -> str:
    return resource_id("Organization", PAYER_SYSTEM, payer_key)


def insurer_ref(payer: Payer) -> dict:
    return {"reference": f"Organization/{insurer_id(payer.key)}", "display": payer.name}


def member_id_system(payer: Payer) -> str:
    return f"{PAYER_SYSTEM}/{payer.key}/member-id"


def insurer_organization(payer: Payer, *, pas: bool = False) -> dict:
    """The payer as an Organization: PAS Insurer inside PAS Bundles, US Core otherwise."""
    org_type = (
        {"coding": [{"system": X12_98, "code": "PR", "display": "Payer"}]}
        if pas
        else {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "pay", "display": "Payer"}]}
    )
    return {
        "resourceType": "Organization",
        "id": insurer_id(payer.key),
        "meta": meta(PAS + "profile-insurer") if pas else meta("us-core-organization"),
        "identifier": [dict(i) for i in payer.identifiers],
        "active": True,
        "type": [org_type],
        "name": payer.name,
    }


def coverage_resource(record: CoverageRecord, ctx: MappingContext, payer: Payer | None = None, *, pas: bool = False) -> dict:
    """US Core Coverage (or PAS Coverage with `pas=True`) of a coverage record."""
    payer = payer or load_payer(record.payer)
    relationship = [{"system": SUBSCRIBER_RELATIONSHIP, "code": record.relationship.value,
                     "display": RELATIONSHIP_DISPLAY[record.relationship.value]}]
    if pas:
        relationship.append({"system": X12_1069, "code": X12_RELATIONSHIP[record.relationship]})
    classes = []
    if record.group_id:
        classes.append({"type": {"coding": [{"system": COVERAGE_CLASS, "code": "group", "display": "Group"}]},
                        "value": record.group_id, "name": record.group_name})
    if record.plan_id:
        classes.append({"type": {"coding": [{"system": COVERAGE_CLASS, "code": "plan", "display": "Plan"}]},
                        "value": record.plan_id, "name": record.plan_name})
    return prune(
        {
            "resourceType": "Coverage",
            "id": ctx.id("Coverage", "coverages", record.id),
            "meta": meta(PAS + "profile-coverage") if pas else meta("us-core-coverage"),
            "identifier": [
                {
                    "use": "usual",
                    "type": {"coding": [{"system": V2_0203, "code": "MB", "display": "Member Number"}]},
                    "system": member_id_system(payer),
                    "value": record.member_id,
                    "assigner": {"display": payer.name},
                },
                ctx.identifier("coverages", record.id, use="secondary"),
            ],
            "status": record.status.value,
            "type": {"coding": [payer.sopt.coding()], "text": record.payer_type.value},
            "subscriberId": record.subscriber_id or record.member_id,
            "beneficiary": ctx.patient_ref(record.patient_id),
            "relationship": {"coding": relationship},
            "period": period(record.period_start, record.period_end),
            "payor": [insurer_ref(payer)],
            "class": classes,
        }
    )


@builds(CoverageRecord)
def coverage(record: CoverageRecord, ctx: MappingContext) -> list[dict]:
    payer = load_payer(record.payer)
    return [insurer_organization(payer), coverage_resource(record, ctx, payer)]
