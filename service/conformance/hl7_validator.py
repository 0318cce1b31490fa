"""Python client for the resident HL7 FHIR validator (HAPI FHIR ``FhirInstanceValidator``).

The Java tool in ``validator/`` is started once in ``serve`` mode as a subprocess; it loads FHIR R4 core,
US Core 3.1.1 / 7.0.0, Da Vinci PAS 2.2.1 and the project's Questionnaires / CodeSystems, prints
``LISTENING <port>`` and then validates resources posted to ``http://127.0.0.1:<port>/validate``.

Usage::

    with HL7Validator() as v:
        result = v.validate(resource_dict, profile=None)
        assert result.ok, result.format()

Building the jar is not this module's job: run ``scripts/build-validator`` first.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "Issue",
    "ValidationResult",
    "HL7Validator",
    "ValidatorNotBuiltError",
    "ValidatorStartError",
    "PROJECT_ROOT",
    "DEFAULT_JAR",
    "NOT_CHECKED_PREFIX",
    "default_packages_dir",
    "default_extra_dirs",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JAR = PROJECT_ROOT / "validator" / "target" / "fhir-validator.jar"
NOT_CHECKED_PREFIX = "not checked offline: "
UNRESOLVED_PREFIX = "unresolved dependency (package not loaded): "

_SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}


class ValidatorNotBuiltError(RuntimeError):
    """The validator jar does not exist (run ``scripts/build-validator``)."""


class ValidatorStartError(RuntimeError):
    """The JVM did not come up (bad arguments, crash, timeout)."""


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue reported by the validator."""

    severity: str  # fatal | error | warning | information
    location: str  # FHIRPath-like expression, e.g. "Observation.component[0].code"
    message: str
    code: str = "processing"  # OperationOutcome.issue.code
    message_id: str | None = None  # validator message key, when it has one
    line: int | None = None
    col: int | None = None

    @property
    def expression(self) -> str:
        """Alias of :attr:`location` (OperationOutcome.issue.expression)."""
        return self.location

    @property
    def is_error(self) -> bool:
        """True for error and fatal issues."""
        return self.severity in ("error", "fatal")

    def __str__(self) -> str:
        return f"{self.severity.upper()}\t{self.location}\t{self.message}"


@dataclass
class ValidationResult:
    """All issues for one validated resource (or Bundle)."""

    issues: list[Issue] = field(default_factory=list)
    outcome: dict[str, Any] | None = None  # the raw OperationOutcome

    @property
    def errors(self) -> list[Issue]:
        """Issues of severity error or fatal."""
        return [i for i in self.issues if i.is_error]

    @property
    def warnings(self) -> list[Issue]:
        """Issues of severity warning."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def information(self) -> list[Issue]:
        """Issues of severity information (includes the 'not checked offline' notes)."""
        return [i for i in self.issues if i.severity == "information"]

    @property
    def ok(self) -> bool:
        """True when there is no error or fatal issue."""
        return not self.errors

    def format(self, min_severity: str = "information") -> str:
        """One line per issue at or above ``min_severity``: ``SEVERITY<TAB>location<TAB>message``."""
        limit = _SEVERITY_ORDER.get(min_severity, 3)
        return "\n".join(str(i) for i in self.issues if _SEVERITY_ORDER.get(i.severity, 3) <= limit)

    @classmethod
    def from_outcome(cls, outcome: dict[str, Any]) -> ValidationResult:
        """Builds a result from an OperationOutcome produced by the validator server."""
        issues: list[Issue] = []
        for raw in outcome.get("issue", []):
            diagnostics = raw.get("diagnostics", "")
            if (
                raw.get("severity") == "information"
                and raw.get("code") == "informational"
                and diagnostics == "No issues detected"
            ):
                continue
            expr = raw.get("expression") or raw.get("location") or [""]
            line = col = None
            for ext in raw.get("extension", []):
                if ext.get("url", "").endswith("operationoutcome-issue-line"):
                    line = ext.get("valueInteger")
                elif ext.get("url", "").endswith("operationoutcome-issue-col"):
                    col = ext.get("valueInteger")
            codings = (raw.get("details") or {}).get("coding") or [{}]
            issues.append(
                Issue(
                    severity=raw.get("severity", "information"),
                    location=expr[0] if expr else "",
                    message=diagnostics,
                    code=raw.get("code", "processing"),
                    message_id=codings[0].get("code"),
                    line=line,
                    col=col,
                )
            )
        return cls(issues=issues, outcome=outcome)


def default_packages_dir() -> Path:
    """``$FHIR_PACKAGES_DIR`` or ``<project root>/../shared/fhir-packages``."""
    env = os.environ.get("FHIR_PACKAGES_DIR")
    if env:
        return Path(env)
    return PROJECT_ROOT.parent / "shared" / "fhir-packages"


def default_extra_dirs() -> list[Path]:
    """The project's own conformance resources, when the directories exist."""
    candidates = [
        PROJECT_ROOT / "mappings" / "questionnaires",
        PROJECT_ROOT / "mappings" / "terminology" / "codesystems",
        PROJECT_ROOT / "mappings" / "profiles",
    ]
    return [p for p in candidates if p.is_dir()]


class HL7Validator:
    """A resident HAPI FHIR validator JVM, spoken to over HTTP on 127.0.0.1.

    Thread-safe: the server serializes validations; the httpx client is shared.
    """

    def __init__(
        self,
        jar: str | os.PathLike[str] | None = None,
        packages_dir: str | os.PathLike[str] | None = None,
        extra_dirs: Iterable[str | os.PathLike[str]] | None = None,
        *,
        java: str | None = None,
        jvm_args: Sequence[str] = ("-Xmx1g", "-XX:+UseSerialGC", "-Xss4m"),
        startup_timeout: float = 240.0,
        request_timeout: float = 120.0,
        start: bool = True,
        log_file: str | os.PathLike[str] | None = None,
        on_result: Callable[[Any, ValidationResult], None] | None = None,
    ) -> None:
        self.jar = Path(jar) if jar else DEFAULT_JAR
        self.packages_dir = Path(packages_dir) if packages_dir else default_packages_dir()
        self.extra_dirs = [Path(p) for p in extra_dirs] if extra_dirs is not None else default_extra_dirs()
        self.java = java or _find_java()
        self.jvm_args = list(jvm_args)
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.log_file = Path(log_file) if log_file else None
        self.on_result = on_result
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self._stderr_lines: list[str] = []
        self._lock = threading.Lock()
        if start:
            self.start()

    # ------------------------------------------------------------------ lifecycle
    def command(self) -> list[str]:
        """The java command line used to start the server."""
        cmd = [self.java, *self.jvm_args, "-jar", str(self.jar), "serve", "--port", "0"]
        cmd += ["--packages", str(self.packages_dir)]
        for d in self.extra_dirs:
            cmd += ["--extra", str(d)]
        return cmd

    def start(self) -> None:
        """Starts the JVM and waits for ``LISTENING <port>``. Idempotent."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            if not self.jar.is_file():
                raise ValidatorNotBuiltError(
                    f"validator jar not found at {self.jar}; build it with scripts/build-validator "
                    "(mvn -q -B -f validator/pom.xml package -DskipTests)"
                )
            t0 = time.monotonic()
            self._stderr_lines = []
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=str(PROJECT_ROOT),
            )
            threading.Thread(target=self._drain_stderr, daemon=True).start()
            port = self._wait_for_listening(t0)
            self.port = port
            self.startup_seconds = time.monotonic() - t0
            self._client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                timeout=self.request_timeout,
                trust_env=False,
            )

    def _drain_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        sink = open(self.log_file, "a", encoding="utf-8") if self.log_file else None  # noqa: SIM115
        try:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if len(self._stderr_lines) < 500:
                    self._stderr_lines.append(line)
                if sink:
                    sink.write(line + "\n")
                    sink.flush()
        finally:
            if sink:
                sink.close()

    def _wait_for_listening(self, t0: float) -> int:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        result: dict[str, Any] = {}

        def reader() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("LISTENING "):
                    result["port"] = int(line.split()[1])
                    break
            # keep draining stdout so the JVM never blocks on a full pipe
            for _ in proc.stdout:
                pass

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        while "port" not in result:
            if proc.poll() is not None:
                time.sleep(0.2)
                raise ValidatorStartError(
                    f"validator JVM exited with code {proc.returncode} before listening:\n" + self.stderr_tail()
                )
            if time.monotonic() - t0 > self.startup_timeout:
                self._kill()
                raise ValidatorStartError(
                    f"validator did not print LISTENING within {self.startup_timeout:.0f}s:\n" + self.stderr_tail()
                )
            t.join(0.1)
        return int(result["port"])

    def stderr_tail(self, n: int = 40) -> str:
        """The last lines the JVM wrote to stderr (load notes, warnings)."""
        return "\n".join(self._stderr_lines[-n:])

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def close(self) -> None:
        """Stops the JVM and closes the HTTP client. Safe to call twice."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._kill()
            self._proc = None

    @property
    def running(self) -> bool:
        """True while the JVM process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> HL7Validator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ API
    def _http(self) -> httpx.Client:
        if self._client is None or not self.running:
            raise ValidatorStartError("validator is not running (call start())\n" + self.stderr_tail())
        return self._client

    def health(self) -> bool:
        """True when ``GET /health`` answers 200."""
        try:
            return self._http().get("/health").status_code == 200
        except (httpx.HTTPError, ValidatorStartError):
            return False

    def validate(self, resource: dict[str, Any] | bytes | str, profile: str | None = None) -> ValidationResult:
        """Validates one resource or Bundle (dict, JSON bytes or JSON text).

        ``profile``: an extra canonical to validate against (besides ``meta.profile``); may carry
        ``|version``, e.g. ``...us-core-patient|3.1.1``. An unknown profile is reported as an error.
        """
        if isinstance(resource, dict):
            body = json.dumps(resource).encode("utf-8")
        elif isinstance(resource, str):
            body = resource.encode("utf-8")
        else:
            body = bytes(resource)
        params = {"profile": profile} if profile else None
        resp = self._http().post(
            "/validate", content=body, params=params, headers={"Content-Type": "application/fhir+json"}
        )
        if resp.status_code != 200:
            raise RuntimeError(f"validator answered {resp.status_code}: {resp.text[:2000]}")
        result = ValidationResult.from_outcome(resp.json())
        if self.on_result is not None:
            self.on_result(resource, result)
        return result

    def validate_file(self, path: str | os.PathLike[str], profile: str | None = None) -> ValidationResult:
        """Validates a JSON file."""
        return self.validate(Path(path).read_bytes(), profile=profile)

    def unresolved_dependencies(self) -> list[Issue]:
        """Run-level WARNINGs: canonicals of IG dependencies that are not loaded (listed once per run),
        plus the dependency packages that are missing."""
        resp = self._http().get("/dependencies")
        resp.raise_for_status()
        return ValidationResult.from_outcome(resp.json()).issues


def _find_java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return "java"
