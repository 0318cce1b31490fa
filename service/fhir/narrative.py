"""Generated narratives (`Resource.text`): a short human-readable summary of each resource,
so an EHR without our profiles can still show it (dom-6: "A resource should have narrative
for robust management"). Built from the resource's own elements; never carries more than
the structured data does."""

from __future__ import annotations

from html import escape

XHTML = "http://www.w3.org/1999/xhtml"


def _concept_text(concept: dict | None) -> str | None:
    if not concept:
        return None
    if concept.get("text"):
        return concept["text"]
    for coding in concept.get("coding", ()):
        if coding.get("display"):
            return coding["display"]
        if coding.get("code"):
            return coding["code"]
    return None


def _quantity(q: dict) -> str:
    value = q.get("value")
    unit = q.get("unit") or q.get("code") or ""
    return f"{value} {unit}".strip()


def _value(resource: dict) -> str | None:
    if "valueQuantity" in resource:
        return _quantity(resource["valueQuantity"])
    if "valueCodeableConcept" in resource:
        return _concept_text(resource["valueCodeableConcept"])
    if "valueBoolean" in resource:
        return "yes" if resource["valueBoolean"] else "no"
    if "component" in resource:
        parts = []
        for component in resource["component"]:
            label = _concept_text(component.get("code")) or "component"
            if "valueQuantity" in component:
                parts.append(f"{label}: {_quantity(component['valueQuantity'])}")
            elif "valueCodeableConcept" in component:
                parts.append(f"{label}: {_concept_text(component['valueCodeableConcept'])}")
        return "; ".join(parts) or None
    return None


def _when(resource: dict) -> str | None:
    for key in ("effectiveDateTime", "authored", "recorded", "date", "recordedDate", "authoredOn", "birthDate", "created"):
        if key in resource:
            return resource[key]
    for key in ("effectivePeriod", "performedPeriod", "period"):
        if key in resource:
            period = resource[key]
            return " to ".join(v for v in (period.get("start"), period.get("end")) if v)
    return None


def _title(resource: dict) -> str | None:
    kind = resource["resourceType"]
    if kind in ("Patient", "Practitioner"):
        name = (resource.get("name") or [{}])[0]
        return " ".join([*name.get("given", []), name.get("family", "")]).strip() or None
    if kind in ("Organization", "Location"):
        return resource.get("name")
    if kind == "MedicationAdministration":
        return (resource.get("dosage") or {}).get("text") or _concept_text(resource.get("medicationCodeableConcept"))
    if kind == "MedicationRequest":
        return _concept_text(resource.get("medicationCodeableConcept"))
    if kind == "QuestionnaireResponse":
        return resource.get("questionnaire", "").rsplit("/", 1)[-1]
    if kind == "AdverseEvent":
        return _concept_text(resource.get("event"))
    if kind == "CarePlan":
        return resource.get("title")
    if kind == "Provenance":
        return f"{len(resource.get('target', []))} resources recorded"
    for key in ("code", "type"):
        value = resource.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        text = _concept_text(value)
        if text:
            return text
    return None


def narrative(resource: dict) -> dict:
    """The `text` element for `resource` (status generated)."""
    parts = [f"<b>{escape(resource['resourceType'])}</b>"]
    for piece in (_title(resource), _value(resource)):
        if piece:
            parts.append(escape(str(piece)))
    status = resource.get("status")
    when = _when(resource)
    tail = ", ".join(escape(str(x)) for x in (status, when) if x)
    body = ": ".join(parts[:2]) + (" = " + parts[2] if len(parts) > 2 else "")
    if tail:
        body += f" ({tail})"
    return {"status": "generated", "div": f'<div xmlns="{XHTML}"><p>{body}</p></div>'}


def with_narrative(resource: dict) -> dict:
    """`resource` with a generated `text` placed after `meta` (kept when already present)."""
    if "text" in resource:
        return resource
    out: dict = {}
    for key, value in resource.items():
        out[key] = value
        if key == "meta" or (key == "id" and "meta" not in resource):
            out["text"] = narrative(resource)
    return out
