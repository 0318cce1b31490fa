"""The ``scripts/fhir-validate`` command line: output format and exit codes (0 valid, 1 errors)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from service.conformance.hl7_validator import DEFAULT_JAR, PROJECT_ROOT


pytestmark = pytest.mark.validator

SCRIPT = PROJECT_ROOT / "scripts" / "fhir-validate"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def cli(fhir_validator):  # noqa: ARG001 - same skip/fail rules as the resident validator
    """Runs scripts/fhir-validate with the test Questionnaires loaded."""
    assert DEFAULT_JAR.is_file()

    def run(*files: str) -> subprocess.CompletedProcess[str]:
        args = [str(SCRIPT), "--extra", str(DATA / "questionnaires"), *files]
        return subprocess.run(
            args, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT, env=dict(os.environ)
        )

    return run


def _lines(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines() if line.strip()]


def test_valid_files_exit_0(cli):
    files = [str(DATA / "valid" / "observation-bp.json"), str(DATA / "valid" / "qr-phq9.json")]
    proc = cli(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for fields in _lines(proc.stdout):
        assert len(fields) == 4, fields
        assert fields[1] in {"WARNING", "INFORMATION"}, fields


def test_invalid_file_exits_1_and_lists_errors(cli):
    bad = str(DATA / "invalid" / "observation-bogus-status.json")
    proc = cli(str(DATA / "valid" / "observation-bp.json"), bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [f for f in _lines(proc.stdout) if f[1] == "ERROR"]
    assert errors and all(f[0] == bad for f in errors)
    assert any(f[2] == "Observation.status" and "bogus" in f[3] for f in errors)


def test_no_arguments_is_usage_error():
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Usage" in proc.stderr
