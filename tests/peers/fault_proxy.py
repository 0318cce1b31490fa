"""Fault-injecting HTTP reverse proxy for sync tests: sits on 127.0.0.1 in front of a FHIR peer.

Faults (:class:`Fault`), each counted when injected:

``STATUS_503`` / ``STATUS_429``
    Answered by the proxy with that status, a ``Retry-After`` header (seconds) and an OperationOutcome;
    the request never reaches the peer.
``TIMEOUT``
    The proxy holds the request without answering for ``hold_seconds`` (set it longer than the client
    timeout), then closes the connection. The request never reaches the peer.
``DROP``
    The connection is closed without a response; the request never reaches the peer.
``SLOW``
    The request is forwarded; the response is delayed by ``slow_seconds``.
``LOST_RESPONSE``
    The request is forwarded and the peer's whole response read (so the write is committed), then the
    client connection is closed without a response. This is the fault that makes naive clients create
    duplicates.

Which fault a request gets: only requests whose method is in ``methods`` (default: all) and whose path
matches ``path_pattern`` (default: all) are eligible; an eligible request takes the next entry of the
deterministic ``schedule`` if any is left, else one drawn from ``probabilities`` with a seeded RNG
(``random.Random(seed)``), else ``Fault.PASS``. Configuration may change at any time from any thread
(:meth:`FaultProxy.configure`); counters are read with :meth:`FaultProxy.counts`.

The proxy runs its own asyncio loop in a daemon thread. Every wait is bounded (``hold_seconds``,
``slow_seconds``, ``io_timeout``), and :meth:`FaultProxy.stop` cancels whatever is in flight. Each
response is sent with ``Connection: close`` (one request per client connection), which keeps the framing
trivial and is harmless for HTTP clients. The client's Host header is passed on, so absolute URLs built by
the peer (Location, Content-Location, Bundle fullUrl) point back at the proxy.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

__all__ = ["Fault", "FaultConfig", "FaultProxy"]

_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 64 * 1024 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"}


class Fault(enum.Enum):
    """What the proxy does with one request."""

    PASS = "pass"
    STATUS_503 = "503"
    STATUS_429 = "429"
    TIMEOUT = "timeout"
    DROP = "drop"
    SLOW = "slow"
    LOST_RESPONSE = "lost_response"


@dataclass(frozen=True)
class FaultConfig:
    """A snapshot of the proxy's fault configuration (immutable; replaced as a whole)."""

    probabilities: Mapping[Fault, float] = field(default_factory=dict)
    methods: frozenset[str] | None = None
    path_pattern: str | None = None
    retry_after: int = 1
    hold_seconds: float = 5.0
    slow_seconds: float = 0.5


class FaultProxy:
    """Reverse proxy to ``upstream`` (e.g. ``http://127.0.0.1:8080/fhir``) that injects faults.

    >>> with FaultProxy("http://127.0.0.1:8080/fhir", seed=7) as proxy:   # doctest: +SKIP
    ...     proxy.configure(schedule=[Fault.LOST_RESPONSE], methods={"PUT"})
    ...     httpx.put(proxy.base_url + "/Patient/p1", json=patient)        # raises RemoteProtocolError
    ...     proxy.counts()[Fault.LOST_RESPONSE]                            # 1
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        io_timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port[/path], got {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._up_host = parts.hostname
        self._up_port = parts.port
        self._base_path = parts.path.rstrip("/")
        self._host = host
        self._port = port
        self._io_timeout = io_timeout
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._config = FaultConfig()
        self._schedule: list[Fault] = []
        self._counts: Counter[Fault] = Counter()
        self._requests = 0
        self._forwarded = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        """Start listening (idempotent); returns self."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start within 10 s")
        if self._start_error is not None:
            raise RuntimeError(f"fault proxy failed to start: {self._start_error}") from self._start_error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, cancel requests in flight, and join the thread (bounded by ``timeout``)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(timeout)
            except Exception:  # noqa: BLE001 - best effort; the loop is stopped below either way
                pass
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fault proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        """The upstream base URL as seen through the proxy (same path, proxy's host and port)."""
        return f"http://{self._host}:{self.port}{self._base_path}"

    # ------------------------------------------------------------------ configuration

    def configure(
        self,
        *,
        probabilities: Mapping[Fault, float] | None = None,
        schedule: Iterable[Fault] | None = None,
        methods: Iterable[str] | None = None,
        path_pattern: str | None = None,
        retry_after: int | None = None,
        hold_seconds: float | None = None,
        slow_seconds: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Replace the given parts of the configuration (others are kept). Thread-safe.

        ``probabilities`` maps faults to probabilities whose sum must be <= 1 (the rest passes);
        ``schedule`` replaces the pending deterministic schedule; ``methods`` (e.g. ``{"PUT", "POST"}``)
        and ``path_pattern`` (a regex searched in the path, query included) limit which requests are
        eligible for faults; ``seed`` reseeds the RNG.
        """
        with self._lock:
            cfg = self._config
            if probabilities is not None:
                probs = {Fault(k): float(v) for k, v in probabilities.items()}
                if any(v < 0 for v in probs.values()) or sum(probs.values()) > 1.0 + 1e-9:
                    raise ValueError("probabilities must be >= 0 and sum to at most 1")
                cfg = replace(cfg, probabilities=probs)
            if methods is not None:
                cfg = replace(cfg, methods=frozenset(m.upper() for m in methods))
            if path_pattern is not None:
                re.compile(path_pattern)
                cfg = replace(cfg, path_pattern=path_pattern)
            if retry_after is not None:
                cfg = replace(cfg, retry_after=int(retry_after))
            if hold_seconds is not None:
                cfg = replace(cfg, hold_seconds=float(hold_seconds))
            if slow_seconds is not None:
                cfg = replace(cfg, slow_seconds=float(slow_seconds))
            self._config = cfg
            if schedule is not None:
                self._schedule = [Fault(f) for f in schedule]
            if seed is not None:
                self._rng.seed(seed)

    def clear_faults(self) -> None:
        """No faults any more (schedule, probabilities and filters cleared); counters are kept."""
        with self._lock:
            self._config = replace(FaultConfig(), retry_after=self._config.retry_after)
            self._schedule = []

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._requests = 0
            self._forwarded = 0

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    def counts(self) -> dict[Fault, int]:
        """Injected faults so far (``Fault.PASS`` counts requests passed untouched)."""
        with self._lock:
            return {f: self._counts.get(f, 0) for f in Fault}

    @property
    def requests_seen(self) -> int:
        with self._lock:
            return self._requests

    @property
    def forwarded(self) -> int:
        """Requests that reached the upstream peer (PASS, SLOW and LOST_RESPONSE)."""
        with self._lock:
            return self._forwarded

    @property
    def pending_schedule(self) -> list[Fault]:
        with self._lock:
            return list(self._schedule)

    def _decide(self, method: str, target: str) -> tuple[Fault, FaultConfig]:
        with self._lock:
            self._requests += 1
            cfg = self._config
            eligible = (cfg.methods is None or method in cfg.methods) and (
                cfg.path_pattern is None or re.search(cfg.path_pattern, target) is not None
            )
            fault = Fault.PASS
            if eligible:
                if self._schedule:
                    fault = self._schedule.pop(0)
                elif cfg.probabilities:
                    draw = self._rng.random()
                    acc = 0.0
                    for f, p in cfg.probabilities.items():
                        acc += p
                        if draw < acc:
                            fault = f
                            break
            self._counts[fault] += 1
            if fault in (Fault.PASS, Fault.SLOW, Fault.LOST_RESPONSE):
                self._forwarded += 1
            return fault, cfg

    # ------------------------------------------------------------------ event loop side

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._on_client, self._host, self._port, limit=_MAX_HEADER_BYTES)
            )
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one bad request must not kill the proxy
            await _respond(writer, 502, {}, _outcome("exception", "fault proxy internal error"))
        finally:
            self._tasks.discard(task)
            _close(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._io_timeout)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        body = await asyncio.wait_for(_read_body(reader, headers), self._io_timeout)

        fault, cfg = self._decide(method.upper(), target)
        if fault in (Fault.STATUS_503, Fault.STATUS_429):
            status = 503 if fault is Fault.STATUS_503 else 429
            await _respond(
                writer,
                status,
                {"Retry-After": str(cfg.retry_after)},
                _outcome("transient" if status == 503 else "throttled", f"injected {status} by fault proxy"),
            )
            return
        if fault is Fault.DROP:
            return  # closed by _on_client, nothing sent
        if fault is Fault.TIMEOUT:
            await asyncio.sleep(cfg.hold_seconds)
            return

        try:
            response = await asyncio.wait_for(self._forward(method, target, headers, body), self._io_timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await _respond(writer, 502, {}, _outcome("transient", f"fault proxy: upstream failed: {exc}"))
            return
        if fault is Fault.LOST_RESPONSE:
            return  # the peer has committed the write; the client never hears of it
        if fault is Fault.SLOW:
            await asyncio.sleep(cfg.slow_seconds)
        writer.write(response)
        await writer.drain()

    async def _forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        up_reader, up_writer = await asyncio.open_connection(self._up_host, self._up_port)
        try:
            out = [f"{method} {target} HTTP/1.1"]
            for name, value in headers:
                if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
                    continue
                out.append(f"{name}: {value}")
            out.append(f"Content-Length: {len(body)}")
            out.append("Connection: close")
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            await up_writer.drain()
            raw = await up_reader.read(-1)  # Connection: close -> the peer closes after its response
        finally:
            _close(up_writer)
        if not raw:
            raise ConnectionError("upstream closed without a response")
        return _force_connection_close(raw)


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    lower = {k.lower(): v for k, v in headers}
    if "chunked" in lower.get("transfer-encoding", "").lower():
        chunks = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # end of (empty) trailers
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY_BYTES:
                raise ConnectionError("request body too large")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(lower.get("content-length", "0") or 0)
    if length > _MAX_BODY_BYTES:
        raise ConnectionError("request body too large")
    return await reader.readexactly(length) if length else b""


def _force_connection_close(raw: bytes) -> bytes:
    """Make sure the relayed response says ``Connection: close`` (we close after it)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return raw
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith((b"connection:", b"keep-alive:"))]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + rest


def _outcome(code: str, text: str) -> dict[str, object]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


_REASONS = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}


async def _respond(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: object) -> None:
    payload = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Content-Type: application/fhir+json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(payload)}", "Connection: close"]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()
    except ConnectionError:
        pass


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - already closed
        pass
