"""SPRAVATO REMS Patient Monitoring Form data per esketamine session, with what is missing
and the submission deadline (clinical-coding.md §4.2, [S24][S25]):

- blood pressure before dosing, ~40 minutes after dosing, and before discharge (vitals records
  with phases pre-dose / post-dose / pre-discharge); respiratory status (SpO2) each session;
- sedation / dissociation assessed (a CADSS questionnaire linked to the session);
- observation of at least 2 hours (session.observation_minutes >= 120) and the provider's
  discharge decision (session.discharge_ready);
- the form is due within 7 days of the session (outpatient settings).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..domain.administration import Agent, AdministrationSession, SessionStatus
from ..domain.monitoring import VitalsPhase
from ..domain.scoring import Instrument
from .chart import Link, PatientChart

FORM_DUE_DAYS = 7
MIN_OBSERVATION_MINUTES = Decimal(120)
POST_DOSE_WINDOW = (Decimal(30), Decimal(60))
"""'~40 minutes after dosing': a post-dose reading 30-60 minutes after the end of dosing."""


@dataclass(frozen=True)
class RemsSessionStatus:
    session_id: str
    session_date: dt.date
    due_on: dt.date
    status: str  # submitted | ready | incomplete | overdue
    fields: dict[str, Any]
    missing: tuple[str, ...]
    submitted_on: dt.date | None
    links: tuple[Link, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id, "session_date": self.session_date.isoformat(), "due_on": self.due_on.isoformat(),
            "status": self.status, "fields": self.fields, "missing": list(self.missing),
            "submitted_on": self.submitted_on.isoformat() if self.submitted_on else None,
            "links": [link.as_dict() for link in self.links],
        }


def _minutes(after: dt.datetime, before: dt.datetime) -> Decimal:
    return Decimal((after - before).total_seconds()) / Decimal(60)


def session_rems(chart: PatientChart, session: AdministrationSession, today: dt.date, submitted_on: dt.date | None = None) -> RemsSessionStatus:
    vitals = [v for v in chart.vitals if v.session_id == session.id]
    dosing_end = session.ended_at or session.started_at
    links = [chart.link(session)]
    missing: list[str] = []

    def bp(phase: VitalsPhase, check=lambda v: True):  # type: ignore[no-untyped-def]
        reading = next((v for v in vitals if v.phase is phase and v.systolic_mmhg is not None and check(v)), None)
        if reading is not None:
            links.append(chart.link(reading))
            return {"systolic": reading.systolic_mmhg, "diastolic": reading.diastolic_mmhg, "taken_at": reading.taken_at.isoformat()}
        return None

    pre = bp(VitalsPhase.PRE_DOSE, lambda v: v.taken_at <= session.started_at)
    post = bp(VitalsPhase.POST_DOSE, lambda v: POST_DOSE_WINDOW[0] <= _minutes(v.taken_at, dosing_end) <= POST_DOSE_WINDOW[1])
    discharge = bp(VitalsPhase.PRE_DISCHARGE)
    for name, value in (("blood pressure pre-dose", pre), ("blood pressure ~40 min post-dose (30-60 min after dosing)", post),
                        ("blood pressure pre-discharge", discharge)):
        if value is None:
            missing.append(name)
    spo2 = [v.spo2_percent for v in vitals if v.spo2_percent is not None]
    if not spo2:
        missing.append("respiratory status (pulse oximetry)")
    cadss = [q for q in chart.questionnaires(Instrument.CADSS) if q.session_id == session.id]
    if cadss:
        links.append(chart.link(cadss[-1]))
    else:
        missing.append("sedation/dissociation assessment (CADSS)")
    observed = session.observation_minutes
    if observed is None:
        missing.append("discharge time (observation period)")
    elif observed < MIN_OBSERVATION_MINUTES:
        missing.append(f"observation {observed:.0f} min < 120 min")
    if session.discharge_ready is not True:
        missing.append("provider's discharge-readiness decision")
    day = session.started_at.date()
    due = day + dt.timedelta(days=FORM_DUE_DAYS)
    if submitted_on is not None:
        status = "submitted"
    elif today > due:
        status = "overdue"
    else:
        status = "ready" if not missing else "incomplete"
    fields = {
        "dose_mg": str(session.dose_mg), "devices": session.esketamine_devices,
        "dosing_start": session.started_at.isoformat(), "dosing_end": dosing_end.isoformat(),
        "bp_pre_dose": pre, "bp_post_dose_40min": post, "bp_pre_discharge": discharge,
        "spo2_min": min(spo2) if spo2 else None,
        "cadss_total": cadss[-1].result().total if cadss else None,
        "observation_minutes": int(observed) if observed is not None else None,
        "discharged_at": session.discharged_at.isoformat() if session.discharged_at else None,
        "discharge_ready": session.discharge_ready,
        "adverse_events": [a.event for a in chart.of("adverse-events") if a.session_id == session.id],
    }
    return RemsSessionStatus(session.id, day, due, status, fields, tuple(missing), submitted_on, tuple(links))


def rems_status(chart: PatientChart, today: dt.date, submissions: dict[str, dt.date]) -> list[RemsSessionStatus]:
    """One entry per esketamine session that was given (not-done sessions need no form)."""
    return [
        session_rems(chart, s, today, submissions.get(s.id))
        for s in chart.sessions
        if s.agent is Agent.ESKETAMINE and s.status is not SessionStatus.NOT_DONE
    ]
