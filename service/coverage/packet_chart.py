"""The score chart of the medical-necessity packet, drawn as vector graphics with ReportLab.

One panel per instrument (PHQ-9 0-27, MADRS 0-60), side by side on a shared time axis, each
with the scores over time, a dashed line at the baseline, a line at the response threshold
(50 % of baseline) and one at the remission threshold (PHQ-9 < 5, MADRS <= configured; the
definitions of clinical-coding.md §1.6 as applied by `service.domain.outcomes`), and the
administration sessions marked on the time axis (triangles, numbered).

Pure: data in, a `reportlab.graphics.shapes.Drawing` out. No I/O, no store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reportlab.graphics.shapes import Circle, Drawing, Group, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

INK = colors.HexColor("#1f2933")
GRID = colors.HexColor("#d9dee3")
SCORE = colors.HexColor("#1f5f99")
BASELINE = colors.HexColor("#7b8794")
RESPONSE = colors.HexColor("#c77700")
REMISSION = colors.HexColor("#2f8f46")
SESSION = colors.HexColor("#8e44ad")


@dataclass(frozen=True)
class ScoreSeries:
    """One instrument's totals over time with the thresholds applied to it."""

    label: str
    """e.g. "PHQ-9"."""
    max_total: int
    """Top of the scale (PHQ-9 27, MADRS 60)."""
    points: tuple[tuple[dt.date, int], ...]
    """(date, total), oldest first; the first is the baseline."""
    response_threshold: float
    """Totals at or below this are a >= 50 % reduction from baseline."""
    remission_threshold: float
    """Where the remission line is drawn (PHQ-9: 5, i.e. remission below it; MADRS: the cut)."""
    remission_label: str
    """e.g. "remission < 5"."""

    @property
    def baseline(self) -> int:
        return self.points[0][1]


@dataclass(frozen=True)
class ChartInput:
    series: tuple[ScoreSeries, ...]
    sessions: tuple[dt.date, ...] = field(default_factory=tuple)
    """Dates of the administration sessions, in order (marked S1, S2, ... on the time axis)."""


def _date_range(data: ChartInput) -> tuple[dt.date, dt.date]:
    days = [d for s in data.series for d, _ in s.points] + list(data.sessions)
    first, last = min(days), max(days)
    if first == last:
        last = first + dt.timedelta(days=1)
    pad = max(1, (last - first).days // 20)
    return first - dt.timedelta(days=pad), last + dt.timedelta(days=pad)


def _ticks(first: dt.date, last: dt.date, count: int = 5) -> list[dt.date]:
    span = (last - first).days
    step = max(1, round(span / count / 7) * 7) if span > 28 else max(1, span // count)
    out, day = [], first + dt.timedelta(days=(7 - first.weekday()) % 7)  # Mondays when weekly
    if step < 7:
        day = first
    while day <= last:
        out.append(day)
        day += dt.timedelta(days=step)
    return out


def _panel(series: ScoreSeries, data: ChartInput, x0: float, y0: float, w: float, h: float) -> Group:
    """One instrument's panel with its plot area at (x0, y0), size w x h (axis labels outside)."""
    g = Group()
    first, last = _date_range(data)
    span = (last - first).days
    top = series.max_total

    def px(day: dt.date) -> float:
        return x0 + w * (day - first).days / span

    def py(total: float) -> float:
        return y0 + h * total / top

    g.add(Rect(x0, y0, w, h, strokeColor=GRID, fillColor=None, strokeWidth=0.6))
    step = 5 if top <= 30 else 10
    for value in range(0, top + 1, step):
        y = py(value)
        if 0 < value < top:
            g.add(Line(x0, y, x0 + w, y, strokeColor=GRID, strokeWidth=0.4))
        g.add(String(x0 - 3, y - 2.5, str(value), fontName="Helvetica", fontSize=6.5, fillColor=INK, textAnchor="end"))
    for day in _ticks(first, last):
        x = px(day)
        g.add(Line(x, y0, x, y0 - 2, strokeColor=INK, strokeWidth=0.5))
        g.add(String(x, y0 - 9, day.strftime("%b %d"), fontName="Helvetica", fontSize=6.5, fillColor=INK, textAnchor="middle"))
    g.add(String(x0, y0 + h + 5, f"{series.label} total (0-{top})", fontName="Helvetica-Bold", fontSize=8, fillColor=INK))

    # sessions on the time axis
    for number, day in enumerate(data.sessions, start=1):
        x = px(day)
        g.add(Line(x, y0 + 13, x, y0 + h, strokeColor=SESSION, strokeWidth=0.3, strokeDashArray=[1, 2]))
        g.add(Polygon([x - 3, y0 - 0.5, x + 3, y0 - 0.5, x, y0 + 4.5], fillColor=SESSION, strokeColor=None))
        g.add(String(x, y0 + 6.5, f"S{number}", fontName="Helvetica", fontSize=5.5, fillColor=SESSION, textAnchor="middle"))

    # thresholds; each label goes to the end of the line farther from the scores
    first_total, last_total = series.points[0][1], series.points[-1][1]

    def hline(value: float, color: colors.Color, label: str, dash: list[float] | None) -> None:
        y = py(value)
        g.add(Line(x0, y, x0 + w, y, strokeColor=color, strokeWidth=0.9, strokeDashArray=dash))
        width = stringWidth(label, "Helvetica", 6.5)
        left = x0 + 3 if abs(first_total - value) > abs(last_total - value) else x0 + w - 3 - width
        g.add(Rect(left - 1, y + 1.2, width + 2, 7, fillColor=colors.white, strokeColor=None))
        g.add(String(left, y + 2.5, label, fontName="Helvetica", fontSize=6.5, fillColor=color))

    hline(series.baseline, BASELINE, f"baseline {series.baseline}", [3, 2])
    hline(series.response_threshold, RESPONSE, f"response <= {series.response_threshold:g} (50%)", [5, 2])
    hline(series.remission_threshold, REMISSION, series.remission_label, None)

    # the scores
    coords: list[float] = []
    for day, total in series.points:
        coords += [px(day), py(total)]
    if len(series.points) > 1:
        g.add(PolyLine(coords, strokeColor=SCORE, strokeWidth=1.6))
    for day, total in series.points:
        x, y = px(day), py(total)
        g.add(Circle(x, y, 2.4, fillColor=SCORE, strokeColor=colors.white, strokeWidth=0.6))
        if x > x0 + w - 14:
            g.add(String(x - 3, y + 4, str(total), fontName="Helvetica-Bold", fontSize=7, fillColor=SCORE, textAnchor="end"))
        else:
            g.add(String(x + 3, y + 4, str(total), fontName="Helvetica-Bold", fontSize=7, fillColor=SCORE))
    return g


def score_chart(data: ChartInput, width: float = 520, height: float = 190) -> Drawing:
    """The chart: one panel per series, the first (PHQ-9) wider than the others."""
    drawing = Drawing(width, height)
    if not data.series:
        drawing.add(String(0, height / 2, "No scored PHQ-9 or MADRS totals recorded.", fontName="Helvetica", fontSize=9))
        return drawing
    left, gap, bottom, top_pad = 22.0, 34.0, 16.0, 16.0
    weights = [1.6] + [1.0] * (len(data.series) - 1)
    usable = width - left - gap * (len(data.series) - 1) - 4
    x = left
    for series, weight in zip(data.series, weights):
        w = usable * weight / sum(weights)
        drawing.add(_panel(series, data, x, bottom, w, height - bottom - top_pad))
        x += w + gap
    return drawing
