"""One builder module per record kind; importing this package registers them all."""

from . import (  # noqa: F401
    administration,
    adverse_event,
    coverage,
    enrollment,
    maintenance,
    medication_history,
    organization,
    patient,
    psychotherapy,
    questionnaire_response,
    screening,
    vital_signs,
)
