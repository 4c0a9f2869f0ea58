"""Deciding a page's character set.

requests decodes ``text/*`` without a charset as Latin-1 and ignores
``<meta charset>``, and sites do send wrong headers, so the order here is:
a byte-order mark, then strict UTF-8 (which almost never decodes text that is
really in another charset), then the page's own ``<meta>`` declaration, then
the HTTP header, then charset_normalizer's guess.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

_META = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_HEADER = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _known(name: str | bytes | None) -> str | None:
    if not name:
        return None
    label = name.decode("ascii", "ignore") if isinstance(name, bytes) else name
    try:
        return str(codecs.lookup(label).name)
    except LookupError:
        return None


def decode(body: bytes, content_type: str | None = None) -> str:
    """The page as text, whatever its headers claim."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    meta = _META.search(body[:4096])
    header = _HEADER.search(content_type or "")
    for candidate in (meta.group(1) if meta else None, header.group(1) if header else None):
        known = _known(candidate)
        if known and known != "utf-8":
            return body.decode(known, errors="replace")
    best = charset_normalizer.from_bytes(body).best()
    if best is not None:
        return str(best)
    return body.decode("utf-8", errors="replace")
