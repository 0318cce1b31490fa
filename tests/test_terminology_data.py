"""Tests of the terminology data in mappings/ and of service.terminology."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from service import terminology as term

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
TERMINOLOGY = MAPPINGS / "terminology"
TABLE_FILES = sorted(p for p in TERMINOLOGY.glob("*.json") if p.stem != "code-systems")
QUESTIONNAIRES = sorted((MAPPINGS / "questionnaires").glob("*.json"))
CODESYSTEMS = sorted((TERMINOLOGY / "codesystems").glob("*.json"))
LOCAL_BASE = "http://ketamine-interop.example.org/fhir/CodeSystem/"
EXPECTED_TABLES = {
    "vital-signs", "instruments", "routes", "medications", "antidepressants", "procedures",
    "diagnoses", "contraindications", "adverse-events", "encounter-types", "misc",
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _walk_codings(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dict carrying both 'system' and 'code', at any depth."""
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield where, node
        for k, v in node.items():
            yield from _walk_codings(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk_codings(v, f"{where}[{i}]")


def _all_codings() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in TABLE_FILES:
        yield from _walk_codings(_load(path)["concepts"], path.stem)


@pytest.fixture(autouse=True)
def _default_mappings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MAPPINGS_DIR", raising=False)
    term.clear_cache()
    yield
    term.clear_cache()


# --- tables -----------------------------------------------------------------

def test_expected_tables_present() -> None:
    assert EXPECTED_TABLES <= {p.stem for p in TABLE_FILES}
    assert (TERMINOLOGY / "code-systems.json").exists()


@pytest.mark.parametrize("path", TABLE_FILES, ids=lambda p: p.stem)
def test_table_loads_and_is_named(path: Path) -> None:
    data = term.load_table(path.stem)
    assert data["table"] == path.stem
    assert data["description"]
    assert data["concepts"]


@pytest.mark.parametrize("path", TABLE_FILES, ids=lambda p: p.stem)
def test_every_coding_is_complete(path: Path) -> None:
    for where, c in _walk_codings(_load(path)["concepts"], path.stem):
        assert isinstance(c["system"], str) and c["system"], where
        assert isinstance(c.get("display"), str) and c["display"].strip(), where
        assert c.get("verification") in {"V", "V2", "U"}, where
        assert isinstance(c.get("source"), str) and c["source"].strip(), where
        if c["code"] is None:
            assert c["verification"] == "U", f"{where}: null code must be tagged U"
            assert c.get("note"), f"{where}: null code needs a note"
        else:
            assert isinstance(c["code"], str) and c["code"] == c["code"].strip() and c["code"], where


def test_top_level_concept_keys_are_snake_case() -> None:
    for path in TABLE_FILES:
        for key in _load(path)["concepts"]:
            assert key == key.lower() and "-" not in key and " " not in key, f"{path.stem}.{key}"


def test_no_conflicting_displays() -> None:
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for where, c in _all_codings():
        if c["code"] is None:
            continue
        k = (c["system"], c["code"])
        if k in seen:
            assert seen[k][0] == c["display"], f"{k}: {seen[k][1]!r} vs {where!r}"
        else:
            seen[k] = (c["display"], where)


def test_every_system_is_registered() -> None:
    systems = set(term.load_table("code-systems")["systems"].values())
    for where, c in _all_codings():
        assert c["system"] in systems, f"{where}: {c['system']}"


def test_local_codes_exist_in_local_codesystems() -> None:
    defined: dict[str, dict[str, str]] = {}
    for path in CODESYSTEMS:
        cs = _load(path)
        defined[cs["url"]] = {x["code"]: x["display"] for x in cs["concept"]}
    for where, c in _all_codings():
        if c["system"].startswith(LOCAL_BASE):
            assert c["system"] in defined, f"{where}: no CodeSystem file for {c['system']}"
            assert c["code"] in defined[c["system"]], f"{where}: {c['code']} not in {c['system']}"
            assert c["display"] == defined[c["system"]][c["code"]], where


def test_icd10cm_codes_are_dotted() -> None:
    for where, c in _all_codings():
        if c["system"] == "http://hl7.org/fhir/sid/icd-10-cm" and c["code"] and len(c["code"]) > 3:
            assert "." in c["code"], where


# --- local CodeSystems --------------------------------------------------------

@pytest.mark.parametrize("path", CODESYSTEMS, ids=lambda p: p.stem)
def test_codesystem_parses_and_is_complete(path: Path) -> None:
    from fhir.resources.R4B.codesystem import CodeSystem

    data = _load(path)
    CodeSystem.model_validate(data)
    assert data["id"] == path.stem
    assert data["url"] == LOCAL_BASE + path.stem
    assert data["version"] == "1.0.0"
    assert data["status"] == "active" and data["content"] == "complete" and data["caseSensitive"] is True
    codes = [x["code"] for x in data["concept"]]
    assert len(codes) == len(set(codes)) == data["count"]
    for x in data["concept"]:
        assert x["display"].strip() and x["definition"].strip(), x["code"]
    assert term.codesystem(path.stem) == data


def test_required_local_codesystems() -> None:
    assert {p.stem for p in CODESYSTEMS} >= {
        "program-instruments", "program-outcomes", "psychotherapy-modality", "program-course-type",
        "maintenance-decision", "adverse-event-type", "program-product", "antidepressant-trial-outcome",
    }
    outcomes = {x["code"] for x in term.codesystem("program-outcomes")["concept"]}
    assert outcomes == {"response", "partial-response", "non-response", "remission", "relapse", "not-evaluable"}
    instruments = {x["code"] for x in term.codesystem("program-instruments")["concept"]}
    assert {f"madrs-{i}" for i in range(1, 11)} | {f"cadss-{i}" for i in range(1, 24)} <= instruments
    assert {"madrs-total", "cadss-total", "cadss6-total", "phq9-response-status"} <= instruments


# --- questionnaires ------------------------------------------------------------

@pytest.mark.parametrize("path", QUESTIONNAIRES, ids=lambda p: p.stem)
def test_questionnaire_parses(path: Path) -> None:
    from fhir.resources.R4B.questionnaire import Questionnaire

    data = _load(path)
    Questionnaire.model_validate(data)
    assert data["id"] == path.stem
    assert data["url"] == f"http://ketamine-interop.example.org/fhir/Questionnaire/{path.stem}"
    assert data["version"] == "1.0.0" and data["status"] == "active" and data["subjectType"] == ["Patient"]
    link_ids = [i["linkId"] for i in data["item"]]
    assert len(link_ids) == len(set(link_ids))
    assert term.questionnaire(path.stem) == data


def test_expected_questionnaires() -> None:
    assert {p.stem for p in QUESTIONNAIRES} == {"phq-9", "gad-7", "cssrs-screener", "madrs", "cadss"}


def _items(qid: str) -> dict[str, dict[str, Any]]:
    return {i["linkId"]: i for i in term.questionnaire(qid)["item"]}


def _ordinal(option: dict[str, Any]) -> float:
    (ext,) = [e for e in option["extension"] if e["url"] == "http://hl7.org/fhir/StructureDefinition/ordinalValue"]
    return ext["valueDecimal"]


def test_phq9_answers_and_ordinals() -> None:
    items = _items("phq-9")
    scored = [i for i in items.values() if i["type"] == "choice" and i["linkId"] != "/69722-7"]
    assert len(scored) == 9
    for item in scored:
        assert item["linkId"] == "/" + item["code"][0]["code"]
        codes = [o["valueCoding"]["code"] for o in item["answerOption"]]
        assert codes == ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
        assert [_ordinal(o) for o in item["answerOption"]] == [0, 1, 2, 3]
    difficulty = items["/69722-7"]
    assert [o["valueCoding"]["code"] for o in difficulty["answerOption"]] == ["LA6572-7", "LA6573-5", "LA6575-0", "LA6574-3"]
    assert [o["valueCoding"]["display"] for o in difficulty["answerOption"]] == [
        "Not difficult at all", "Somewhat difficult", "Very difficult", "Extremely difficult"]
    assert not difficulty.get("required") and all("extension" not in o for o in difficulty["answerOption"])
    total = items["/44261-6"]
    assert total["type"] == "integer" and total["readOnly"] is True
    assert term.questionnaire("phq-9")["code"][0]["code"] == "44249-1"


def test_gad7_matches_doc() -> None:
    items = _items("gad-7")
    expected = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    choice = [i for i in items.values() if i["type"] == "choice"]
    assert [i["code"][0]["code"] for i in choice] == expected
    assert choice[0]["code"][0]["display"] == "Feeling nervous, anxious or on edge"
    for item in choice:
        assert [_ordinal(o) for o in item["answerOption"]] == [0, 1, 2, 3]
    assert items["/70274-6"]["readOnly"] is True and items["/70274-6"]["type"] == "integer"
    assert term.questionnaire("gad-7")["code"][0]["code"] == "69737-5"


def test_cssrs_enable_when() -> None:
    items = _items("cssrs-screener")
    for link in ("/93248-3", "/93249-1", "/93250-9"):
        (ew,) = items[link]["enableWhen"]
        assert ew["question"] == "/93247-5" and ew["answerCoding"]["code"] == "LA33-6"
    (ew,) = items["/93269-9"]["enableWhen"]
    assert ew["question"] == "/93267-3" and ew["answerCoding"]["code"] == "LA33-6"
    for link in ("/93246-7", "/93247-5", "/93267-3"):
        assert "enableWhen" not in items[link]
        assert [o["valueCoding"]["code"] for o in items[link]["answerOption"]] == ["LA33-6", "LA32-8"]


@pytest.mark.parametrize(("qid", "n", "hi"), [("madrs", 10, 6), ("cadss", 23, 4)])
def test_copyrighted_scales_have_no_item_text(qid: str, n: int, hi: int) -> None:
    items = [i for i in term.questionnaire(qid)["item"] if not i.get("readOnly")]
    assert [i["linkId"] for i in items] == [f"{qid}-{k}" for k in range(1, n + 1)]
    for k, item in enumerate(items, start=1):
        assert item["text"] == f"{qid.upper()} item {k}"
        assert item["type"] == "integer"
        assert item["code"][0]["system"] == LOCAL_BASE + "program-instruments"
        ext = {e["url"].rsplit("/", 1)[1]: e["valueInteger"] for e in item["extension"]}
        assert ext == {"minValue": 0, "maxValue": hi}


# --- specific content ----------------------------------------------------------

def test_instrument_facts() -> None:
    phq9 = term.concept("instruments", "phq9")
    assert phq9.code == "44249-1"
    assert [a["points"] for a in phq9.extra["answers"]] == [0, 1, 2, 3]
    cssrs = term.concept("instruments", "cssrs_screener")
    tags = {a["code"]: a["verification"] for a in cssrs.extra["risk_answers"]}
    assert tags == {"LA9194-7": "V", "LA6751-7": "V2", "LA9193-9": "V2"}
    assert term.concept("instruments", "cadss").extra["cadss6_items"] == [1, 2, 6, 7, 15, 22]


def test_vitals() -> None:
    assert [c["code"] for c in term.codings("vital-signs", "spo2")] == ["59408-5", "2708-6"]
    assert term.concept("vital-signs", "systolic").extra["ucum"] == "mm[Hg]"
    assert term.concept("vital-signs", "bp_panel").extra["profile"].endswith("us-core-blood-pressure")


def test_diagnoses_flags() -> None:
    table = term.concepts("diagnoses")
    icd = {c["code"]: c for c in table.values() if c["system"].endswith("icd-10-cm")}
    assert {"F32.0", "F32.9", "F32.A", "F32.89", "F33.0", "F33.41", "F33.9"} <= set(icd)
    assert icd["F33.3"]["psychotic"] is True and icd["F33.3"]["episode"] == "recurrent"
    assert icd["F32.1"]["psychotic"] is False and icd["F32.1"]["severity"] == "moderate"


def test_contraindication_kinds() -> None:
    for key, c in term.concepts("contraindications").items():
        assert c["kind"] in {"contraindication", "caution"}, key


# --- loader behaviour ----------------------------------------------------------

def test_coding_and_errors() -> None:
    assert term.coding("routes", "intravenous") == {
        "system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}
    with pytest.raises(term.UnknownCode) as err:
        term.coding("routes", "nope")
    assert isinstance(err.value, ValueError) and "routes" in str(err.value) and "nope" in str(err.value)
    with pytest.raises(term.UnknownCode):
        term.load_table("no-such-table")
    with pytest.raises(term.UnverifiedCode):
        term.coding("medications", "esketamine")
    with pytest.raises(term.UnknownCode):
        term.system("no-such-system")
    with pytest.raises(term.UnknownCode):
        term.questionnaire("../terminology/routes")
    assert term.system("loinc") == "http://loinc.org"


def test_concept_is_frozen() -> None:
    c = term.concept("procedures", "ketamine_infusion")
    with pytest.raises(AttributeError):
        c.code = "x"  # type: ignore[misc]
    assert [x["code"] for x in term.codings("procedures", "ketamine_infusion")] == ["18629005", "96365"]


def test_mappings_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "terminology").mkdir()
    (tmp_path / "terminology" / "routes.json").write_text(json.dumps({"table": "routes", "description": "x", "concepts": {
        "oral": {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route", "verification": "V", "source": "test"}}}))
    monkeypatch.setenv("MAPPINGS_DIR", str(tmp_path))
    term.clear_cache()
    assert term.mappings_dir() == tmp_path.resolve()
    assert list(term.concepts("routes")) == ["oral"]
