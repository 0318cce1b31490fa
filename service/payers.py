"""Payer data: `mappings/payers/<payer>.json`, merged over `mappings/payers/default.json`.

A payer file names the payer (name, identifiers, payer type with its Source of Payment
Typology code), the FHIR base URL of its PAS endpoint and, per service
(`iv-ketamine-series`, `esketamine-course`, `maintenance`), the rules: whether it is covered,
the evidence required (criteria) and what an approval authorizes (codes, units, period).
A payer's service entry replaces the default entry field by field; `criteria` and
`authorize` are replaced as a whole (so a payer states its full rule, never half of one).

Endpoints are configurable per environment: `PAYER_<KEY>_URL` (key upper-cased, '-' -> '_')
wins over the `payer_endpoints` setting (JSON object key -> URL), which wins over the file.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from .domain.coverage import PayerType
from .terminology import TerminologyError

PAYERS_DIR = Path(__file__).resolve().parents[1] / "mappings" / "payers"
SERVICES = ("iv-ketamine-series", "esketamine-course", "maintenance")
ServiceKey = Literal["iv-ketamine-series", "esketamine-course", "maintenance"]
PAYER_SYSTEM = "http://ketamine-interop.example.org/fhir/payers"
"""Namespace of payer keys: the insurer Organization id is derived from (PAYER_SYSTEM, key)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodingSpec(_Model):
    system: str
    code: str
    display: str | None = None
    verification: str | None = None
    source: str | None = None

    def coding(self) -> dict[str, str]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out


class SeverityThreshold(_Model):
    instrument: Literal["phq9", "madrs"]
    min_total: int = Field(ge=0, le=60)


class DiagnosisRule(_Model):
    allowed_icd10: list[str] = Field(min_length=1)


class TreatmentResistanceRule(_Model):
    min_failed_trials: int = Field(ge=1, le=10)
    min_weeks: int = Field(default=6, ge=1, le=52)


class BaselineSeverityRule(_Model):
    any_of: list[SeverityThreshold] = Field(min_length=1)
    within_days: int = Field(ge=1, le=730)


class SuicideRiskRule(_Model):
    instrument: Literal["cssrs_screener"] = "cssrs_screener"
    within_days: int = Field(ge=1, le=730)


class RemsRule(_Model):
    site_certified: bool = True
    patient_enrolled: bool = True


class PriorResponseRule(_Model):
    instruments: list[Literal["phq9", "madrs"]] = Field(min_length=1)
    statuses: list[Literal["response", "remission"]] = Field(min_length=1)
    within_days: int = Field(ge=1, le=730)


class Criteria(_Model):
    """Evidence a payer requires before it authorizes a service. Absent = not required."""

    diagnosis: DiagnosisRule | None = None
    treatment_resistance: TreatmentResistanceRule | None = None
    baseline_severity: BaselineSeverityRule | None = None
    suicide_risk_screen: SuicideRiskRule | None = None
    no_contraindications: bool = False
    rems: RemsRule | None = None
    prior_response: PriorResponseRule | None = None


class AuthorizedItem(_Model):
    code: str
    system: Literal["cpt", "hcpcs"]
    units_per_session: int = Field(ge=1, le=1000)


class Authorization(_Model):
    """What an approval covers: `sessions` sessions within `period_days` from the start."""

    sessions: int = Field(ge=1, le=100)
    period_days: int = Field(ge=1, le=730)
    items: list[AuthorizedItem] = Field(min_length=1)
    modifiers: list[str] = Field(default_factory=list)


class ServiceRule(_Model):
    description: str | None = None
    agents: list[Literal["ketamine", "esketamine"]] = Field(default_factory=list)
    covered: bool = True
    not_covered_reason: str | None = None
    prior_auth_required: bool = True
    criteria: Criteria = Field(default_factory=Criteria)
    authorize: Authorization | None = None


class Endpoint(_Model):
    base_url: str
    env: str | None = None


class X12Codes(_Model):
    category: CodingSpec
    request_type: CodingSpec
    certification_initial: CodingSpec
    certification_renewal: CodingSpec


class Payer(_Model):
    key: str
    name: str
    payer_type: PayerType
    description: str | None = None
    sopt: CodingSpec
    identifiers: list[dict[str, str]] = Field(min_length=1)
    endpoint: Endpoint
    services: dict[ServiceKey, ServiceRule]
    x12: X12Codes

    def service(self, service: str) -> ServiceRule:
        try:
            return self.services[service]  # type: ignore[index]
        except KeyError:
            raise UnknownPayer(f"payer {self.key!r} has no rules for service {service!r} (known: {', '.join(SERVICES)})") from None

    @property
    def npi(self) -> str | None:
        return next((i["value"] for i in self.identifiers if i["system"].endswith("us-npi")), None)


class UnknownPayer(TerminologyError):
    """No payer file (or no service rule) of that name."""


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _merge_services(default: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in SERVICES:
        base = dict(default.get(name, {}))
        base.update(own.get(name, {}))
        if base:
            merged[name] = base
    return merged


@lru_cache(maxsize=64)
def _load(directory: str, key: str) -> Payer:
    folder = Path(directory)
    path = folder / f"{key}.json"
    if key == "default" or not path.is_file():
        raise UnknownPayer(f"unknown payer {key!r} (known: {', '.join(payer_keys(folder)) or 'none'})")
    default = _read(folder / "default.json")
    own = _read(path)
    data = {k: v for k, v in own.items() if k != "services"}
    data["services"] = _merge_services(default.get("services", {}), own.get("services", {}))
    data.setdefault("x12", default["x12"])
    return Payer.model_validate(data)


def payer_keys(directory: Path = PAYERS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json") if p.stem != "default")


def load_payer(key: str, directory: Path = PAYERS_DIR) -> Payer:
    """The payer `key` merged over the default rule set (cached)."""
    if not key.replace("-", "").isalnum():
        raise UnknownPayer(f"unknown payer {key!r}")
    return _load(str(directory), key)


def all_payers(directory: Path = PAYERS_DIR) -> list[Payer]:
    return [load_payer(k, directory) for k in payer_keys(directory)]


def env_name(key: str) -> str:
    return "PAYER_" + key.upper().replace("-", "_") + "_URL"


def endpoint_url(payer: Payer, overrides: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The payer's FHIR base URL in this environment (env var > setting > payer file)."""
    env = os.environ if environ is None else environ
    for name in (env_name(payer.key), payer.endpoint.env):
        if name and env.get(name):
            return env[name].rstrip("/")
    if overrides and overrides.get(payer.key):
        return overrides[payer.key].rstrip("/")
    return payer.endpoint.base_url.rstrip("/")
