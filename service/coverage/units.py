"""Authorized units across the course: documented sessions counted against what the payer
authorized (by code and period), with warnings before the authorization runs out
(<= 1 session left) or expires (<= 7 days left)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..domain.administration import AdministrationSession, SessionStatus
from .claims import ClaimDocumentation

LOW_UNITS = 1
EXPIRY_WARNING_DAYS = 7


@dataclass(frozen=True)
class UnitUsage:
    request_id: str
    preauth_ref: str | None
    period_start: dt.date
    period_end: dt.date
    sessions_authorized: int
    sessions_used: int
    codes: list[dict[str, Any]]
    warnings: list[dict[str, str]]
    session_ids: list[str]

    @property
    def sessions_left(self) -> int:
        return self.sessions_authorized - self.sessions_used

    @property
    def needs_renewal(self) -> bool:
        return bool(self.warnings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id, "preauth_ref": self.preauth_ref,
            "period": {"start": self.period_start.isoformat(), "end": self.period_end.isoformat()},
            "sessions": {"authorized": self.sessions_authorized, "used": self.sessions_used, "left": self.sessions_left},
            "codes": self.codes, "warnings": self.warnings, "needs_renewal": self.needs_renewal,
            "counted_sessions": self.session_ids,
        }


def usage(
    *, request_id: str, preauth_ref: str | None, period_start: dt.date, period_end: dt.date, sessions_authorized: int,
    authorized_items: list[dict[str, Any]], sessions: list[AdministrationSession], docs: dict[str, ClaimDocumentation],
    today: dt.date, agents: set[str],
) -> UnitUsage:
    """Count sessions of the authorized agents given inside the period (up to `today`), and their billed units
    per authorized code (from the claim documentation of each session)."""
    counted = [
        s for s in sessions
        if s.agent.value in agents and s.status is not SessionStatus.NOT_DONE and period_start <= s.started_at.date() <= min(period_end, today)
    ]
    codes = []
    for item in authorized_items:
        used = sum(line.units for s in counted for line in docs[s.id].lines if line.code == item["code"])
        codes.append({"code": item["code"], "authorized_units": item["units"], "used_units": used,
                      "left_units": item["units"] - used, "decision": item.get("decision")})
    warnings = []
    left = sessions_authorized - len(counted)
    if left <= LOW_UNITS:
        warnings.append({"kind": "units", "message": f"{left} authorized session(s) left of {sessions_authorized}: request re-authorization"})
    days_left = (period_end - today).days
    if days_left < 0:
        warnings.append({"kind": "expired", "message": f"authorization expired on {period_end.isoformat()}"})
    elif days_left <= EXPIRY_WARNING_DAYS:
        warnings.append({"kind": "expiry", "message": f"authorization expires on {period_end.isoformat()} ({days_left} day(s) left)"})
    return UnitUsage(request_id, preauth_ref, period_start, period_end, sessions_authorized, len(counted), codes, warnings,
                     [s.id for s in counted])
