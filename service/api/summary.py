"""The course summary of one patient."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from .offload import in_thread
from ..usecases import course_summary
from .deps import ServicesDep, json_response
from .problems import problem_responses
from ..auth.roles import Action
from .records import KEY_PATTERN
from .security import door, tenant

router = APIRouter(dependencies=[Depends(door(Action.COURSE_SUMMARY_READ))])


@router.get(
    "/clinics/{clinic_id}/patients/{patient_id}/course-summary",
    operation_id="course_summary",
    tags=["course-summary"],
    summary="Sessions, scores with outcome trajectory, safety flags, maintenance and treatment resistance",
    response_model=dict[str, Any],
    responses=problem_responses(404, 422),
)
async def get_course_summary(
    request: Request,
    clinic_id: Annotated[str, Path(pattern=KEY_PATTERN)],
    patient_id: Annotated[str, Path(pattern=KEY_PATTERN)],
    services: ServicesDep,
) -> Response:
    clinic_id = tenant(request, clinic_id) or clinic_id
    summary = await in_thread(course_summary, services.uow(), clinic_id, patient_id, services.summary_rules)
    return json_response(summary)
