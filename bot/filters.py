"""Per-chat keyword filters: plain words and "quoted phrases", ``-word`` excludes.

No regular expressions from users (nothing can blow up), matching is
case-insensitive over the title and the lead, on whole words (Cyrillic
included), after the same normalisation the parser uses. A statement passes
when it contains any of the include terms (or there are none) and none of the
exclude terms.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from feeds.text import fold

MAX_TERMS = 20
MAX_TERM_LENGTH = 60


class FilterError(ValueError):
    """A filter a user typed that cannot be used; the message says why."""


@dataclass(frozen=True)
class Term:
    text: str  # folded
    exclude: bool

    def __str__(self) -> str:
        shown = f'"{self.text}"' if " " in self.text else self.text
        return f"-{shown}" if self.exclude else shown


def parse_terms(text: str) -> list[Term]:
    """Terms from what a user typed after ``/filter add``."""
    try:
        words = shlex.split(
            text.replace("“", '"').replace("”", '"').replace("«", '"').replace("»", '"')
        )
    except ValueError:
        raise FilterError("a quote is not closed") from None
    terms = []
    for word in words:
        exclude = word.startswith("-") and len(word) > 1
        folded = fold(word[1:] if exclude else word)
        if not folded or not re.search(r"\w", folded):
            continue
        if len(folded) > MAX_TERM_LENGTH:
            raise FilterError(f"a term may have at most {MAX_TERM_LENGTH} characters")
        terms.append(Term(folded, exclude))
    if not terms:
        raise FilterError("no words to filter on")
    return terms


def merge(existing: Sequence[Term], new: Sequence[Term]) -> list[Term]:
    merged = list(existing)
    for term in new:
        if term not in merged:
            merged.append(term)
    if len(merged) > MAX_TERMS:
        raise FilterError(f"a chat may have at most {MAX_TERMS} filter terms")
    return merged


def _contains(haystack: str, needle: str) -> bool:
    # Whole words: "oil" does not match "soil"; phrases match across spaces.
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def matches(terms: Sequence[Term], title: str, lead: str) -> bool:
    if not terms:
        return True
    text = fold(f"{title} {lead}")
    if any(_contains(text, t.text) for t in terms if t.exclude):
        return False
    includes = [t for t in terms if not t.exclude]
    return not includes or any(_contains(text, t.text) for t in includes)


def dump(terms: Sequence[Term]) -> list[list[object]]:
    return [[t.text, t.exclude] for t in terms]


def load(data: object) -> list[Term]:
    if not isinstance(data, list):
        return []
    return [Term(str(t), bool(x)) for t, x in data if isinstance(t, str)]
