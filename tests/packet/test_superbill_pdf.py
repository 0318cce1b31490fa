"""The superbill PDF: every claim-documentation field a biller needs is printed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from service.coverage.superbill_pdf import Superbill, SuperbillLine, render_superbill
from tests.packet.support import reader, text_of

DAY = dt.date(2026, 3, 2)
LINES = (
    SuperbillLine(DAY, "96365", 1, (), ("A",), "11", "1000000012", "Maria Alvarez, MD", description="IV infusion, first hour",
                  charge=Decimal("350.00"), session_id="pt-0001-session-1"),
    SuperbillLine(DAY, "J3490", 1, (), ("A",), "11", "1000000012", None, "67457-108-10", Decimal("36.5"), "mg",
                  Decimal("45.00"), "Unclassified drug (ketamine)", "pt-0001-session-1"),
    SuperbillLine(DAY + dt.timedelta(days=1), "90837", 1, ("95",), ("A", "B"), "02", "1000000038", "Hanna Berg, LCSW",
                  description="Psychotherapy, 53+ minutes", charge=Decimal("180.00")),
)


def test_superbill_prints_every_line_field_and_the_total() -> None:
    bill = Superbill(
        LINES, (("A", "F33.2", "Major depressive disorder, recurrent severe without psychotic features"),
                ("B", "F41.1", None)),
        clinic_name="Riverbend Ketamine Clinic", clinic_npi="1999999992", clinic_tax_id="12-3456789",
        patient_name="Jordan Rivera", patient_birth_date=dt.date(1984, 6, 12), patient_mrn="MRN-PT-0001",
        payer="Acme Health", member_id="M123", statement_date=dt.date(2026, 4, 6),
        not_coded=("E/M visit level: not derivable from session data",),
    )
    pdf = render_superbill(bill)
    text = text_of(pdf)
    for expected in ("Superbill", "Riverbend Ketamine Clinic", "NPI 1999999992", "TIN 12-3456789", "Jordan Rivera",
                     "MRN-PT-0001", "Acme Health", "M123",
                     "A F33.2 Major depressive disorder", "B F41.1",
                     "2026-03-02 96365", "2026-03-02 J3490", "67457-108-10 (36.5 mg)", "2026-03-03 90837",
                     "95", "AB 02 1000000038", "$350.00", "$45.00", "$180.00", "Total charges: $575.00",
                     "E/M visit level: not derivable from session data"):
        assert expected in text, expected
    assert len(reader(pdf).pages) == 1
    assert render_superbill(bill) == pdf  # deterministic


def test_superbill_from_lines_only_without_charges() -> None:
    lines = [SuperbillLine(DAY, "96365", diagnosis_pointers=("A",)), SuperbillLine(DAY, "J3490", ndc="67457-108-10")]
    text = text_of(render_superbill(lines, icd10_codes=["F33.2"]))
    assert "A F33.2" in text and "96365" in text and "J3490" in text and "67457-108-10" in text
    assert "Total charges" not in text  # no fee schedule, no total
