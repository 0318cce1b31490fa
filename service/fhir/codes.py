"""CodeableConcepts from the code tables, with the 'text only' fallback for unverified codes."""

from __future__ import annotations

from ..terminology import UnverifiedCode, concept, coding, codings
from .elements import codeable


def concept_cc(table: str, key: str, text: str | None = None) -> dict:
    """All verified codings of a concept; text only when its code is unverified (U)."""
    try:
        return codeable(codings(table, key), text)
    except UnverifiedCode:
        return {"text": text or concept(table, key).display}


def single(table: str, key: str) -> dict:
    """The primary coding of a concept (verified)."""
    return coding(table, key)


def category(key: str) -> dict:
    """A category CodeableConcept from the misc table (e.g. observation_category_survey)."""
    return codeable(coding("misc", key))
