"""Feed documents from stored data: pure functions, same store → same bytes.

feedgen stamps ``updated`` with the current time, prepends entries and rejects
naive datetimes unless told otherwise, so every date here comes from the data
(aware, UTC or Europe/London), entries are added with ``order="append"``, and
text is stripped of characters XML cannot carry before it reaches feedgen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feeds.clock import LONDON
from feeds.model import Statement, StoredCounter
from feeds.text import strip_controls

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FH_NS = "http://purl.org/syndication/history/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
GENERATOR = "feedbot"


@dataclass(frozen=True)
class FeedContext:
    public_url: str  # no trailing slash
    source_url: str
    title: str
    subtitle: str = ""
    author: str = "feedbot"
    hub: str | None = None

    def url(self, path: str) -> str:
        return f"{self.public_url}/{path.lstrip('/')}"


@dataclass(frozen=True)
class ArchiveLinks:
    """RFC 5005 links of one document: where the older and newer pages are."""

    prev_archive: str | None = None
    next_archive: str | None = None
    current: str | None = None
    is_archive: bool = False


def day_start(day: dt.date) -> dt.datetime:
    """Midnight in London on ``day``: the instant a dated statement counts as published."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=LONDON)


def published_at(s: Statement) -> dt.datetime:
    return day_start(s.published) if s.published else s.first_seen


def updated_at(s: Statement) -> dt.datetime:
    """Real ``updated``: the last edit, else when it was published."""
    return max(s.edited_at, published_at(s)) if s.edited_at else published_at(s)


def content_html(s: Statement) -> str:
    text = strip_controls(s.content or s.summary)
    return "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())


def feed_updated(items: Sequence[Statement]) -> dt.datetime:
    return max((updated_at(s) for s in items), default=EPOCH)


class _ArchiveMarker(BaseExtension):  # type: ignore[misc]
    """Adds ``<fh:archive/>`` to an RFC 5005 archive document."""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": FH_NS}

    def extend_atom(self, feed: Any) -> Any:
        etree.SubElement(feed, f"{{{FH_NS}}}archive")
        return feed


class _RssHub(BaseExtension):  # type: ignore[misc]
    """Adds ``<atom:link rel="hub">`` to an RSS channel (feedgen writes only rel="self")."""

    def __init__(self) -> None:
        self.href: str | None = None

    def extend_rss(self, feed: Any) -> Any:
        if self.href:
            channel = feed[0]
            etree.SubElement(channel, f"{{{ATOM_NS}}}link", href=self.href, rel="hub")
        return feed


def _generator(ctx: FeedContext, self_url: str, updated: dt.datetime) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(self_url)
    fg.title(strip_controls(ctx.title))
    if ctx.subtitle:
        fg.subtitle(strip_controls(ctx.subtitle))
    fg.author({"name": strip_controls(ctx.author)})
    fg.link(href=self_url, rel="self")
    if ctx.hub:
        fg.link(href=ctx.hub, rel="hub")
        fg.register_extension("websub", _RssHub, None, atom=False, rss=True)
        fg.websub.href = ctx.hub
    # Last: feedgen makes the last link the RSS channel's <link>.
    fg.link(href=ctx.url("/"), rel="alternate")
    fg.language("en")
    fg.generator(GENERATOR)
    fg.updated(updated)
    fg.lastBuildDate(updated)
    return fg


def _add_statement(fg: FeedGenerator, s: Statement) -> None:
    fe = fg.add_entry(order="append")
    fe.id(s.id)
    fe.guid(s.id, permalink=bool(s.url) and s.url == s.id)
    fe.title(strip_controls(s.title).strip() or "(untitled statement)")
    if s.url:
        fe.link(href=s.url, rel="alternate")
    fe.published(published_at(s))
    fe.updated(updated_at(s))
    fe.summary(strip_controls(s.summary) or strip_controls(s.title))
    fe.content(content_html(s), type="html")


def statements_atom(
    items: Sequence[Statement], ctx: FeedContext, path: str, links: ArchiveLinks | None = None
) -> bytes:
    """An Atom document of ``items`` in the order given."""
    fg = _generator(ctx, ctx.url(path), feed_updated(items))
    if links:
        if links.prev_archive:
            fg.link(href=links.prev_archive, rel="prev-archive")
        if links.next_archive:
            fg.link(href=links.next_archive, rel="next-archive")
        if links.current:
            fg.link(href=links.current, rel="current")
        if links.is_archive:
            fg.register_extension("fh", _ArchiveMarker, None, atom=True, rss=False)
    for s in items:
        _add_statement(fg, s)
    return bytes(fg.atom_str(pretty=True))


def statements_rss(items: Sequence[Statement], ctx: FeedContext, path: str) -> bytes:
    fg = _generator(ctx, ctx.url(path), feed_updated(items))
    fg.description(strip_controls(ctx.subtitle or ctx.title))
    for s in items:
        _add_statement(fg, s)
    return bytes(fg.rss_str(pretty=True))


def _rfc3339(value: dt.datetime) -> str:
    return value.isoformat()


def statements_json(items: Sequence[Statement], ctx: FeedContext, path: str) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1)."""
    doc: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": ctx.title,
        "home_page_url": ctx.url("/"),
        "feed_url": ctx.url(path),
        "language": "en",
        "authors": [{"name": ctx.author}],
        "items": [
            {
                "id": s.id,
                **({"url": s.url} if s.url else {}),
                "title": s.title,
                "summary": s.summary,
                "content_html": content_html(s),
                "content_text": s.content or s.summary,
                "date_published": _rfc3339(published_at(s)),
                "date_modified": _rfc3339(updated_at(s)),
            }
            for s in items
        ],
    }
    if ctx.subtitle:
        doc["description"] = ctx.subtitle
    if ctx.hub:
        doc["hubs"] = [{"type": "WebSub", "url": ctx.hub}]
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def counter_line(counter: StoredCounter, day: dt.date) -> str:
    days = counter.days_on(day)
    unit = "day has" if days == 1 else "days have"
    line = f"{days} {unit} passed since {counter.subject}"
    return f"{line} - {counter.note}" if counter.note else line


def counters_atom(
    items: Sequence[StoredCounter], ctx: FeedContext, path: str, today: dt.date, days: int
) -> bytes:
    """One entry a day per counter, for the last ``days`` days up to ``today``."""
    span = [today - dt.timedelta(days=n) for n in range(days)]
    entries = [(day, c) for day in span for c in items if day >= c.since]
    updated = day_start(entries[0][0]) if entries else EPOCH
    fg = _generator(ctx, ctx.url(path), updated)
    fg.title(strip_controls(f"{ctx.title}: day counters"))
    for day, c in entries:
        key = hashlib.sha256(c.key.encode()).hexdigest()[:12]
        fe = fg.add_entry(order="append")
        fe.id(f"tag:feedbot.invalid,2020:counter/{key}/{day.isoformat()}")
        fe.title(strip_controls(f"{counter_line(c, day).split(' - ')[0]} ({day.isoformat()})"))
        fe.published(day_start(day))
        fe.updated(day_start(day))
        fe.content(strip_controls(counter_line(c, day)), type="text")
        fe.link(href=ctx.url("/"), rel="alternate")
    return bytes(fg.atom_str(pretty=True))
