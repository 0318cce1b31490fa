"""Enrollment -> EpisodeOfCare (base R4; US Core has no EpisodeOfCare profile)."""

from __future__ import annotations

from ...domain.enrollment import Enrollment
from ..local_codes import local_coding
from ..context import MappingContext
from ..elements import codeable, period, prune
from ..mapper import builds


@builds(Enrollment)
def episode_of_care(enrollment: Enrollment, ctx: MappingContext) -> list[dict]:
    return [
        prune(
            {
                "resourceType": "EpisodeOfCare",
                "id": ctx.id("EpisodeOfCare", "enrollments", enrollment.id),
                "identifier": [ctx.identifier("enrollments", enrollment.id)],
                "status": enrollment.status.value,
                "type": [codeable(local_coding("program-course-type", enrollment.course_type.value))],
                "patient": ctx.patient_ref(enrollment.patient_id),
                "managingOrganization": ctx.organization_ref(),
                "period": period(enrollment.start_date, enrollment.end_date),
                "careManager": ctx.practitioner_ref(enrollment.care_manager_id) if enrollment.care_manager_id else None,
            }
        )
    ]
