"""Plain data read out of a statement page."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Article:
    """A statement's own page: its full text and, when shown, its date."""

    title: str | None
    published: dt.date | None
    content: str
