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
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feeds.clock import LONDON
from feeds.links import safe_link
from feeds.model import Statement, StoredCounter
from feeds.text import strip_controls

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FH_NS = "http://purl.org/syndication/history/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
GENERATOR = "feedbot"
COUNTERS_SUBTITLE = "Each day counter on the source page, one entry a day"


@dataclass(frozen=True)
class FeedContext:
    public_url: str  # the address feeds are published under; may carry a path prefix
    source_url: str
    title: str
    subtitle: str = ""
    author: str = "feedbot"
    hub: str | None = None

    def url(self, path: str) -> str:
        """``path`` under the public address: ``https://host/prefix/`` + ``feeds/x.atom``."""
        return f"{self.public_url.rstrip('/')}/{path.lstrip('/')}"


@dataclass(frozen=True)
class SourceLabel:
    """How an entry of a document of several sources names its source."""

    id: str  # the source's id: /feeds/<id>/…, /sources/<id>
    name: str


# Source key (Statement.source: "" for the primary) -> its label. Given only to the
# documents of several sources: a deployment of one source names none.
Labels = Mapping[str, SourceLabel]


def label_of(labels: Labels, key: str) -> SourceLabel:
    """A statement's source label; a source gone from the settings keeps its key."""
    return labels.get(key) or SourceLabel(key or "main", key or "main")


def counter_source(key: str, labels: Collection[str]) -> str:
    """The source key of a stored counter: non-primary sources' counter keys end in
    ``#<source key>`` (``feeds.store.stored_id``), the primary's carry no mark."""
    head, mark, tail = key.rpartition("#")
    return tail if mark and head and tail in labels else ""


@dataclass(frozen=True)
class ArchiveLinks:
    """RFC 5005 links of one document: where the older and newer pages are."""

    prev_archive: str | None = None
    next_archive: str | None = None
    current: str | None = None
    is_archive: bool = False


# Position of a statement among the statements of its day, by store order (seq):
# 0 for the first one stored. A new statement always comes last, so a rank once
# given never changes, and it gives same-day statements distinct, stable instants.
Ranks = Mapping[int, int]
_NO_RANKS: Ranks = {}

_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def xml_text(text: str | None) -> str:
    """Text XML 1.0 (and UTF-8) can carry: controls and lone surrogates removed."""
    return _LONE_SURROGATES.sub("", strip_controls(text))


def day_start(day: dt.date) -> dt.datetime:
    """Midnight in London on ``day``: the instant a dated statement counts as published."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=LONDON)


def published_at(s: Statement, rank: int = 0) -> dt.datetime:
    """London midnight of its date plus ``rank`` seconds (the source gives days, not
    times; the seconds keep same-day statements apart in the page's order), else
    when feedbot first saw it."""
    if s.published is None:
        return s.first_seen
    start = day_start(s.published).astimezone(dt.UTC)  # UTC: seconds never cross a DST jump
    return (start + dt.timedelta(seconds=rank)).astimezone(LONDON)


def updated_at(s: Statement, rank: int = 0) -> dt.datetime:
    """Real ``updated``: the last edit, else when it was published."""
    published = published_at(s, rank)
    return max(s.edited_at, published) if s.edited_at else published


def newest_first(items: Sequence[Statement], ranks: Ranks = _NO_RANKS) -> list[Statement]:
    """Newest publication first; same-day statements in the page's order (the one
    stored last, i.e. higher on the page, first)."""
    return sorted(items, key=lambda s: (published_at(s, ranks.get(s.seq, 0)), s.seq), reverse=True)


def paragraphs_html(text: str) -> str:
    """Plain text as HTML paragraphs: every character stays text, none is markup."""
    return "".join(f"<p>{html.escape(p)}</p>" for p in xml_text(text).split("\n\n") if p.strip())


def content_html(s: Statement) -> str:
    return paragraphs_html(s.content or s.summary)


def title_text(s: Statement) -> str:
    return xml_text(s.title).strip() or "(untitled statement)"


def feed_updated(items: Sequence[Statement], ranks: Ranks = _NO_RANKS) -> dt.datetime:
    """When a document last changed: the newest first sighting or edit among its
    entries (so a backfill of old statements moves it too), EPOCH when empty."""
    return max(
        (max(s.first_seen, updated_at(s, ranks.get(s.seq, 0))) for s in items), default=EPOCH
    )


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


class _RssItemUpdated(BaseExtension):  # type: ignore[misc]
    """Adds ``<atom:updated>`` to an RSS item: RSS has no element that says an item
    was edited, and feedparser (like most readers) reads this one as ``updated``."""

    def __init__(self) -> None:
        self.value: dt.datetime | None = None

    def extend_rss(self, item: Any) -> Any:
        if self.value is not None:
            etree.SubElement(item, f"{{{ATOM_NS}}}updated").text = self.value.isoformat()
        return item


def _generator(
    ctx: FeedContext, self_url: str, updated: dt.datetime, title: str, subtitle: str
) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(xml_text(self_url))
    fg.title(xml_text(title).strip() or "feedbot")
    if subtitle:
        fg.subtitle(xml_text(subtitle))
    fg.author({"name": xml_text(ctx.author)})
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


def _name_source(fe: Any, ctx: FeedContext, label: SourceLabel) -> None:
    """An entry of several sources' document says whose it is: the source as the
    entry's author (what readers show) and as a category (RSS: its name)."""
    fe.author({"name": xml_text(label.name), "uri": ctx.url(f"/sources/{label.id}")})
    fe.category(term=label.id, label=xml_text(label.name), scheme=ctx.url("/sources/"))


def _add_statement(
    fg: FeedGenerator, s: Statement, rank: int, ctx: FeedContext, labels: Labels | None
) -> None:
    fe = fg.add_entry(order="append")
    fe.id(xml_text(s.id))
    fe.guid(xml_text(s.id), permalink=bool(s.url) and s.url == s.id)
    fe.title(title_text(s))
    if s.url:
        fe.link(href=xml_text(s.url), rel="alternate")
    fe.published(published_at(s, rank))
    fe.updated(updated_at(s, rank))
    lead = xml_text(s.summary).strip() or title_text(s)
    fe.summary(lead)  # Atom: plain text (type="text")
    # RSS <description> is HTML to every reader: escaped text in paragraphs, so
    # "step <sic>." stays text. Set after summary(), which would overwrite it.
    fe.description(paragraphs_html(lead))
    fe.content(content_html(s) or paragraphs_html(lead), type="html")
    fe.register_extension("rss_updated", _RssItemUpdated, atom=False, rss=True)
    fe.rss_updated.value = updated_at(s, rank)
    if labels is not None:
        _name_source(fe, ctx, label_of(labels, s.source))


def statements_atom(
    items: Sequence[Statement],
    ctx: FeedContext,
    path: str,
    links: ArchiveLinks | None = None,
    ranks: Ranks = _NO_RANKS,
    labels: Labels | None = None,
) -> bytes:
    """An Atom document of ``items`` in the order given (``newest_first`` orders them);
    with ``labels`` (several sources) each entry names its source."""
    fg = _generator(ctx, ctx.url(path), feed_updated(items, ranks), ctx.title, ctx.subtitle)
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
        _add_statement(fg, s, ranks.get(s.seq, 0), ctx, labels)
    return bytes(fg.atom_str(pretty=True))


def statements_rss(
    items: Sequence[Statement],
    ctx: FeedContext,
    path: str,
    ranks: Ranks = _NO_RANKS,
    labels: Labels | None = None,
) -> bytes:
    fg = _generator(ctx, ctx.url(path), feed_updated(items, ranks), ctx.title, ctx.subtitle)
    fg.description(xml_text(ctx.subtitle or ctx.title).strip() or "feedbot")
    for s in items:
        _add_statement(fg, s, ranks.get(s.seq, 0), ctx, labels)
    return bytes(fg.rss_str(pretty=True))


def _rfc3339(value: dt.datetime) -> str:
    return value.isoformat()


def _json_text(text: str) -> str:
    """JSON escapes controls itself; lone surrogates cannot be encoded as UTF-8."""
    return _LONE_SURROGATES.sub("", text)


def statements_json(
    items: Sequence[Statement],
    ctx: FeedContext,
    path: str,
    ranks: Ranks = _NO_RANKS,
    labels: Labels | None = None,
) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1)."""
    doc: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": _json_text(ctx.title),
        "home_page_url": ctx.url("/"),
        "feed_url": ctx.url(path),
        "language": "en",
        "authors": [{"name": _json_text(ctx.author)}],
        "items": [_json_item(s, ranks.get(s.seq, 0), ctx, labels) for s in items],
    }
    if ctx.subtitle:
        doc["description"] = _json_text(ctx.subtitle)
    if ctx.hub:
        doc["hubs"] = [{"type": "WebSub", "url": ctx.hub}]
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def _json_item(s: Statement, rank: int, ctx: FeedContext, labels: Labels | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": _json_text(s.id),
        **({"url": _json_text(url)} if (url := safe_link(s.url)) else {}),
        "title": _json_text(s.title),
        "summary": _json_text(s.summary),
        "content_html": content_html(s),
        "content_text": _json_text(s.content or s.summary),
        "date_published": _rfc3339(published_at(s, rank)),
        "date_modified": _rfc3339(updated_at(s, rank)),
    }
    if labels is not None:
        # JSON Feed 1.1: the source as the item's author and tag, and (an extension,
        # "_" by the spec's rule) its id for programs.
        label = label_of(labels, s.source)
        name = _json_text(label.name)
        item["authors"] = [{"name": name, "url": ctx.url(f"/sources/{label.id}")}]
        item["tags"] = [name]
        item["_feedbot"] = {"source": label.id}
    return item


def counter_line(counter: StoredCounter, day: dt.date) -> str:
    days = counter.days_on(day)
    unit = "day has" if days == 1 else "days have"
    line = f"{days} {unit} passed since {counter.subject}"
    return f"{line} - {counter.note}" if counter.note else line


def counters_atom(
    items: Sequence[StoredCounter],
    ctx: FeedContext,
    path: str,
    today: dt.date,
    days: int,
    labels: Labels | None = None,
) -> bytes:
    """One entry a day per counter, for the last ``days`` days up to ``today``; with
    ``labels`` (several sources) each entry names its source."""
    span = [today - dt.timedelta(days=n) for n in range(days)]
    entries = [(day, c) for day in span for c in items if day >= c.since]
    updated = day_start(entries[0][0]) if entries else EPOCH
    fg = _generator(ctx, ctx.url(path), updated, f"{ctx.title}: day counters", COUNTERS_SUBTITLE)
    for day, c in entries:
        key = hashlib.sha256(c.key.encode()).hexdigest()[:12]
        fe = fg.add_entry(order="append")
        fe.id(f"tag:feedbot.invalid,2020:counter/{key}/{day.isoformat()}")
        fe.title(xml_text(f"{counter_line(c, day).split(' - ')[0]} ({day.isoformat()})"))
        fe.published(day_start(day))
        fe.updated(day_start(day))
        fe.content(xml_text(counter_line(c, day)), type="text")
        fe.link(href=ctx.url("/"), rel="alternate")
        if labels is not None:
            _name_source(fe, ctx, label_of(labels, counter_source(c.key, labels)))
    return bytes(fg.atom_str(pretty=True))
