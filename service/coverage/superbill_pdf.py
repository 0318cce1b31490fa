"""The superbill as a PDF: the claim-documentation lines of one or more sessions on one page
(or more), the way a biller or a patient filing an out-of-network claim needs them.

    render_superbill(Superbill(...)) -> bytes          # full header (clinic, patient, payer)
    render_superbill([SuperbillLine(...), ...]) -> bytes   # lines only

Shape of a line (convert the coverage engine's billing lines to it):

    SuperbillLine(
        service_date: date, code: str (CPT or HCPCS Level II), units: int = 1,
        modifiers: tuple[str, ...] = (), diagnosis_pointers: tuple[str, ...] = ()  # "A".."L",
        place_of_service: str = "11", rendering_npi: str | None = None, rendering_name: str | None = None,
        ndc: str | None = None, ndc_quantity: Decimal | None = None, ndc_unit: str | None = None,
        charge: Decimal | None = None  # line total, when the clinic has a fee schedule,
        description: str | None = None  # short paraphrase; never AMA CPT descriptor text,
        session_id: str | None = None,
    )

A pointer letter refers to `Superbill.diagnoses` ((pointer, ICD-10-CM code, display) in pointer
order, CMS-1500 item 21/24E); with plain lines the ICD-10-CM list is printed from
`icd10_codes` if given. Charges are optional; the total is printed only when every line has one.
Output is deterministic for the same input (ReportLab invariant mode).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Sequence

from reportlab.platypus import Flowable, KeepTogether, SimpleDocTemplate, Spacer, Table
from reportlab.pdfgen.canvas import Canvas

from .packet_pdf import (
    ACCENT,
    BASE,
    CELL,
    H2,
    MARGIN,
    MUTED,
    PAGE,
    RULE,
    SHADE,
    SMALL,
    SUBTITLE,
    TITLE,
    esc,
    grid_style,
    header_row,
    numbered_canvas,
    para,
)


@dataclass(frozen=True)
class SuperbillLine:
    service_date: dt.date
    code: str
    units: int = 1
    modifiers: tuple[str, ...] = ()
    diagnosis_pointers: tuple[str, ...] = ()
    place_of_service: str = "11"
    rendering_npi: str | None = None
    rendering_name: str | None = None
    ndc: str | None = None
    ndc_quantity: Decimal | None = None
    ndc_unit: str | None = None
    charge: Decimal | None = None
    description: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Superbill:
    lines: tuple[SuperbillLine, ...]
    diagnoses: tuple[tuple[str, str, str | None], ...] = ()
    """(pointer letter, ICD-10-CM code, display or None), in pointer order."""
    clinic_name: str | None = None
    clinic_npi: str | None = None
    clinic_tax_id: str | None = None
    clinic_address: str | None = None
    clinic_phone: str | None = None
    patient_name: str | None = None
    patient_birth_date: dt.date | None = None
    patient_mrn: str | None = None
    payer: str | None = None
    member_id: str | None = None
    statement_date: dt.date | None = None
    not_coded: tuple[str, ...] = field(default_factory=tuple)
    """Codes the documentation did not support, with the reason (printed, never billed)."""


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _header(bill: Superbill) -> list[Flowable]:
    out: list[Flowable] = [para("Superbill", TITLE)]
    sub = [x for x in (bill.clinic_name, f"NPI {bill.clinic_npi}" if bill.clinic_npi else None,
                       f"TIN {bill.clinic_tax_id}" if bill.clinic_tax_id else None, bill.clinic_address, bill.clinic_phone) if x]
    if sub:
        out.append(para(esc("  |  ".join(sub)), SUBTITLE))
    out.append(Spacer(1, 6))
    left = [
        ("Patient", bill.patient_name), ("Date of birth", bill.patient_birth_date.isoformat() if bill.patient_birth_date else None),
        ("MRN", bill.patient_mrn),
    ]
    right = [("Payer", bill.payer), ("Member id", bill.member_id),
             ("Statement date", bill.statement_date.isoformat() if bill.statement_date else None)]
    rows = [[para(f"<b>{a}</b>", CELL), para(esc(b or "-"), CELL), para(f"<b>{c}</b>", CELL), para(esc(d or "-"), CELL)]
            for (a, b), (c, d) in zip(left, right)]
    t = Table(rows, colWidths=[80, 186, 80, 186])
    style = grid_style(header=False, zebra=False)
    style.add("BACKGROUND", (0, 0), (0, -1), SHADE)
    style.add("BACKGROUND", (2, 0), (2, -1), SHADE)
    t.setStyle(style)
    out.append(t)
    return out


def _diagnoses(bill: Superbill, icd10_codes: Sequence[str]) -> list[Flowable]:
    diagnoses = list(bill.diagnoses) or [("ABCDEFGHIJKL"[i], code, None) for i, code in enumerate(icd10_codes)]
    if not diagnoses:
        return []
    rows: list[list[Any]] = [header_row(["Pointer", "ICD-10-CM", "Diagnosis"])]
    for pointer, code, display in diagnoses:
        rows.append([pointer, para(f"<b>{esc(code)}</b>", CELL), para(esc(display or ""), CELL)])
    t = Table(rows, colWidths=[50, 70, 412])
    t.setStyle(grid_style(rows=len(rows)))
    return [para("Diagnoses (ICD-10-CM)", H2), t]


def _lines(lines: Sequence[SuperbillLine]) -> list[Flowable]:
    rows: list[list[Any]] = [header_row(["Date of service", "CPT / HCPCS", "Description", "Modifiers", "Units", "NDC (quantity)",
                                         "Dx pointer", "POS", "Rendering NPI", "Charge"])]
    for line in sorted(lines, key=lambda x: (x.service_date, x.session_id or "")):
        ndc = line.ndc or "-"
        if line.ndc and line.ndc_quantity is not None:
            ndc += f" ({' '.join(x for x in (f'{line.ndc_quantity:g}', line.ndc_unit) if x)})"
        rendering = (line.rendering_npi or "-") + (f"<br/>{esc(line.rendering_name)}" if line.rendering_name else "")
        rows.append([
            line.service_date.isoformat(), para(f"<b>{esc(line.code)}</b>", CELL), para(esc(line.description or ""), CELL),
            " ".join(line.modifiers) or "-", str(line.units), para(esc(ndc), CELL), "".join(line.diagnosis_pointers) or "-",
            line.place_of_service, para(rendering, CELL), _money(line.charge),
        ])
    if len(rows) == 1:
        rows.append(["", "No billable lines.", "", "", "", "", "", "", "", ""])
    t = Table(rows, colWidths=[54, 44, 112, 42, 30, 78, 36, 26, 62, 48], repeatRows=1)
    style = grid_style(rows=len(rows))
    style.add("ALIGN", (4, 1), (4, -1), "RIGHT")
    style.add("ALIGN", (9, 1), (9, -1), "RIGHT")
    t.setStyle(style)
    out: list[Flowable] = [para("Services", H2), t]
    charges = [line.charge for line in lines]
    if lines and all(c is not None for c in charges):
        total = sum(charges, Decimal(0))  # type: ignore[arg-type]
        out += [Spacer(1, 3), para(f"<b>Total charges: {_money(total)}</b>", BASE)]
    return out


def render_superbill(bill: Superbill | Sequence[SuperbillLine], *, icd10_codes: Sequence[str] = ()) -> bytes:
    """The superbill PDF. `bill` is a `Superbill` or just its lines."""
    if not isinstance(bill, Superbill):
        bill = Superbill(lines=tuple(bill))
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=PAGE, leftMargin=MARGIN - 6, rightMargin=MARGIN - 6, topMargin=34, bottomMargin=40,
                            title="Superbill" + (f" - {bill.patient_name}" if bill.patient_name else ""),
                            author=bill.clinic_name or "", creator="ketamine-fhir-service", invariant=1)
    story: list[Flowable] = [*_header(bill), *_diagnoses(bill, icd10_codes), *_lines(bill.lines)]
    if bill.not_coded:
        story.append(KeepTogether([para("Not coded (documentation does not support a code)", H2),
                                   *[para("&bull; " + esc(reason), SMALL) for reason in bill.not_coded]]))
    story += [Spacer(1, 10), para("Codes are those supported by the session documentation; CPT descriptions are "
                                  "paraphrased. Place of service: CMS POS code set.", SMALL)]

    def footer(canv: Canvas, page: int, pages: int) -> None:
        width, height = PAGE
        canv.saveState()
        canv.setFillColor(ACCENT)
        canv.rect(0, height - 10, width, 10, stroke=0, fill=1)
        canv.setStrokeColor(RULE)
        canv.line(MARGIN, 30, width - MARGIN, 30)
        canv.setFillColor(MUTED)
        canv.setFont("Helvetica", 7.5)
        who = "  |  ".join(x for x in (bill.patient_name, f"MRN {bill.patient_mrn}" if bill.patient_mrn else None) if x)
        canv.drawString(MARGIN, 20, f"Superbill{'  |  ' + who if who else ''}")
        canv.drawRightString(width - MARGIN, 20, f"Page {page} of {pages}")
        canv.restoreState()

    doc.build(story, canvasmaker=numbered_canvas(footer))
    return buffer.getvalue()


__all__ = ["Superbill", "SuperbillLine", "render_superbill"]
