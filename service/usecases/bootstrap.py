"""Composition root: settings -> engine -> unit-of-work factory and rules, shared by the API
and the CLI (so neither imports the store directly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from ..config import Settings, get_settings
from ..domain.eligibility import BloodPressureThreshold
from ..domain.outcomes import OutcomeRules
from ..store import SqlUnitOfWork, UnitOfWork, make_engine, upgrade_to_head
from ..store.audit_buffer import BufferedAuditLog
from ..store.db import database_answers
from ..store.unit_of_work import Clock, utc_now
from .summary import SummaryRules


@dataclass
class Services:
    """What the use cases need at run time: a unit-of-work factory and the configured rules."""

    settings: Settings = field(default_factory=get_settings)
    clock: Clock = utc_now

    @cached_property
    def engine(self):  # type: ignore[no-untyped-def]
        return make_engine(self.settings.database_url)

    def uow(self) -> UnitOfWork:
        """A fresh unit of work (one per transaction)."""
        return SqlUnitOfWork(self.engine, self.clock)

    @property
    def uow_factory(self) -> Callable[[], UnitOfWork]:
        return self.uow

    def migrate(self) -> None:
        """Bring the database schema to the newest migration."""
        upgrade_to_head(self.engine)

    @cached_property
    def summary_rules(self) -> SummaryRules:
        s = self.settings
        return SummaryRules(
            outcome=OutcomeRules(madrs_remission_at_most=s.madrs_remission_threshold, phq9_remission_below=s.phq9_remission_below),
            blood_pressure=BloodPressureThreshold(s.bp_systolic_threshold, s.bp_diastolic_threshold),
        )

    def database_ok(self) -> bool:
        """True when the database answers a trivial query."""
        return database_answers(self.engine)

    @cached_property
    def audit_log(self) -> BufferedAuditLog:
        """The audit trail, group-committed by a writer thread (store/audit_buffer.py)."""
        return BufferedAuditLog(self.engine, self.clock)

    def close(self) -> None:
        if "audit_log" in self.__dict__:
            self.audit_log.close()  # pending audit events first, while the engine still works
        if "engine" in self.__dict__:
            self.engine.dispose()
