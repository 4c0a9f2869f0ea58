"""Plain data of the source side: what a page holds, and what the store keeps of it.

No SQL and no I/O here, so the pure parts (parse, render, messages) depend on
this module alone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Counter:
    """A header counter: "855 days have passed since <subject> - <note>"."""

    days: int
    subject: str
    note: str | None
    since: dt.date | None  # as_of minus days; None when the page carries no date

    @property
    def key(self) -> str:
        """Stable identity of a counter: its subject, case and spacing folded."""
        return " ".join(self.subject.casefold().split())


@dataclass(frozen=True)
class Entry:
    """One statement as the page shows it."""

    id: str
    title: str
    published: dt.date | None
    summary: str
    url: str | None
    featured: bool = False
    content: str | None = None  # full text when the page itself carries it (featured)


@dataclass(frozen=True)
class Page:
    """Everything the source profile read out of one page."""

    as_of: dt.date | None
    counters: list[Counter] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    next_url: str | None = None  # the archive's next page, when the page has one
    kind: str = "list"  # "list": dated statements (and a featured one); "statement": one's own page
    # How it was read: "selectors" (the profile's CSS), "text-layout" (the HTML laid out
    # as text, then the text rules) or "plain-text" (a text capture, text rules).
    reader: str = "selectors"
    # Why it was read that way, one short line each (``feedbot parse --explain``).
    notes: list[str] = field(default_factory=list, compare=False)


def page_json(page: Page) -> dict[str, Any]:
    """The ``feedbot parse`` document (README: "feedbot parse"): what the page holds,
    what kind of page it is (a list, or one statement's page) and which reader read it."""
    return {
        "kind": page.kind,
        "reader": page.reader,
        "as_of": page.as_of.isoformat() if page.as_of else None,
        "counters": [
            {
                "days": c.days,
                "subject": c.subject,
                "note": c.note,
                "since": c.since.isoformat() if c.since else None,
            }
            for c in page.counters
        ],
        "entries": [
            {
                "id": e.id,
                "title": e.title,
                "published": e.published.isoformat() if e.published else None,
                "summary": e.summary,
                "url": e.url,
                "featured": e.featured,
            }
            for e in page.entries
        ],
    }


@dataclass(frozen=True)
class Article:
    """A statement's own page: its full text and, when shown, its date."""

    title: str | None
    published: dt.date | None
    content: str


@dataclass(frozen=True)
class Statement:
    seq: int
    id: str
    url: str | None
    title: str
    summary: str
    content: str | None
    published: dt.date | None
    featured: bool
    first_seen: dt.datetime
    last_seen: dt.datetime
    edited_at: dt.datetime | None
    source: str = ""  # the source's key: "" for the primary source, else its id


@dataclass(frozen=True)
class Version:
    seen_at: dt.datetime
    title: str
    summary: str


@dataclass(frozen=True)
class StoredCounter:
    key: str
    subject: str
    note: str | None
    since: dt.date
    page_days: int
    page_as_of: dt.date
    active: bool
    first_seen: dt.datetime

    def days_on(self, day: dt.date) -> int:
        return (day - self.since).days


@dataclass(frozen=True)
class Changes:
    """What one page added to the store: the delivery side consumes exactly this."""

    new: list[Statement]
    edited: list[Statement]
    new_counters: list[StoredCounter]
    first_fill: bool  # the store was empty: record the page, push it to nobody
    # Counters that did not behave like counters: a jump, a reset, one that
    # disappeared, a new one (each reported once: the store then agrees).
    counter_anomalies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceState:
    url: str
    etag: str | None = None
    last_modified: str | None = None
    consecutive_failures: int = 0
    last_success_at: dt.datetime | None = None
    last_failure_at: dt.datetime | None = None
    retry_after_until: dt.datetime | None = None


@dataclass(frozen=True)
class PollRecord:
    started_at: dt.datetime
    finished_at: dt.datetime
    result: str  # ok | not_modified | failed
    error_kind: str | None = None
    error: str | None = None
    entries_on_page: int = 0
    new_statements: int = 0
    edited_statements: int = 0
    articles_fetched: int = 0
    duration_ms: int = 0
    reader: str | None = None  # which reader read the page (None: not read)
