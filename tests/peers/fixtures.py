"""pytest plugin: real FHIR servers as sync peers, and a fault-injecting proxy in front of them.

Register it with ``pytest_plugins = ["tests.peers.fixtures"]`` (root conftest) or ``-p tests.peers.fixtures``.
Build the peers first with ``scripts/build-peers`` (docs/decisions/0004-sync-test-peers.md).

Fixtures
--------
``hapi_peer`` (session) -> :class:`PeerServer`
    HAPI FHIR RestfulServer (``peers/hapi-server/target/hapi-peer.jar``) with request validation (422 +
    OperationOutcome on validation errors); PUT with client ids, read, vread, history, search by ``_id`` and
    ``identifier``; no transactions, no conditional operations.
``medplum_peer`` (session) -> :class:`PeerServer`
    Medplum FhirRouter over MemoryRepository (``node peers/medplum-server/server.mjs``): conditional create and
    update, atomic batch/transaction with Medplum's limits (read them from ``transaction_limits()``).
``fault_proxy`` (function) -> factory ``fault_proxy(upstream_base_url, *, seed=0) -> FaultProxy``
    Starts a :class:`tests.peers.fault_proxy.FaultProxy` in front of ``upstream_base_url`` (e.g.
    ``medplum_peer.base_url``); every proxy made is stopped at the end of the test.

A peer whose build output is missing (jar, ``node_modules``, ``java``/``node``) makes its tests skip, unless
``REQUIRE_PEERS`` is set to a true value (CI should set it): then it is an error. ``HAPI_PEER_JAVA_OPTS``
overrides the JVM options; ``HAPI_PEER_START_TIMEOUT`` / ``MEDPLUM_PEER_START_TIMEOUT`` the start timeouts. A peer that does not print
``LISTENING <port>`` in time fails with the tail of its log. Peers are shared by the whole session: tests
use unique identifiers, or call ``peer.reset()``. Tests that use a peer get the ``peers`` marker.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.peers.fault_proxy import FaultProxy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HAPI_JAR = PROJECT_ROOT / "peers" / "hapi-server" / "target" / "hapi-peer.jar"
MEDPLUM_DIR = PROJECT_ROOT / "peers" / "medplum-server"
MEDPLUM_SERVER = MEDPLUM_DIR / "server.mjs"
REQUIRE_ENV = "REQUIRE_PEERS"
HAPI_START_TIMEOUT = float(os.environ.get("HAPI_PEER_START_TIMEOUT", "180"))
MEDPLUM_START_TIMEOUT = float(os.environ.get("MEDPLUM_PEER_START_TIMEOUT", "60"))
LIMIT_EXT_PREFIX = "http://ketamine-interop.example.org/fhir/StructureDefinition/"
_FALSE_WORDS = {"", "0", "false", "no", "off"}
_PEER_FIXTURES = {"hapi_peer", "medplum_peer"}

__all__ = ["PeerServer", "PeerStartError", "peers_required", "start_peer"]


class PeerStartError(RuntimeError):
    """The peer process exited or did not print ``LISTENING <port>`` in time."""


def peers_required(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """True when ``REQUIRE_PEERS`` is set to something other than empty/0/false/no/off."""
    env = os.environ if environ is None else environ
    return env.get(REQUIRE_ENV, "").strip().lower() not in _FALSE_WORDS


def _identifier_token(identifier: str | tuple[str, str] | None) -> str | None:
    if identifier is None or isinstance(identifier, str):
        return identifier
    system, value = identifier
    return f"{system}|{value}"


@dataclass
class PeerServer:
    """A running peer process. ``base_url`` is the FHIR base (``http://127.0.0.1:PORT/fhir``)."""

    name: str
    base_url: str
    admin_url: str
    process: subprocess.Popen[str]
    startup_seconds: float
    log_path: Path
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0), repr=False)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A new httpx client on ``base_url`` sending/accepting FHIR JSON (close it, or use ``with``)."""
        headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
        headers.update(kwargs.pop("headers", {}))
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.base_url, headers=headers, **kwargs)

    def count(self, resource_type: str, identifier: str | tuple[str, str] | None = None) -> int:
        """Current resources of the type on the peer, optionally only those with ``system|value``."""
        params = {"type": resource_type}
        token = _identifier_token(identifier)
        if token is not None:
            params["identifier"] = token
        r = self._http.get(f"{self.admin_url}/count", params=params)
        r.raise_for_status()
        return int(r.json()["count"])

    def reset(self) -> None:
        """Delete everything on the peer."""
        self._http.post(f"{self.admin_url}/reset").raise_for_status()

    def read(self, resource_type: str, resource_id: str) -> httpx.Response:
        return self._http.get(f"{self.base_url}/{resource_type}/{resource_id}", headers={"Accept": "application/fhir+json"})

    def capability_statement(self) -> dict[str, Any]:
        r = self._http.get(f"{self.base_url}/metadata", headers={"Accept": "application/fhir+json"})
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def transaction_limits(self) -> dict[str, int]:
        """The ``max-transaction-*`` extensions on ``rest`` (short names without the URL prefix)."""
        limits: dict[str, int] = {}
        for rest in self.capability_statement().get("rest", []):
            for ext in rest.get("extension", []):
                url = ext.get("url", "")
                if url.startswith(LIMIT_EXT_PREFIX) and "valueInteger" in ext:
                    limits[url[len(LIMIT_EXT_PREFIX) :]] = int(ext["valueInteger"])
        return limits

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        self._http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_peer(name: str, command: list[str], log_path: Path, timeout: float, cwd: Path = PROJECT_ROOT) -> PeerServer:
    """Start a peer process and wait (at most ``timeout`` seconds) for its ``LISTENING <port>`` line."""
    started = time.monotonic()
    log = log_path.open("w")
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, bufsize=1
    )
    log.close()
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # keeps draining stdout so the peer never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name=f"{name}-stdout", daemon=True).start()
    port = None
    deadline = started + timeout
    while port is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            line = lines.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if line is None:
            break
        if line.startswith("LISTENING "):
            port = int(line.split()[1])
    if port is None:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise PeerStartError(
            f"{name} did not print LISTENING within {timeout:.0f}s (exit code {proc.returncode}); log tail:\n{tail}"
        )
    return PeerServer(
        name=name,
        base_url=f"http://127.0.0.1:{port}/fhir",
        admin_url=f"http://127.0.0.1:{port}/__admin",
        process=proc,
        startup_seconds=time.monotonic() - started,
        log_path=log_path,
    )


def _missing(what: str) -> NoReturn:
    message = f"{what} (run scripts/build-peers)"
    if peers_required():
        pytest.fail(f"{REQUIRE_ENV} is set but {message}", pytrace=False)
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peers: uses a real FHIR sync peer (HAPI or Medplum) started by the tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _PEER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.peers)


@pytest.fixture(scope="session")
def hapi_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    java = shutil.which("java")
    if java is None:
        _missing("java is not on PATH")
    if not HAPI_JAR.is_file():
        _missing(f"{HAPI_JAR.relative_to(PROJECT_ROOT)} is not built")
    log = tmp_path_factory.mktemp("hapi-peer") / "hapi-peer.log"
    # C1 only: starts (and warms up the validator) markedly faster; a test session is short-lived.
    java_opts = os.environ.get("HAPI_PEER_JAVA_OPTS", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1").split()
    command = [str(java), *java_opts, "-jar", str(HAPI_JAR), "--port", "0"]
    peer = start_peer("hapi-peer", command, log, HAPI_START_TIMEOUT)
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def medplum_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    node = shutil.which("node")
    if node is None:
        _missing("node is not on PATH")
    if not (MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        _missing("peers/medplum-server/node_modules is not installed")
    log = tmp_path_factory.mktemp("medplum-peer") / "medplum-peer.log"
    peer = start_peer("medplum-peer", [str(node), str(MEDPLUM_SERVER), "--port", "0"], log, MEDPLUM_START_TIMEOUT)
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """Factory: ``fault_proxy(upstream_base_url, *, seed=0, io_timeout=30.0) -> FaultProxy`` (started)."""
    proxies: list[FaultProxy] = []

    def make(upstream: str, *, seed: int = 0, io_timeout: float = 30.0) -> FaultProxy:
        proxy = FaultProxy(upstream, seed=seed, io_timeout=io_timeout).start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()
