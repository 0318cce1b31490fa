"""The course summary of one patient."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..usecases import course_summary
from .deps import ServicesDep, json_response
from .problems import problem_responses
from .records import KEY_PATTERN

router = APIRouter()


@router.get(
    "/clinics/{clinic_id}/patients/{patient_id}/course-summary",
    operation_id="course_summary",
    tags=["course-summary"],
    summary="Sessions, scores with outcome trajectory, safety flags, maintenance and treatment resistance",
    response_model=dict[str, Any],
    responses=problem_responses(404, 422),
)
async def get_course_summary(
    clinic_id: Annotated[str, Path(pattern=KEY_PATTERN)],
    patient_id: Annotated[str, Path(pattern=KEY_PATTERN)],
    services: ServicesDep,
) -> Response:
    summary = await run_in_threadpool(course_summary, services.uow(), clinic_id, patient_id, services.summary_rules)
    return json_response(summary)
