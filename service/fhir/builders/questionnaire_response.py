"""QuestionnaireAnswers -> QuestionnaireResponse (US Core) plus the scores it yields:
total-score Observations (US Core Observation Screening Assessment, category survey,
derivedFrom the response), the C-SSRS risk level, and a Flag for a positive PHQ-9 item 9 or
a moderate/high C-SSRS risk (program safety rule, clinical-coding.md §1.1 and §1.4).
"""

from __future__ import annotations

from functools import lru_cache

from ...domain.questionnaires import QuestionnaireAnswers
from ...domain.scoring import Instrument, ScoreResult, SuicideRisk
from ...terminology import concepts, questionnaire
from ..codes import category
from ..context import MappingContext
from ..elements import codeable, instant, meta, prune, quantity, ref
from ..mapper import builds

ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
TABLE_KEY = {
    Instrument.PHQ9: "phq9",
    Instrument.GAD7: "gad7",
    Instrument.CSSRS_SCREENER: "cssrs_screener",
    Instrument.MADRS: "madrs",
    Instrument.CADSS: "cadss",
}
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"


@lru_cache(maxsize=None)
def _instrument(instrument: Instrument) -> tuple[dict, dict[str, str]]:
    """(instrument table entry, domain item id -> Questionnaire linkId)."""
    entry = concepts("instruments")[TABLE_KEY[instrument]]
    links = {str(i["item"]).removeprefix("Q").lower(): i["linkId"] for i in entry["items"]}
    if "difficulty_item" in entry:
        links[str(entry["difficulty_item"]["item"])] = entry["difficulty_item"]["linkId"]
    return entry, links


def _answer(item: dict, value: int | bool) -> dict:
    if item["type"] == "integer":
        return {"valueInteger": int(value)}
    if item["type"] == "boolean":
        return {"valueBoolean": bool(value)}
    options = item["answerOption"]
    if isinstance(value, bool):
        wanted = "LA33-6" if value else "LA32-8"  # LOINC Yes / No (clinical-coding.md §1.4)
        return {"valueCoding": next(o["valueCoding"] for o in options if o["valueCoding"]["code"] == wanted)}
    for option in options:
        for ext in option.get("extension", []):
            if ext["url"] == ORDINAL and int(ext["valueDecimal"]) == value:
                return {"valueCoding": option["valueCoding"]}
    return {"valueCoding": options[value]["valueCoding"]}  # unscored lists in Questionnaire order


def response_items(answers: QuestionnaireAnswers, result: ScoreResult, q: dict) -> list[dict]:
    entry, links = _instrument(answers.instrument)
    by_link = {links[k]: v for k, v in answers.answers.items()}
    total_link = "/" + entry["total"]["code"] if entry.get("total", {}).get("system") == "http://loinc.org" else None
    items = []
    for item in q["item"]:
        link = item["linkId"]
        if link in by_link:
            items.append({"linkId": link, "text": item.get("text"), "answer": [_answer(item, by_link[link])]})
        elif item.get("readOnly") and link == total_link and result.total is not None:
            items.append({"linkId": link, "text": item.get("text"), "answer": [{"valueInteger": result.total}]})
    return items


@builds(QuestionnaireAnswers)
def questionnaire_response(answers: QuestionnaireAnswers, ctx: MappingContext) -> list[dict]:
    result = answers.result()
    entry, _ = _instrument(answers.instrument)
    q = questionnaire(entry["questionnaire"])
    kind, key = "questionnaire-responses", answers.id
    author = ctx.practitioner_ref(answers.rater_id) if answers.rater_id else ctx.patient_ref(answers.patient_id)
    encounter = ctx.ref("Encounter", "administration-sessions", answers.session_id) if answers.session_id else None
    response = prune(
        {
            "resourceType": "QuestionnaireResponse",
            "id": ctx.id("QuestionnaireResponse", kind, key),
            "meta": meta("us-core-questionnaireresponse"),
            "identifier": ctx.identifier(kind, key),
            "questionnaire": q["url"],
            "status": "completed",
            "subject": ctx.patient_ref(answers.patient_id),
            "encounter": encounter,
            "authored": instant(answers.authored_at),
            "author": author,
            "source": ctx.patient_ref(answers.patient_id) if answers.rater_id is None else None,
            "item": response_items(answers, result, q),
        }
    )
    out = [response]
    out.extend(score_observations(answers, result, response, entry, ctx))
    out.extend(safety_flags(answers, result, ctx))
    return out


def _score_observation(answers, ctx, response, part, code, value, interpretation=None, encounter=None) -> dict:
    return prune(
        {
            "resourceType": "Observation",
            "id": ctx.id("Observation", "questionnaire-responses", answers.id, part),
            "meta": meta("us-core-observation-screening-assessment"),
            "status": "final",
            "category": [category("observation_category_survey")],
            "code": code,
            "subject": ctx.patient_ref(answers.patient_id),
            "encounter": encounter,
            "effectiveDateTime": instant(answers.authored_at),
            "performer": [ctx.practitioner_ref(answers.rater_id)] if answers.rater_id else [ctx.patient_ref(answers.patient_id)],
            **value,
            "interpretation": [{"text": interpretation}] if interpretation else [],
            "derivedFrom": [ref(response)],
        }
    )


def _code(entry: dict) -> dict:
    return codeable({k: entry[k] for k in ("system", "code", "display")})


def score_observations(answers: QuestionnaireAnswers, result: ScoreResult, response: dict, entry: dict, ctx: MappingContext) -> list[dict]:
    encounter = response.get("encounter")
    out = []
    if result.total is not None:
        out.append(
            _score_observation(
                answers, ctx, response, "total", _code(entry["total"]), {"valueQuantity": quantity(result.total, "{score}", "{score}")},
                f"{result.band} ({entry['display']})" if result.band else None, encounter,
            )
        )
    for name, value in result.subscores.items():
        sub = concepts("instruments")[f"{name}_total"]
        out.append(
            _score_observation(answers, ctx, response, name, _code(sub), {"valueQuantity": quantity(value, "{score}", "{score}")}, None, encounter)
        )
    if result.risk_level is not None:
        level = concepts("instruments")["cssrs_screener"]["risk_answers"]
        answer = next((a for a in level if a.get("level") == result.risk_level.value), None)
        value = (
            {"valueCodeableConcept": codeable({k: answer[k] for k in ("system", "code", "display")})}
            if answer
            else {"valueCodeableConcept": {"text": "No suicide risk identified by the screener"}}
        )
        out.append(_score_observation(answers, ctx, response, "risk", _code(entry["risk_level"]), value, None, encounter))
    return out


def safety_flags(answers: QuestionnaireAnswers, result: ScoreResult, ctx: MappingContext) -> list[dict]:
    """A clinical Flag the care team must see: PHQ-9 item 9 positive or C-SSRS moderate/high."""
    reason = None
    if "phq9-item9-positive" in result.flags:
        reason = "PHQ-9 item 9 positive: thoughts of being better off dead or self-harm; administer C-SSRS"
    elif result.risk_level in (SuicideRisk.MODERATE, SuicideRisk.HIGH):
        reason = f"C-SSRS screener: {result.risk_level.value} suicide risk"
    if reason is None:
        return []
    return [
        {
            "resourceType": "Flag",
            "id": ctx.id("Flag", "questionnaire-responses", answers.id, "safety"),
            "status": "active",
            "category": [codeable({"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"})],
            "code": {"text": reason},
            "subject": ctx.patient_ref(answers.patient_id),
            "period": {"start": instant(answers.authored_at)},
        }
    ]
