"""Making statements and counters out of the strings a reader found.

Shared by the readers (profile selectors, laid-out text, plain text) so a
statement read any way gets the same id, summary and dates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from urllib.parse import urldefrag

from feeds.ids import statement_id
from feeds.links import safe_link
from feeds.model import Counter, Entry
from feeds.profile import SourceProfile
from feeds.text import clean, fold, shorten
from feeds.urls import without_credentials


def parse_date(text: str, formats: Iterable[str]) -> dt.date | None:
    """The first format that reads the whole (cleaned) text wins; None if none does."""
    value = clean(text)
    for fmt in formats:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def find_date(text: str, pattern: re.Pattern[str], formats: Iterable[str]) -> dt.date | None:
    """The date a longer text holds: the first match of ``pattern`` whose ``date``
    group one of the formats reads; None if none does."""
    formats = tuple(formats)
    for match in pattern.finditer(clean(text)):
        day = parse_date(match.group("date") or "", formats)
        if day is not None:
            return day
    return None


# A gap between two things shown on one line: two or more spaces, non-breaking included.
_GAP = re.compile(r"\s{2,}")


def counter_texts(lines: Iterable[str], profile: SourceProfile) -> list[str]:
    """The counters one element shows, each its own text. The element's lines (its
    ``<br>``s) are split again at wide gaps; a part that starts with a number and
    reads as a counter starts a new one, any other part continues the one before
    (a wide gap inside one counter's words must not cut it short). An element
    with fewer than two such parts is one text, as it always was."""
    lines = list(lines)
    pieces = [c for c in (clean(p) for line in lines for p in _GAP.split(line)) if c]
    parts = group_counters(
        pieces, lambda part: part[0].isdigit() and parse_counter(part, profile, None) is not None
    )
    if len(parts) >= 2:
        return parts
    return [clean(" ".join(lines))]


def group_counters(pieces: Iterable[str], starts_counter: Callable[[str], bool]) -> list[str]:
    """Pieces of text laid out in columns or apart, grouped into counters: a piece
    that starts a counter begins a new one, any other continues the one before (a
    wide gap inside one counter's words must not cut it short); pieces before the
    first counter are dropped."""
    counters: list[str] = []
    for piece in pieces:
        if starts_counter(piece):
            counters.append(piece)
        elif counters:
            counters[-1] += " " + piece
    return counters


def parse_counter(text: str, profile: SourceProfile, as_of: dt.date | None) -> Counter | None:
    match = profile.counter_pattern.search(clean(text))
    if match is None:
        return None
    try:
        days = int(re.sub(r"\D", "", match.group("days")))
    except ValueError:
        return None
    note = match.groupdict().get("note")
    try:
        since = as_of - dt.timedelta(days=days) if as_of else None
    except OverflowError:
        return None  # a start date before year 1 is not a counter but a misread number
    return Counter(
        days=days,
        subject=clean(match.group("subject")),
        note=clean(note) if note else None,
        since=since,
    )


def make_entry(
    title: str,
    published: dt.date | None,
    summary: str,
    url: str | None,
    featured: bool = False,
    content: str | None = None,
) -> Entry:
    # Only http(s) links are kept (a "javascript:" link is dropped, the statement kept).
    url = safe_link(without_credentials(urldefrag(url).url)) if url else None
    return Entry(
        id=statement_id(url, published, fold(title)),
        title=title,
        published=published,
        summary=summary,
        url=url,
        featured=featured,
        content=content,
    )


def with_text(
    title: str,
    text: str,
    url: str | None,
    published: dt.date | None,
    profile: SourceProfile,
    featured: bool = True,
) -> Entry:
    """A statement shown with its full text: the summary is the text's beginning."""
    return make_entry(
        title,
        published,
        shorten(text, profile.summary_chars) if text else title,
        url,
        featured=featured,
        content=text or None,
    )


def merge_duplicates(entries: list[Entry]) -> list[Entry]:
    """One entry per id, in first-seen order; a later copy fills what the first lacks
    (the featured statement is often listed again with its date and lead)."""
    merged: dict[str, Entry] = {}
    for entry in entries:
        first = merged.get(entry.id)
        if first is None:
            merged[entry.id] = entry
            continue
        merged[entry.id] = Entry(
            id=first.id,
            title=first.title,
            published=first.published or entry.published,
            summary=first.summary if first.summary and not first.featured else entry.summary,
            url=first.url or entry.url,
            featured=first.featured or entry.featured,
            content=first.content or entry.content,
        )
    return list(merged.values())
