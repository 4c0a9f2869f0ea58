"""Deciding a page's character set.

A declared charset wins, in the order browsers use: a byte-order mark, then the
HTTP header, then the page's own ``<meta>``. A bad byte in a page decoded as its
declared charset becomes U+FFFD in that one place; it never switches the whole
page to another charset (which turns every title into mojibake).

Two kinds of lie are common enough to be caught:

* a page that is valid UTF-8 but declares a legacy charset (a server default of
  ``iso-8859-1``): valid UTF-8 with non-ASCII in it is almost never text in
  another charset, so it is read as UTF-8, as it always was here;
* a page that declares UTF-8 but is plainly in another charset (most of its
  non-ASCII bytes are not UTF-8): the next declaration, then a guess, is used.

An undeclared page is UTF-8 if it is (nearly) UTF-8, else charset_normalizer's
guess.
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
_META_WINDOW = 4096  # <meta charset> is in the <head>, near the start
# Browsers (WHATWG Encoding) read these labels as windows-1252; so must we, or
# the curly quotes and dashes of a "Latin-1" page come out as C1 control codes.
_AS_WINDOWS_1252 = frozenset({"latin-1", "iso8859-1", "ascii"})
_UTF16 = frozenset({"utf-16", "utf-16-le", "utf-16-be"})
# One bad byte is at most four U+FFFD (a broken 4-byte sequence); more than that,
# and more than one per ten good non-ASCII characters, means "not UTF-8".
_FEW_ERRORS = 4
_ERRORS_PER_GOOD = 0.1


def _known(name: str | bytes | None) -> str | None:
    """The codec for a charset label, as browsers read it; None if unknown."""
    if not name:
        return None
    label = name.decode("ascii", "ignore") if isinstance(name, bytes) else name
    try:
        codec = str(codecs.lookup(label).name)
    except LookupError:
        return None
    if codec in _AS_WINDOWS_1252:
        return "cp1252"
    if codec == "utf-16":
        return "utf-16-le"  # no BOM (that was checked first): WHATWG reads it as LE
    return codec


def _declared(body: bytes, content_type: str | None) -> list[str]:
    """Charsets the page declares, strongest first: HTTP header, then <meta>."""
    found: list[str] = []
    header = _HEADER.search(content_type or "")
    if header and (codec := _known(header.group(1))):
        found.append(codec)
    meta = _META.search(body[:_META_WINDOW])
    # A <meta> that could be read as ASCII cannot truly say UTF-16 (WHATWG: UTF-8).
    if meta and (codec := _known(meta.group(1))):
        found.append("utf-8" if codec in _UTF16 else codec)
    return found


def _utf8_fit(body: bytes) -> tuple[int, int]:
    """(bad sequences, good non-ASCII characters) when ``body`` is read as UTF-8."""
    text = body.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - body.count("\ufffd".encode())
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    good = non_ascii - text.count("\ufffd")
    return bad, good


def _believable_utf8(body: bytes) -> bool:
    """A page declared UTF-8 is, unless most of its non-ASCII bytes say otherwise."""
    bad, good = _utf8_fit(body)
    return bad <= _FEW_ERRORS or bad <= good * _ERRORS_PER_GOOD


def _mostly_utf8(body: bytes) -> bool:
    """An undeclared page that is UTF-8 but for a few damaged bytes."""
    bad, good = _utf8_fit(body)
    return good > 0 and bad <= good * _ERRORS_PER_GOOD


def decode(body: bytes, content_type: str | None = None) -> str:
    """The page as text: its declared charset, a bad byte costing one character."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace")
    declared = _declared(body, content_type)
    if declared and declared[0] in _UTF16:
        # Markup in UTF-16 has a NUL in every ASCII character; without any, the
        # header is a mistake.
        if b"\x00" in body[:_META_WINDOW]:
            return body.decode(declared[0], errors="replace")
        declared = declared[1:]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for codec in declared:
        if codec != "utf-8":
            return body.decode(codec, errors="replace")
        if _believable_utf8(body):
            return body.decode("utf-8", errors="replace")
    if not declared and _mostly_utf8(body):
        return body.decode("utf-8", errors="replace")
    best = charset_normalizer.from_bytes(body).best()
    if best is not None:
        return str(best)
    return body.decode("utf-8", errors="replace")
