"""The medical-necessity packet API (`service.coverage.packet`): build and store a patient's
packet, read its DocumentReference, download its PDF."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from .offload import in_thread
from ..coverage.packet import Packet, build_packet, packet_pdf_bytes, read_packet
from .deps import ServicesDep, json_response
from .problems import problem_responses
from .records import KEY_PATTERN
from ..auth.roles import Action
from .security import door, tenant

router = APIRouter(prefix="/coverage/packets", tags=["coverage-packets"], dependencies=[Depends(door(Action.COVERAGE_READ))])
ClinicFilter = Annotated[str | None, Query(pattern=KEY_PATTERN, description="Defaults to the token's clinic; another clinic is refused (403)")]

ID_PATTERN = r"^[A-Za-z0-9\-]{1,64}$"
PDF = "application/pdf"


def _metadata(packet: Packet) -> dict[str, Any]:
    doc = packet.document_reference
    attachment = doc["content"][0]["attachment"]
    summary = packet.summary
    return {
        "id": doc["id"],
        "resourceType": doc["resourceType"],
        "versionId": doc.get("meta", {}).get("versionId"),
        "status": packet.write_status,
        "clinic_id": summary["clinic"]["id"],
        "patient_id": summary["patient"]["id"],
        "generated_on": summary["generated_on"],
        "title": attachment.get("title"),
        "content_type": attachment["contentType"],
        "size": attachment["size"],
        "sha1": attachment["hash"],
        "pages": summary.get("pages"),
        "type": doc["type"]["coding"][0],
        "pdf": f"/api/v1/coverage/packets/{doc['id']}.pdf",
        "document_reference": f"/api/v1/coverage/packets/{doc['id']}",
        "outcome": summary["outcome"],
        "treatment_resistance_met": summary["treatment_resistance"]["met"],
    }


@router.post(
    "",
    operation_id="build_packet",
    summary="Build and store the medical-necessity packet (PDF + PAS DocumentReference) of a patient",
    response_model=dict[str, Any],
    status_code=201,
    responses={200: {"description": "The same packet was already stored today (unchanged)"}, **problem_responses(404, 422)},
    dependencies=[Depends(door(Action.COVERAGE_WRITE))],
)
async def post_packet(
    request: Request,
    patient_id: Annotated[str, Query(pattern=KEY_PATTERN)],
    services: ServicesDep,
    clinic_id: ClinicFilter = None,
) -> Response:
    clinic = tenant(request, clinic_id)
    assert clinic is not None
    today = services.clock().date()
    packet = await in_thread(
        lambda: build_packet(services.uow(), clinic, patient_id, today=today, rules=services.summary_rules)
    )
    return json_response(_metadata(packet), 200 if packet.write_status == "unchanged" else 201)


async def _stored_packet(request: Request, packet_id: str, services, clinic_id: str | None) -> dict:
    """The stored DocumentReference of a packet, within the caller's clinic (404 otherwise)."""
    return await in_thread(read_packet, services.uow(), packet_id, tenant(request, clinic_id, required=False))


@router.get(
    "/{packet_id}.pdf",
    operation_id="packet_pdf",
    summary="The packet PDF",
    response_class=Response,
    responses={200: {"content": {PDF: {"schema": {"type": "string", "format": "binary"}}}}, **problem_responses(404, 422)},
)
async def get_packet_pdf(
    request: Request,
    packet_id: Annotated[str, Path(pattern=ID_PATTERN)],
    services: ServicesDep,
    clinic_id: ClinicFilter = None,
) -> Response:
    doc = await _stored_packet(request, packet_id, services, clinic_id)
    return Response(packet_pdf_bytes(doc), media_type=PDF,
                    headers={"Content-Disposition": f'inline; filename="medical-necessity-{doc["id"]}.pdf"'})


@router.get(
    "/{packet_id}",
    operation_id="packet_document_reference",
    summary="The packet's FHIR DocumentReference (US Core + PAS profile-documentreference)",
    response_model=dict[str, Any],
    responses=problem_responses(404, 422),
)
async def get_packet(
    request: Request,
    packet_id: Annotated[str, Path(pattern=ID_PATTERN)],
    services: ServicesDep,
    clinic_id: ClinicFilter = None,
) -> Response:
    doc = await _stored_packet(request, packet_id, services, clinic_id)
    return Response(json_response(doc).body, media_type="application/fhir+json")
