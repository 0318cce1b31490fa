"""Reverse look-ups in the code tables: which concept carries a given code."""

from __future__ import annotations

from functools import lru_cache

from ..terminology import UnknownCode, concepts


@lru_cache(maxsize=None)
def _index(table: str) -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for key, entry in concepts(table).items():
        if entry.get("code"):
            index.setdefault((entry["system"], entry["code"]), key)
        for extra in entry.get("extra_codings", []):
            if extra.get("code"):
                index.setdefault((extra["system"], extra["code"]), key)
    return index


def key_for_code(table: str, system: str, code: str) -> str:
    """The key of the concept in `table` coded (`system`, `code`); UnknownCode if none."""
    try:
        return _index(table)[(system, code)]
    except KeyError:
        raise UnknownCode(table, code, f"no concept with code {code} in {system}") from None


def has_code(table: str, system: str, code: str) -> bool:
    return (system, code) in _index(table)
