"""Shared benchmark helpers: timing loops, percentiles and writing the results table."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def best_rate(work: Callable[[], int], repeats: int = 5) -> float:
    """Items per second of the best of `repeats` runs (the least disturbed by a noisy machine)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = work()
        rates.append(items / (time.perf_counter() - start))
    return max(rates)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def describe_machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"


def write_table(name: str, title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    lines = [f"# {title}", "", f"Machine: {describe_machine()}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [""] + [f"- {n}" for n in notes] + [""]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)
