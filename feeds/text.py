"""Text normalisation shared by the parsers and the id scheme."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

_SPACE = re.compile(r"\s+")
# Zero-width characters and soft hyphens: invisible, but they break comparisons.
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")
# C0/C1 control characters other than tab, newline and carriage return are not
# allowed in XML 1.0 and make Telegram reject messages.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


# The same, less those Python counts as whitespace (\x0b \x0c \x1c-\x1f \x85):
# clean() turns those into spaces, so "a\x0cb" reads as two words.
_CONTROL_NOT_SPACE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufffe\uffff]")


def clean(text: str) -> str:
    """Plain text on one line: controls dropped, every run of whitespace
    (non-breaking spaces included) folded into one space."""
    text = _CONTROL_NOT_SPACE.sub("", _INVISIBLE.sub("", text))
    return _SPACE.sub(" ", text).strip()


def clean_paragraphs(paragraphs: list[str]) -> str:
    """Paragraphs cleaned one by one, empty ones dropped, joined by a blank line."""
    return "\n\n".join(p for p in (clean(p) for p in paragraphs) if p)


def clean_lined_paragraphs(paragraphs: Iterable[Sequence[str]]) -> str:
    """Paragraphs given as their lines (a line break is a ``<br>``): each line
    cleaned, blank lines and empty paragraphs dropped; lines joined by a newline,
    paragraphs by a blank line."""
    kept = ("\n".join(s for s in (clean(line) for line in lines) if s) for lines in paragraphs)
    return "\n\n".join(p for p in kept if p)


def fold(text: str) -> str:
    """The form two spellings of one title share: NFKC, case-folded, spacing folded."""
    return clean(unicodedata.normalize("NFKC", text)).casefold()


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis."""
    text = clean(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def strip_controls(text: str | None) -> str:
    """Text XML 1.0 can carry: control characters removed, nothing else touched."""
    return CONTROL_CHARS.sub("", text or "")
