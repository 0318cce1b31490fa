"""pytest plugin: the HL7 FHIR validator (HAPI FHIR, resident JVM) as the judge of FHIR output.

Fixtures
--------
``fhir_validator`` (session)
    A started :class:`service.conformance.hl7_validator.HL7Validator`. Skipped when the jar is not built,
    unless ``REQUIRE_VALIDATOR`` is set (``scripts/test`` and CI set it): then a missing jar or a JVM that
    does not start is a hard failure.
``assert_fhir_valid`` (function)
    ``assert_fhir_valid(resource, profile=None) -> ValidationResult``: fails the test listing every
    error; warnings and information are recorded for the session report.
``fhir_validation_report`` (session)
    The :class:`ValidationReport` collector.

Every test using ``fhir_validator`` (directly or through ``assert_fhir_valid``) gets the ``validator``
marker automatically. At the end of the session, the warnings/information seen are written to
``reports/fhir-validation-warnings.json`` (counts by message kind, with examples, plus the run-level
"unresolved dependency" warnings of IG packages that are not loaded).

Extra conformance directories: the defaults of ``HL7Validator`` (``mappings/questionnaires``,
``mappings/terminology/codesystems``) plus ``tests/conformance/data/questionnaires`` and the
``os.pathsep``-separated list in ``$FHIR_VALIDATOR_EXTRA_DIRS``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.conformance.hl7_validator import (
    DEFAULT_JAR,
    PROJECT_ROOT,
    HL7Validator,
    Issue,
    ValidationResult,
    ValidatorNotBuiltError,
    ValidatorStartError,
    default_extra_dirs,
)

REQUIRE_ENV = "REQUIRE_VALIDATOR"
EXTRA_DIRS_ENV = "FHIR_VALIDATOR_EXTRA_DIRS"
REPORT_PATH = PROJECT_ROOT / "reports" / "fhir-validation-warnings.json"
TEST_EXTRA_DIRS = [PROJECT_ROOT / "tests" / "conformance" / "data" / "questionnaires"]
MAX_EXAMPLES = 5
_FALSE_WORDS = {"", "0", "false", "no", "off"}

__all__ = [
    "ValidationReport",
    "assert_valid",
    "describe",
    "errors_matching",
    "message_kind",
    "validator_required",
    "validator_extra_dirs",
]


def validator_required(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """True when ``REQUIRE_VALIDATOR`` is set to something other than empty/0/false/no/off."""
    env = os.environ if environ is None else environ
    return env.get(REQUIRE_ENV, "").strip().lower() not in _FALSE_WORDS


def validator_extra_dirs() -> list[Path]:
    """Extra conformance-resource directories passed to the validator in the test session."""
    dirs = list(default_extra_dirs())
    dirs += [d for d in TEST_EXTRA_DIRS if d.is_dir()]
    for raw in os.environ.get(EXTRA_DIRS_ENV, "").split(os.pathsep):
        if raw.strip() and Path(raw.strip()).is_dir():
            dirs.append(Path(raw.strip()))
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(d)
    return unique


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_URL = re.compile(r"""https?://[^\s)'"]+|urn:[^\s)'"]+""")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")


def message_kind(message: str) -> str:
    """A message with its specifics (quoted values, URLs, numbers) replaced, to group similar issues."""
    text = _QUOTED.sub("'…'", message)
    text = _URL.sub("<url>", text)
    text = _NUMBER.sub("<n>", text)
    return text.strip()[:300]


class ValidationReport:
    """Collects warning/information issues of a session and writes them as JSON."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current_test: str | None = None
        self.resources_validated = 0
        self.kinds: dict[tuple[str, str], dict[str, Any]] = {}
        self.run_level: list[dict[str, str]] = []
        self.validator_info: dict[str, Any] = {}

    def record(self, resource: Any, result: ValidationResult) -> None:
        """Callback for ``HL7Validator(on_result=...)``."""
        resource_type = None
        if isinstance(resource, dict):
            resource_type = resource.get("resourceType")
        with self._lock:
            self.resources_validated += 1
            for issue in result.issues:
                if issue.severity not in ("warning", "information"):
                    continue
                key = (issue.severity, message_kind(issue.message))
                entry = self.kinds.setdefault(
                    key, {"severity": issue.severity, "kind": key[1], "count": 0, "examples": []}
                )
                entry["count"] += 1
                if len(entry["examples"]) < MAX_EXAMPLES:
                    entry["examples"].append(
                        {
                            "test": self.current_test,
                            "resourceType": resource_type,
                            "location": issue.location,
                            "message": issue.message,
                        }
                    )

    def add_run_level(self, issues: list[Issue]) -> None:
        """Run-level warnings (unresolved IG dependencies), listed once."""
        with self._lock:
            self.run_level = [{"severity": i.severity, "message": i.message} for i in issues]

    def as_dict(self) -> dict[str, Any]:
        """The report content."""
        with self._lock:
            kinds = sorted(self.kinds.values(), key=lambda e: (e["severity"], -e["count"], e["kind"]))
            totals: dict[str, int] = {}
            for e in kinds:
                totals[e["severity"]] = totals.get(e["severity"], 0) + e["count"]
            return {
                "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "validator": self.validator_info,
                "resources_validated": self.resources_validated,
                "totals": totals,
                "kinds": kinds,
                "run_level": self.run_level,
            }

    def write(self, path: Path = REPORT_PATH) -> Path:
        """Writes the JSON report (creates the directory)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


_REPORT = ValidationReport()


def assert_valid(
    validator: HL7Validator,
    resource: dict[str, Any] | bytes | str,
    profile: str | None = None,
) -> ValidationResult:
    """Validates and fails the current test (listing every error) when there is any error/fatal issue."""
    result = validator.validate(resource, profile=profile)
    if not result.ok:
        what = resource.get("resourceType", "resource") if isinstance(resource, dict) else "resource"
        rid = resource.get("id") if isinstance(resource, dict) else None
        header = f"{what}{'/' + rid if rid else ''} is not valid FHIR"
        if profile:
            header += f" (profile {profile})"
        lines = [f"  {i.severity.upper()} {i.location or '-'}: {i.message}" for i in result.errors]
        pytest.fail(f"{header}: {len(result.errors)} error(s)\n" + "\n".join(lines), pytrace=False)
    return result


def errors_matching(result: ValidationResult, *needles: str) -> list[Issue]:
    """Errors whose location + message contain every needle (case-insensitive)."""
    found = []
    for issue in result.errors:
        text = f"{issue.location} {issue.message}".lower()
        if all(n.lower() in text for n in needles):
            found.append(issue)
    return found


def describe(result: ValidationResult) -> str:
    """All issues of a result, one per line, for assertion messages."""
    return result.format() or "(no issues)"


# ---------------------------------------------------------------------------- hooks


def pytest_configure(config: pytest.Config) -> None:
    """Registers the ``validator`` marker (also declared in pyproject.toml)."""
    config.addinivalue_line("markers", "validator: needs the Java HL7 validator built by scripts/test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test that uses the validator fixtures with ``validator``."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "fhir_validator" in names or "assert_fhir_valid" in names:
            item.add_marker(pytest.mark.validator)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Remembers which test is running, for the report's examples."""
    _REPORT.current_test = item.nodeid
    yield
    _REPORT.current_test = None


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def fhir_validation_report() -> ValidationReport:
    """The session's warning/information collector."""
    return _REPORT


@pytest.fixture(scope="session")
def fhir_validator(fhir_validation_report: ValidationReport) -> Iterator[HL7Validator]:
    """A started HL7Validator for the whole session (see the module docstring for skip/fail rules)."""
    required = validator_required()
    if not DEFAULT_JAR.is_file():
        reason = f"HL7 validator jar not built ({DEFAULT_JAR}); run scripts/build-validator"
        if required:
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
        pytest.skip(reason)
    log_file = PROJECT_ROOT / "reports" / "fhir-validator-jvm.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("", encoding="utf-8")
    try:
        validator = HL7Validator(
            extra_dirs=validator_extra_dirs(),
            on_result=fhir_validation_report.record,
            log_file=log_file,
        )
    except (ValidatorNotBuiltError, ValidatorStartError) as error:
        pytest.fail(f"HL7 validator did not start: {error}", pytrace=False)
    fhir_validation_report.validator_info = {
        "jar": str(validator.jar),
        "packages_dir": str(validator.packages_dir),
        "extra_dirs": [str(d) for d in validator.extra_dirs],
        "startup_seconds": round(validator.startup_seconds or 0.0, 2),
    }
    try:
        yield validator
    finally:
        try:
            if validator.running:
                fhir_validation_report.add_run_level(validator.unresolved_dependencies())
        except Exception as error:  # noqa: BLE001 - the report must not hide test results
            fhir_validation_report.add_run_level([Issue("warning", "", f"could not query dependencies: {error}")])
        finally:
            validator.close()
            fhir_validation_report.write()


@pytest.fixture
def assert_fhir_valid(fhir_validator: HL7Validator) -> Callable[..., ValidationResult]:
    """``assert_fhir_valid(resource, profile=None)``: fails the test listing the errors; returns the result."""

    def _assert(resource: dict[str, Any] | bytes | str, profile: str | None = None) -> ValidationResult:
        return assert_valid(fhir_validator, resource, profile=profile)

    return _assert
