"""PDF inspection helpers for the packet tests (pypdf)."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader


def reader(pdf: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf))


def text_of(pdf: bytes) -> str:
    """All pages' text, whitespace collapsed (tables and wrapped cells come out in pieces)."""
    raw = "\n".join(page.extract_text() or "" for page in reader(pdf).pages)
    return re.sub(r"\s+", " ", raw)


def form_xobjects(pdf: bytes, page_index: int = 0) -> dict[str, bytes]:
    """Name -> decoded content stream of every Form XObject on a page."""
    page = reader(pdf).pages[page_index]
    xobjects = page["/Resources"].get("/XObject") or {}
    out = {}
    for name, ref in xobjects.items():
        obj = ref.get_object()
        if obj.get("/Subtype") == "/Form":
            out[str(name)] = obj.get_data()
    return out
