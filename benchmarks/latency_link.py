"""A network link with latency for the sync benchmark: the fault proxy (tests/peers/
fault_proxy.py) in front of a peer, delaying every response by a fixed time, in a process of
its own (so it takes no GIL time from the client being measured).

    python -m benchmarks.latency_link UPSTREAM_URL MILLISECONDS

prints the link's base URL on stdout, then serves until its stdin closes.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from collections.abc import Iterator


def main() -> None:
    from tests.peers.fault_proxy import Fault, FaultProxy

    upstream, milliseconds = sys.argv[1], float(sys.argv[2])
    proxy = FaultProxy(upstream, io_timeout=120.0).start()
    proxy.configure(probabilities={Fault.SLOW: 1.0}, slow_seconds=milliseconds / 1000)
    print(proxy.base_url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin (or dies)
    proxy.stop()


@contextmanager
def latency_link(upstream: str, milliseconds: float) -> Iterator[str]:
    """The base URL of a link to `upstream` that answers `milliseconds` late."""
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.latency_link", upstream, str(milliseconds)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    main()
