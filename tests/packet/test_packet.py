"""The medical-necessity packet of the demo course: what the PDF says (read back with pypdf),
the chart, the page budget, the stored DocumentReference (store + outbox, deterministic id,
attachment size/hash) and the PAS supportingInfo entry."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import orjson
import pytest

from service.courses import demo_course
from service.coverage.packet import (
    DOCUMENT_TYPE,
    IDENTIFIER_KIND,
    PAS_DOCUMENTREFERENCE,
    SOURCE_KIND,
    Packet,
    build_packet,
    packet_key,
    packet_pdf_bytes,
    packet_supporting_info,
)
from service.coverage.packet_chart import ChartInput, ScoreSeries, score_chart
from service.domain.organization import Clinic
from service.fhir import MappingContext
from service.usecases import NotFound, Services, put_record
from tests.packet.conftest import CLINIC, PATIENT, TODAY
from tests.packet.support import form_xobjects, reader, text_of


def test_pdf_text_carries_the_evidence_a_reviewer_needs(packet: Packet) -> None:
    text = text_of(packet.pdf)
    # patient and diagnosis
    assert "Jordan Rivera" in text
    assert "MRN-PT-0001" in text and "Jun 12, 1984" in text
    assert "F33.2" in text and "Major depressive disorder, recurrent severe without psychotic features" in text
    assert "recurrent / severe" in text
    # treatment-resistance table rows and the criterion with its rule
    for row in ("sertraline (SSRI) 150 mg 2024-10-01 to 2024-12-20 11.4 yes no-response yes",
                "venlafaxine (SNRI) 225 mg 2025-01-10 to 2025-03-21 10 yes partial-response yes",
                "bupropion"):
        assert row in text, row
    assert "Criterion met: 2 adequate failed trial(s), 2 required" in text
    assert "at least 2 adequate (therapeutic dose, >= 6 weeks) failed trials in the current episode" in text
    # safety screening
    assert "9 items screened" in text and "126/80" in text
    assert "cleared Feb 23, 2026" in text
    assert "risk low" in text
    assert "item 9 = 1" in text
    # sessions with doses, adverse events, outcome
    assert "ketamine IV 36.5 mg 0.501 (72.9 kg) 40 120 completed" in text
    assert "Nausea mild no medication given, observation extended resolved" in text
    assert "RESPONSE" in text
    assert "PHQ-9 19 (moderately severe) 6 on 2026-04-06 -68% RESPONSE" in text
    assert "MADRS 32 (moderate) 12 on 2026-04-06 -62% RESPONSE" in text
    # PHQ-9 values over time
    assert "19 (Feb 23), 15 (Mar 05), 11 (Mar 12), 8 (Mar 19), 6 (Apr 06)" in text
    assert "generated Apr 06, 2026" in text


def test_psychotherapy_appears_as_modality_and_minutes_only(packet: Packet) -> None:
    text = text_of(packet.pdf)
    assert "EMDR 70" in text and "IFS 80" in text and "ART 60" in text
    assert "6 sessions, 420 minutes" in text
    assert "no psychotherapy note content is included" in text
    sessions = packet.summary["sessions"]
    assert all(set(i) == {"date", "modality", "minutes"} for s in sessions for i in s["integration"])


def test_chart_is_drawn_with_thresholds_and_sessions(packet: Packet) -> None:
    forms = form_xobjects(packet.pdf, 0)
    chart = [stream for name, stream in forms.items() if "packetScoreChart" in name]
    assert len(chart) == 1, forms.keys()
    stream = chart[0].decode("latin-1")
    assert len(re.findall(r" l\b", stream)) > 30, "the chart has line segments"
    assert stream.count(" re ") + stream.count(" re\n") >= 2, "panel frames"
    text = text_of(packet.pdf)
    assert "PHQ-9 total (0-27)" in text and "MADRS total (0-60)" in text
    assert "baseline 19" in text and "response <= 9.5 (50%)" in text and "remission < 5" in text
    assert "baseline 32" in text and "response <= 16 (50%)" in text and "remission <= 10" in text
    for number in range(1, 7):
        assert f"S{number}" in text


def test_packet_fits_in_three_pages(packet: Packet) -> None:
    assert len(reader(packet.pdf).pages) <= 3
    assert packet.summary["pages"] == len(reader(packet.pdf).pages)
    assert "Page 1 of" in text_of(packet.pdf)


def test_document_reference_is_stored_with_outbox_and_deterministic_id(services: Services, packet: Packet) -> None:
    doc = packet.document_reference
    clinic = Clinic.model_validate(next(p for k, p in demo_course() if k == "clinics"))
    ctx = MappingContext(clinic=clinic)
    assert doc["id"] == ctx.id("DocumentReference", IDENTIFIER_KIND, packet_key(PATIENT, TODAY))
    assert doc["status"] == "current"
    assert doc["type"]["coding"] == [DOCUMENT_TYPE]
    assert doc["subject"] == ctx.patient_ref(PATIENT)
    assert doc["author"] == [ctx.practitioner_ref("dr-alvarez")]
    assert doc["custodian"] == ctx.organization_ref()
    assert PAS_DOCUMENTREFERENCE in doc["meta"]["profile"]
    attachment = doc["content"][0]["attachment"]
    data = base64.b64decode(attachment["data"])
    assert data == packet.pdf and data.startswith(b"%PDF")
    assert attachment["contentType"] == "application/pdf"
    assert attachment["size"] == len(data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert attachment["title"].startswith("Medical necessity packet - Jordan Rivera")
    assert "url" not in attachment  # PAS: url 0..0
    with services.uow() as uow:
        stored = uow.resources.by_source(SOURCE_KIND, CLINIC, packet_key(PATIENT, TODAY))
        assert [(s.resource_type, s.id) for s in stored] == [("DocumentReference", doc["id"])]
        assert orjson.loads(stored[0].json) == doc
        outbox = [e for e in uow.outbox.after(0, 10_000) if e.resource_type == "DocumentReference"]
        assert [(e.resource_id, e.version_id) for e in outbox] == [(doc["id"], 1)]


def test_building_again_the_same_day_is_unchanged(services: Services, packet: Packet) -> None:
    again = build_packet(services.uow(), CLINIC, PATIENT, today=TODAY, rules=services.summary_rules)
    assert again.write_status == "unchanged"
    assert again.pdf == packet.pdf
    assert again.document_reference == packet.document_reference
    with services.uow() as uow:
        assert len([e for e in uow.outbox.after(0, 10_000) if e.resource_type == "DocumentReference"]) == 1


def test_another_day_is_another_packet(services: Services, packet: Packet) -> None:
    later = build_packet(services.uow(), CLINIC, PATIENT, today=TODAY + dt.timedelta(days=1), rules=services.summary_rules)
    assert later.write_status == "created"
    assert later.document_reference["id"] != packet.document_reference["id"]


def test_changed_records_update_that_days_packet_and_criterion(services: Services, packet: Packet) -> None:
    """Venlafaxine shortened to 4 weeks: one adequate failed trial left, criterion not met."""
    trial = {"id": f"{PATIENT}-trial-2", "clinic_id": CLINIC, "patient_id": PATIENT, "drug": "venlafaxine",
             "daily_dose_mg": "225", "start_date": "2025-01-10", "end_date": "2025-02-07", "adequate_dose": True,
             "outcome": "partial-response", "source": "prior-records", "recorded_on": "2026-02-23",
             "recorder_id": "dr-alvarez"}
    put_record(services.uow(), "medication-trials", trial)
    updated = build_packet(services.uow(), CLINIC, PATIENT, today=TODAY, rules=services.summary_rules)
    assert updated.write_status == "updated"
    assert updated.document_reference["id"] == packet.document_reference["id"]
    assert updated.document_reference["meta"]["versionId"] == "2"
    text = text_of(updated.pdf)
    assert "Criterion not met: 1 adequate failed trial(s), 2 required" in text
    assert "4.0 weeks is shorter than 6" in text
    assert updated.summary["treatment_resistance"]["met"] is False


def test_unknown_patient_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        build_packet(services.uow(), CLINIC, "nobody", today=TODAY, rules=services.summary_rules)


def test_supporting_info_entry_for_a_pas_claim(packet: Packet) -> None:
    entry = packet_supporting_info(packet.document_reference, sequence=3)
    assert entry["sequence"] == 3
    assert entry["category"] == {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes",
                                             "code": "additionalInformation"}]}
    assert entry["valueReference"] == {"reference": f"DocumentReference/{packet.document_reference['id']}"}
    info = entry["extension"][0]
    assert info["url"] == "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-documentInformation"
    parts = {e["url"]: e for e in info["extension"]}
    assert parts["reportTypeCode"]["valueCodeableConcept"]["coding"][0]["code"] == "PY"
    assert parts["transmissionMethod"]["valueCodeableConcept"]["coding"][0]["code"] == "EL"
    assert packet_pdf_bytes(packet.document_reference) == packet.pdf


def test_chart_without_scores_still_renders() -> None:
    drawing = score_chart(ChartInput(()))
    assert drawing.width > 0
    one = ScoreSeries("PHQ-9", 27, ((dt.date(2026, 3, 1), 14),), 7.0, 5, "remission < 5")
    assert score_chart(ChartInput((one,), (dt.date(2026, 3, 1),))).contents
