"""The service in a real server process for tests: a free loopback port, and
`serving(...)` - `python -m service serve --port P [args]` started, awaited until it answers,
and stopped (terminate, then kill) with its log closed, whatever the test did."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

import httpx

PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(env: Mapping[str, str], log_path: Path, *args: str, ready_path: str = "/health",
            ready: Callable[[subprocess.Popen], bool] = lambda process: True,
            timeout: float = 90) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL, process) of `python -m service serve` once `ready_path` answers 200 and
    `ready(process)` holds; the server's output goes to `log_path` (read it after the block)."""
    port = free_port()
    with log_path.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port), *args],
                                   cwd=PROJECT, env=dict(env), stdout=sink, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(base + ready_path, timeout=2).status_code == 200 and ready(process):
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start:\n" + log_path.read_text())
                time.sleep(0.2)
            yield base, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
