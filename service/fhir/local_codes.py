"""Codings from the program's own CodeSystems (mappings/terminology/codesystems/).

Used where no verified standard code exists (clinical-coding.md: MADRS, CADSS, ART, IFS,
course types, ...). A code missing from its CodeSystem is an error, never a silent default.
"""

from __future__ import annotations

from functools import lru_cache

from ..terminology import UnknownCode, codesystem


@lru_cache(maxsize=None)
def _concepts(codesystem_id: str) -> tuple[str, dict[str, str]]:
    resource = codesystem(codesystem_id)

    def walk(concepts: list[dict], out: dict[str, str]) -> dict[str, str]:
        for concept in concepts:
            out[concept["code"]] = concept.get("display", concept["code"])
            walk(concept.get("concept", []), out)
        return out

    return resource["url"], walk(resource.get("concept", []), {})


def local_coding(codesystem_id: str, code: str) -> dict:
    """Coding {system, code, display} for `code` in our CodeSystem `codesystem_id`."""
    url, concepts = _concepts(codesystem_id)
    if code not in concepts:
        raise UnknownCode(codesystem_id, code, "not in this local CodeSystem")
    return {"system": url, "code": code, "display": concepts[code]}
