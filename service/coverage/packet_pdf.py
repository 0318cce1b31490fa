"""Rendering of the medical-necessity packet PDF (ReportLab platypus) from the packet summary.

`render_packet_pdf(summary) -> (pdf_bytes, page_count)`. Input is the JSON summary made by
`service.coverage.packet.packet_summary`; nothing else is read, so the PDF never shows more than
the summary holds (no psychotherapy note content exists in it). Output is byte-for-byte
deterministic for a given summary (ReportLab invariant mode: fixed creation date and document id).

Also the shared page furniture of the coverage PDFs (`NumberedCanvas`, styles, table style),
used by `superbill_pdf.py`.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any, Callable

from reportlab.graphics import renderPDF
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from .packet_chart import INK, ChartInput, ScoreSeries, score_chart

PAGE = LETTER
MARGIN = 40
MUTED = colors.HexColor("#52606d")
ACCENT = colors.HexColor("#1f5f99")
RULE = colors.HexColor("#c5ced6")
SHADE = colors.HexColor("#eef2f6")
GOOD = colors.HexColor("#2f7d32")
BAD = colors.HexColor("#b42318")
CHART_FORM = "packetScoreChart"

BASE = ParagraphStyle("base", fontName="Helvetica", fontSize=8.4, leading=10.6, textColor=INK)
SMALL = ParagraphStyle("small", parent=BASE, fontSize=7.4, leading=9.0)
CELL = ParagraphStyle("cell", parent=BASE, fontSize=7.6, leading=9.2)
CELL_BOLD = ParagraphStyle("cellb", parent=CELL, fontName="Helvetica-Bold")
TITLE = ParagraphStyle("title", parent=BASE, fontName="Helvetica-Bold", fontSize=15, leading=18, textColor=INK)
SUBTITLE = ParagraphStyle("subtitle", parent=BASE, fontSize=8.6, leading=11, textColor=MUTED)
H2 = ParagraphStyle("h2", parent=BASE, fontName="Helvetica-Bold", fontSize=10.5, leading=13, textColor=ACCENT,
                    spaceBefore=7, spaceAfter=3)
RIGHT = ParagraphStyle("right", parent=SMALL, alignment=TA_RIGHT)


def esc(value: Any) -> str:
    """Text for a Paragraph (its mini-markup needs &, < and > escaped)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def para(text: str, style: ParagraphStyle = BASE) -> Paragraph:
    return Paragraph(text, style)


HEAD = ParagraphStyle("head", parent=BASE, fontName="Helvetica-Bold", fontSize=7.6, leading=9.0)


def header_row(labels: list[str]) -> list[Paragraph]:
    return [Paragraph(esc(label), HEAD) for label in labels]


def grid_style(header: bool = True, zebra: bool = True, rows: int = 0) -> TableStyle:
    commands: list[tuple] = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTNAME", (0, 0), (-1, -1), "Helvetica"),
        ("FONTSIZE", (0, 0), (-1, -1), 7.6),
        ("TEXTCOLOR", (0, 0), (-1, -1), INK),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
    ]
    if header:
        commands += [
            ("BACKGROUND", (0, 0), (-1, 0), SHADE),
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, MUTED),
        ]
    if zebra:
        for r in range(2 if header else 1, rows, 2):
            commands.append(("BACKGROUND", (0, r), (-1, r), colors.HexColor("#f8fafb")))
    return TableStyle(commands)


class NumberedCanvas(Canvas):
    """A canvas that knows the page count at the end, for "Page n of m" footers.

    `footer(canvas, page, pages)` is set by the caller (a class attribute per subclass)."""

    footer: Callable[[Canvas, int, int], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._saved_pages: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 - ReportLab API
        self._saved_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        pages = len(self._saved_pages)
        for number, state in enumerate(self._saved_pages, start=1):
            self.__dict__.update(state)
            if self.footer is not None:
                type(self).footer(self, number, pages)
            super().showPage()
        self.page_count = pages
        super().save()


def numbered_canvas(footer: Callable[[Canvas, int, int], None]) -> type[NumberedCanvas]:
    return type("FooterCanvas", (NumberedCanvas,), {"footer": staticmethod(footer)})


class ChartFlowable(Flowable):
    """A ReportLab Drawing placed as one Form XObject (so the chart is a single, findable object)."""

    def __init__(self, drawing: Drawing, name: str = CHART_FORM) -> None:
        super().__init__()
        self.drawing = drawing
        self.name = name
        self.width = drawing.width
        self.height = drawing.height

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        canv = self.canv
        if not canv.hasForm(self.name):
            canv.beginForm(self.name, lowerx=0, lowery=0, upperx=self.width, uppery=self.height)
            renderPDF.draw(self.drawing, canv, 0, 0)
            canv.endForm()
        canv.doForm(self.name)


def section(title: str) -> Paragraph:
    return para(esc(title), H2)


def _fmt_date(iso: str | None) -> str:
    if not iso:
        return "-"
    return dt.date.fromisoformat(iso[:10]).strftime("%b %d, %Y")


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _n(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:g}{suffix}" if isinstance(value, float) else f"{value}{suffix}"


# --------------------------------------------------------------------------- sections


def _identification(s: dict) -> Table:
    p, author, clinic = s["patient"], s.get("author"), s["clinic"]
    dx = s["diagnoses"][0] if s["diagnoses"] else None
    others = ", ".join(f"{d['icd10']} {d['display']}" for d in s["diagnoses"][1:])
    enrollment = s.get("enrollment")
    course = "-"
    if enrollment:
        course = (f"{COURSE_LABEL.get(enrollment['course_type'], enrollment['course_type'])}, started {_fmt_date(enrollment['start_date'])}"
                  + (f", {enrollment['planned_sessions']} sessions planned" if enrollment.get("planned_sessions") else "")
                  + f" ({enrollment['status']})")
    coverage = s.get("coverage")
    cov = (f"{coverage['payer']} - member {coverage['member_id']}" + (f", {coverage['plan_name']}" if coverage.get("plan_name") else "")
           if coverage else "not on file")
    L = CELL_BOLD  # noqa: N806
    rows = [
        [para("Patient", L), para(f"<b>{esc(p['name'])}</b>", CELL), para("Date of birth", L),
         para(f"{_fmt_date(p['birth_date'])} (age {p['age']}), {esc(p['sex'])}", CELL)],
        [para("MRN", L), para(esc(p["mrn"]), CELL), para("Coverage", L), para(esc(cov), CELL)],
        [para("Diagnosis (ICD-10-CM)", L),
         para(f"<b>{esc(dx['icd10'])}</b> {esc(dx['display'])}" if dx else "none recorded", CELL), "", ""],
        [para("Episode / severity", L),
         para(f"{esc(dx['episode'] or '-')} / {esc(dx['severity'] or '-')}; {esc(dx['clinical_status'])}, "
              f"{esc(dx['verification_status'])}; onset {_fmt_date(dx['onset_date'])}" if dx else "-", CELL),
         para("Other diagnoses", L), para(esc(others) or "none", CELL)],
        [para("Prescriber", L),
         para(f"{esc(author['name'])} (NPI {esc(author['npi'])})" if author else "-", CELL),
         para("Clinic", L),
         para(f"{esc(clinic['name'])}" + (f" (NPI {esc(clinic['npi'])})" if clinic.get("npi") else ""), CELL)],
        [para("Course", L), para(esc(course), CELL), "", ""],
    ]
    t = Table(rows, colWidths=[88, 190, 70, 184])
    style = grid_style(header=False, zebra=False)
    style.add("SPAN", (1, 2), (3, 2))
    style.add("SPAN", (1, 5), (3, 5))
    style.add("BACKGROUND", (0, 0), (0, -1), SHADE)
    style.add("BACKGROUND", (2, 0), (2, 1), SHADE)
    style.add("BACKGROUND", (2, 3), (2, 4), SHADE)
    t.setStyle(style)
    return t


def _glance(s: dict) -> Table:
    trd = s["treatment_resistance"]
    safety = s["safety"]
    items = []
    status = "<font color='#2f7d32'><b>MET</b></font>" if trd["met"] else "<font color='#b42318'><b>NOT MET</b></font>"
    failed = ", ".join(trd["adequate_failed_trials"]) or "none"
    items.append(f"<b>Treatment resistance:</b> {status} - {len(trd['adequate_failed_trials'])} adequate failed "
                 f"antidepressant trials ({esc(failed)}); {trd['required_failed_trials']} required.")
    screen, clearance = safety.get("screen"), safety.get("clearance")
    parts = []
    if screen:
        contraindications = [f for f in screen["flags"] if f["kind"] == "contraindication"]
        cautions = [f for f in screen["flags"] if f["kind"] == "caution"]
        parts.append("no contraindications" if not contraindications else
                     f"<font color='#b42318'>contraindications: {esc(', '.join(f['item'] for f in contraindications))}</font>")
        if cautions:
            parts.append(f"cautions: {esc(', '.join(f['item'] for f in cautions))}")
    else:
        parts.append("no contraindication screen on file")
    if clearance:
        parts.append(("medically cleared " if clearance["cleared"] else "NOT medically cleared ") + _fmt_date(clearance["date"]))
    if safety["cssrs"]:
        parts.append(f"C-SSRS risk {esc(safety['cssrs'][-1]['risk'])}")
    items.append("<b>Safety:</b> " + "; ".join(parts) + ".")
    sessions = s["sessions"]
    if sessions:
        given = [x for x in sessions if x["status"] == "completed"]
        agents = sorted({f"{x['agent']} {x['route']}" for x in sessions})
        items.append(f"<b>Treatment:</b> {len(given)} of {len(sessions)} sessions completed ({esc(', '.join(agents))}), "
                     f"{_fmt_date(sessions[0]['date'])} to {_fmt_date(sessions[-1]['date'])}; "
                     f"{len(s['adverse_events'])} adverse event(s), "
                     f"{sum(1 for e in s['adverse_events'] if e['serious'])} serious.")
    outcome = []
    for key, o in s["outcome"].items():
        label = s["scores"][key]["label"]
        change = f" ({-o['reduction_percent']:+d}%)" if o["reduction_percent"] is not None else ""
        outcome.append(f"{label} {o['baseline']} to {o['latest']}{change}: <b>{esc(o['status'].upper())}</b>")
    if outcome:
        items.append("<b>Outcome:</b> " + "; ".join(outcome) + ".")
    rows = [[para("&bull; " + text, BASE)] for text in items]
    t = Table([[para("<b>At a glance</b>", BASE)]] + rows, colWidths=[532])
    t.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.8, ACCENT),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f3f7fb")),
        ("LEFTPADDING", (0, 0), (-1, -1), 6),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return t


def _trials(s: dict) -> list[Flowable]:
    trd = s["treatment_resistance"]
    header = header_row(["Drug (class)", "Daily dose", "Dates", "Weeks", "Adequate?", "Outcome", "Counts toward TRD",
                         "Why not adequate"])
    rows: list[list[Any]] = [header]
    for t in trd["trials"]:
        rows.append([
            para(f"<b>{esc(t['drug'])}</b>" + (f" ({esc(t['drug_class'])})" if t["drug_class"] else ""), CELL),
            f"{_n(t['daily_dose_mg'])} mg",
            f"{t['start_date']} to {t['end_date'] or 'ongoing'}",
            _n(t["weeks"]),
            _yes(t["adequate"]),
            t["outcome"],
            para("<b>yes</b>" if t["counts_toward_trd"] else "no", CELL),
            para(esc("; ".join(r for r in t["reasons"] if not r.startswith("outcome ")) or "-"), CELL),
        ])
    if len(rows) == 1:
        rows.append(["No prior antidepressant trials recorded.", "", "", "", "", "", "", ""])
    table = Table(rows, colWidths=[92, 46, 100, 32, 46, 70, 50, 96], repeatRows=1)
    table.setStyle(grid_style(rows=len(rows)))
    verdict = ("<font color='#2f7d32'><b>Criterion met</b></font>" if trd["met"]
               else "<font color='#b42318'><b>Criterion not met</b></font>")
    note = para(f"{verdict}: {len(trd['adequate_failed_trials'])} adequate failed trial(s), "
                f"{trd['required_failed_trials']} required. Rule applied: {esc(trd['rule'])}; a trial is adequate at a "
                "therapeutic dose for at least 6 weeks, intolerance is not an adequate trial (program definition of TRD; "
                "operational definition of IV-ketamine trials).", SMALL)
    return [KeepTogether([section("1. Treatment-resistance history (prior antidepressant trials)"), table, Spacer(1, 2), note])]


def _safety(s: dict) -> list[Flowable]:
    safety = s["safety"]
    screen, clearance = safety.get("screen"), safety.get("clearance")
    rows = []
    if screen:
        present = ", ".join(screen["present"]) or "none present"
        flags = "; ".join(f"{f['kind']}: {f['item']} ({f['reason']})" for f in screen["flags"]) or "no contraindication or caution flags"
        by = f" by {screen['by']['name']}" if screen.get("by") else ""
        rows.append(["Contraindication screen", para(
            f"{_fmt_date(screen['date'])}{esc(by)}: {screen['items_screened']} items screened "
            f"({screen['contraindications_screened']} exclusion criteria); findings: {esc(present)}; "
            f"blood pressure {esc(screen['blood_pressure'] or '-')} (threshold {esc(screen['bp_threshold'])}); {esc(flags)}.", CELL)])
    else:
        rows.append(["Contraindication screen", "none on file"])
    if clearance:
        rows.append(["Medical clearance", para(
            f"{'<b>cleared</b>' if clearance['cleared'] else '<b>not cleared</b>'} {_fmt_date(clearance['date'])}"
            + (f", valid until {_fmt_date(clearance['valid_until'])}" if clearance.get("valid_until") else "")
            + (f" - {esc(clearance['summary'])}" if clearance.get("summary") else ""), CELL)])
    else:
        rows.append(["Medical clearance", "none on file"])
    cssrs = "; ".join(f"{_fmt_date(c['date'])} ({c['timepoint']}): risk <b>{esc(c['risk'])}</b>" for c in safety["cssrs"])
    rows.append(["C-SSRS screener", para(cssrs or "not done", CELL)])
    item9 = "; ".join(f"{_fmt_date(x['date'])} ({x['timepoint']}): item 9 = {x['item9']}" for x in safety["phq9_item9_positive"])
    rows.append(["PHQ-9 item 9 (self-harm)", para(
        (f"<font color='#b42318'>flagged</font> {esc(item9)}; each flag is followed by a C-SSRS screen (program rule)"
         if item9 else "never above 0"), CELL)])
    bp = "; ".join(f"{_fmt_date(f['date'])}: {f['reason']}" for f in safety["pre_dose_bp_flags"])
    rows.append(["Pre-dose blood pressure", para(
        f"{safety['pre_dose_readings']} pre-dose readings; " + (esc(bp) if bp else "none above threshold")
        + (f"; highest reading during/after dosing {esc(safety['max_intra_session_bp'])}" if safety.get("max_intra_session_bp") else ""),
        CELL)])
    table = Table([[para(f"<b>{esc(a)}</b>", CELL), b] for a, b in rows], colWidths=[112, 420])
    table.setStyle(grid_style(header=False, zebra=False))
    return [KeepTogether([section("2. Safety screening"), table])]


def _chart(s: dict) -> list[Flowable]:
    series = []
    for key in ("phq9", "madrs"):
        sc = s["scores"].get(key)
        if not sc:
            continue
        series.append(ScoreSeries(
            label=sc["label"], max_total=sc["max_total"],
            points=tuple((dt.date.fromisoformat(p["date"]), p["total"]) for p in sc["points"]),
            response_threshold=sc["response_at_or_below"], remission_threshold=sc["remission_line"],
            remission_label=sc["remission_label"],
        ))
    sessions = tuple(dt.date.fromisoformat(x["date"]) for x in s["sessions"])
    drawing = score_chart(ChartInput(tuple(series), sessions), width=532, height=178)
    rows = []
    for key, sc in s["scores"].items():
        values = ", ".join(f"{p['total']} ({dt.date.fromisoformat(p['date']).strftime('%b %d')})" for p in sc["points"])
        rows.append(para(f"<b>{esc(sc['label'])}</b>: {esc(values)}. {esc(sc['rule'])}.", SMALL))
    legend = para("Dashed grey: baseline; orange: response threshold (50% of baseline); green: remission threshold; "
                  "purple triangles S1, S2, ...: dosing sessions.", SMALL)
    return [KeepTogether([section("3. Symptom severity over time"), ChartFlowable(drawing), Spacer(1, 3), legend, *rows])]


def _sessions(s: dict) -> list[Flowable]:
    header = header_row(["#", "Date", "Agent / route", "Dose", "mg/kg (weight)", "Dosing min", "Observed min", "Status",
                         "Integration therapy (modality, min)"])
    rows: list[list[Any]] = [header]
    for x in s["sessions"]:
        agent = f"{x['agent']} {ROUTE.get(x['route'], x['route'])}"
        dose = f"{_n(x['dose_mg'])} mg" + (f" ({x['devices']} dev.)" if x.get("devices") else "")
        per_kg = _n(x["mg_per_kg"]) + (f" ({_n(x['weight_kg'])} kg)" if x.get("weight_kg") else "")
        integration = "; ".join(f"{i['modality']} {_n(i['minutes'])}" for i in x["integration"]) or "-"
        status = x["status"] + (f": {x['status_reason']}" if x.get("status_reason") else "")
        rows.append([str(x["number"]), x["date"], agent, dose, per_kg, _n(x["duration_minutes"]), _n(x["observation_minutes"]),
                     para(esc(status), CELL), para(esc(integration), CELL)])
    if len(rows) == 1:
        rows.append(["", "No administration sessions recorded.", "", "", "", "", "", "", ""])
    table = Table(rows, colWidths=[16, 54, 70, 54, 72, 40, 44, 58, 124], repeatRows=1)
    table.setStyle(grid_style(rows=len(rows)))
    premeds = sorted({p for x in s["sessions"] for p in x["premedications"]})
    therapy = s["psychotherapy"]
    mods = ", ".join(f"{k} x{v}" for k, v in sorted(therapy["modalities"].items()))
    prep = "; ".join(f"{_fmt_date(p['date'])} ({_n(p['minutes'])} min)" for p in s["preparation"])
    notes = [
        para(f"Premedication: {esc(', '.join(premeds)) or 'none'}. Preparation session(s): {esc(prep) or 'none'}. "
             f"Integration psychotherapy: {therapy['sessions']} sessions, {therapy['minutes']} minutes ({esc(mods) or '-'}). "
             f"{esc(therapy['note'])}", SMALL),
    ]
    return [KeepTogether([section("4. Treatment given (administration sessions)"), table, Spacer(1, 2), *notes])]


COURSE_LABEL = {"iv-series": "IV ketamine series", "intensive-retreat": "Intensive retreat", "esketamine-course":
                "Esketamine (SPRAVATO) course", "maintenance": "Maintenance"}
ROUTE = {"intravenous": "IV", "intramuscular": "IM", "sublingual": "SL", "intranasal": "nasal", "oral": "oral"}


def _adverse_events(s: dict) -> list[Flowable]:
    events = s["adverse_events"]
    if not events:
        return [section("5. Adverse events"), para("No adverse events recorded.", BASE)]
    rows: list[list[Any]] = [header_row(["Date", "Session", "Event", "Severity", "Serious", "Actions", "Outcome"])]
    for e in events:
        rows.append([e["date"], f"S{e['session_number']}" if e["session_number"] else "-", para(esc(e["event"]), CELL),
                     e["severity"], _yes(e["serious"]), para(esc(", ".join(a.replace("-", " ") for a in e["actions"]) or "-"), CELL),
                     e["outcome"]])
    table = Table(rows, colWidths=[56, 40, 110, 50, 40, 170, 66], repeatRows=1)
    table.setStyle(grid_style(rows=len(rows)))
    return [KeepTogether([section("5. Adverse events"), table])]


def _outcome(s: dict) -> list[Flowable]:
    rows: list[list[Any]] = [header_row(["Measure", "Baseline", "Latest", "Change", "Status", "Rule applied"])]
    for key, o in s["outcome"].items():
        sc = s["scores"][key]
        change = f"{-o['reduction_percent']:+d}%" if o["reduction_percent"] is not None else "-"
        latest_date = sc["points"][-1]["date"]
        color = "#2f7d32" if o["status"] in ("response", "remission") else "#b42318" if o["status"] in ("relapse", "non-response") else "#1f2933"
        rows.append([sc["label"], para(f"{o['baseline']} ({esc(sc['points'][0]['band'] or '-')})", CELL),
                     f"{o['latest']} on {latest_date}", change,
                     para(f"<font color='{color}'><b>{esc(o['status'].upper())}</b></font>", CELL), para(esc(o["rule"]), CELL)])
    if len(rows) == 1:
        rows.append(["No PHQ-9 or MADRS scores recorded.", "", "", "", "", ""])
    table = Table(rows, colWidths=[44, 92, 80, 40, 66, 210], repeatRows=1)
    table.setStyle(grid_style(rows=len(rows)))
    out: list[Flowable] = [section("6. Current outcome status"), table]
    m = s.get("maintenance")
    if m:
        out += [Spacer(1, 3), para(
            f"<b>Maintenance decision</b> {_fmt_date(m['decided_on'])}: {esc(m['decision'])} - {esc(m['rationale'])}"
            + (f" Next review {_fmt_date(m['next_review_on'])}." if m.get("next_review_on") else ""), BASE)]
    return out


def _attestation(s: dict) -> list[Flowable]:
    author = s.get("author")
    who = f"{author['name']}, NPI {author['npi']}" if author else "the treating prescriber"
    text = (f"Prepared on {_fmt_date(s['generated_on'])} from the structured records of {esc(s['clinic']['name'])} "
            f"(scores, screens, medication history, session and monitoring records). Psychotherapy is reported by "
            f"modality and minutes only; no psychotherapy note content is included.")
    sig = Table([[para(f"Prescriber: {esc(who)}", BASE), para("Signature: ______________________", BASE),
                  para("Date: ____________", BASE)]], colWidths=[240, 190, 102])
    sig.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 8)]))
    return [CondPageBreak(60), Spacer(1, 6), para(text, SMALL), sig]


# --------------------------------------------------------------------------- document


def _furniture(s: dict) -> Callable[[Canvas, int, int], None]:
    p = s["patient"]
    clinic = s["clinic"]

    def draw(canv: Canvas, page: int, pages: int) -> None:
        width, height = PAGE
        canv.saveState()
        canv.setFillColor(ACCENT)
        canv.rect(0, height - 10, width, 10, stroke=0, fill=1)
        canv.setFillColor(MUTED)
        canv.setFont("Helvetica", 7.5)
        canv.drawString(MARGIN, height - 24, f"{clinic['name']}" + (f"  |  NPI {clinic['npi']}" if clinic.get("npi") else "")
                        + (f"  |  {clinic['address']}" if clinic.get("address") else ""))
        canv.drawRightString(width - MARGIN, height - 24, "Medical necessity packet  |  CONFIDENTIAL (PHI)")
        canv.setStrokeColor(RULE)
        canv.line(MARGIN, 30, width - MARGIN, 30)
        canv.drawString(MARGIN, 20, f"{p['name']}  |  MRN {p['mrn']}  |  DOB {p['birth_date']}  |  generated {s['generated_on']}")
        canv.drawRightString(width - MARGIN, 20, f"Page {page} of {pages}")
        canv.restoreState()

    return draw


def render_packet_pdf(summary: dict[str, Any]) -> tuple[bytes, int]:
    """The packet PDF of a summary, and its page count."""
    buffer = io.BytesIO()
    p = summary["patient"]
    doc = SimpleDocTemplate(
        buffer, pagesize=PAGE, leftMargin=MARGIN - 6, rightMargin=MARGIN - 6, topMargin=34, bottomMargin=40,
        title=f"Medical necessity packet - {p['name']}", author=(summary.get("author") or {}).get("name", summary["clinic"]["name"]),
        subject=summary["title"], creator="ketamine-fhir-service", invariant=1,
    )
    story: list[Flowable] = [
        para("Medical necessity summary", TITLE),
        para(f"Ketamine-assisted treatment of treatment-resistant depression  |  generated {_fmt_date(summary['generated_on'])}"
             f"  |  for payer medical-necessity review", SUBTITLE),
        Spacer(1, 5),
        _identification(summary),
        Spacer(1, 5),
        _glance(summary),
        *_trials(summary),
        *_safety(summary),
        *_chart(summary),
        *_sessions(summary),
        *_adverse_events(summary),
        *_outcome(summary),
        *_attestation(summary),
    ]
    canvasmaker = numbered_canvas(_furniture(summary))
    doc.build(story, canvasmaker=canvasmaker)
    return buffer.getvalue(), doc.canv.page_count  # type: ignore[attr-defined]
