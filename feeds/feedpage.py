"""Reading a source that already publishes a feed: a pure function of bytes.

``parse_feed`` reads Atom 1.0 and RSS 2.0 (with feedparser) and JSON Feed 1.x
(with the standard json module: feedparser does not read it) into the same
``Page`` of ``Entry`` that ``parse_page`` makes of an HTML page, so the store,
feeds and bot treat a feed's entries exactly like a page's statements: same id
rule, same link safety, plain text, London dates.

It never fetches: the body is handed to feedparser as a stream, because given
bytes or a string feedparser may take them for a file name or a URL and open it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.html
from lxml import etree

from feeds.clock import LONDON
from feeds.entries import make_entry, merge_duplicates
from feeds.errors import NotAFeed, ParseError
from feeds.layout import layout_lines
from feeds.model import Entry, Page
from feeds.parse import headline, looks_like_html
from feeds.text import clean, clean_paragraphs, shorten, strip_controls

__all__ = ["parse_feed"]

READER = "feed"
SUMMARY_CHARS = 500  # as the page profiles' default: a summary is a lead, not the text
JSON_FEED_VERSION = "https://jsonfeed.org/version/"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_BOM = b"\xef\xbb\xbf"
# lxml refuses lone surrogates; XML cannot carry the controls strip_controls drops.
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")
_FORMATS = {"atom10": "Atom feed", "rss20": "RSS feed"}  # feedparser's names, as people say them
_BLANK_LINE = re.compile(r"\n\s*\n")


def parse_feed(
    body: bytes,
    base_url: str,
    content_type: str | None = None,
    summary_chars: int = SUMMARY_CHARS,
) -> Page:
    """The entries of an Atom, RSS or JSON feed, in the feed's order, as a list page
    (``kind="list"``, ``reader="feed"``). Relative links resolve against ``base_url``.

    ParseError, one line naming ``base_url``: an HTML page, a feed that cannot be
    read, or one that holds no entry (an empty feed is as loud as an empty page)."""
    if _is_json(body, content_type):
        entries, what = _json_feed(body, base_url, summary_chars), "JSON Feed"
    else:
        entries, what = _xml_feed(body, base_url, content_type, summary_chars)
    if not entries:
        raise ParseError(f"{base_url}: the {what} holds no entries")
    return Page(
        as_of=None,
        entries=merge_duplicates(entries),
        kind="list",
        reader=READER,
        notes=[f"feed: {what}, {len(entries)} entries"],
    )


# --- Atom and RSS ----------------------------------------------------------------------


def _xml_feed(
    body: bytes, base_url: str, content_type: str | None, summary_chars: int
) -> tuple[list[Entry], str]:
    headers = {"content-location": base_url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    version = str(parsed.get("version") or "")
    if not version and _is_html(body, content_type):
        raise NotAFeed(f"{base_url} answers an HTML page, not a feed: is the URL a feed's?")
    entries = [
        entry
        for item in parsed.entries
        if (entry := _xml_entry(item, base_url, summary_chars)) is not None
    ]
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    # A missing or odd content type is no fault of the document.
    if isinstance(problem, feedparser.ThingsNobodyCaresAboutButMe):
        problem = None
    if not entries and (problem is not None or not version):
        reason = _one_line(str(problem)) if problem is not None else "no Atom or RSS document in it"
        raise ParseError(f"{base_url} is not a readable feed: {reason}")
    return entries, _FORMATS.get(version, f"{version} feed" if version else "feed")


def _xml_entry(item: Mapping[str, Any], base_url: str, summary_chars: int) -> Entry | None:
    content, content_type = "", None
    for part in item.get("content") or ():
        content_type = part.get("type")
        content = _text_of(part.get("value"), content_type, paragraphs=True)
        if content:
            break
    # feedparser fills ``summary`` from the content when the feed has none.
    summary_type = (item.get("summary_detail") or {}).get("type") or content_type
    summary = _text_of(item.get("summary"), summary_type or "text/html", paragraphs=True)
    title_type = (item.get("title_detail") or {}).get("type")
    return _entry(
        title=_text_of(item.get("title"), title_type or "text/plain"),
        published=_struct_day(item.get("published_parsed") or item.get("updated_parsed")),
        summary=summary,
        url=item.get("link"),
        content=content,
        base_url=base_url,
        summary_chars=summary_chars,
    )


def _struct_day(value: time.struct_time | None) -> dt.date | None:
    """feedparser's UTC time as a London date."""
    if value is None:
        return None
    try:
        moment = dt.datetime(*value[:5], min(value[5], 59), tzinfo=dt.UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    return _london_day(moment)


# --- JSON Feed -------------------------------------------------------------------------


def _is_json(body: bytes, content_type: str | None) -> bool:
    if content_type and "json" in content_type.lower():
        return True
    return body.removeprefix(_BOM).lstrip().startswith(b"{")


def _json_feed(body: bytes, base_url: str, summary_chars: int) -> list[Entry]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ParseError(f"{base_url} is not a readable feed: {_one_line(str(exc))}") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith(JSON_FEED_VERSION):
        raise ParseError(
            f"{base_url} answers JSON that is not a JSON Feed (no jsonfeed.org version)"
        )
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError(f"{base_url} is not a readable feed: the JSON Feed has no items list")
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        # JSON Feed's title and summary are plain text; content comes as HTML or text.
        content = _text_of(_string(item, "content_html"), "text/html", paragraphs=True)
        content = content or _text_of(_string(item, "content_text"), "text/plain", paragraphs=True)
        entry = _entry(
            title=clean(_string(item, "title")),
            published=_iso_day(_string(item, "date_published") or _string(item, "date_modified")),
            summary=clean(_string(item, "summary")),
            url=_string(item, "url") or _string(item, "external_url"),
            content=content,
            base_url=base_url,
            summary_chars=summary_chars,
        )
        if entry is not None:
            entries.append(entry)
    return entries


def _string(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else ""


def _iso_day(value: str) -> dt.date | None:
    """An RFC 3339 date-time as a London date (one without an offset is taken as UTC)."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return _london_day(moment)


# --- shared ----------------------------------------------------------------------------


def _entry(
    *,
    title: str,
    published: dt.date | None,
    summary: str,
    url: str | None,
    content: str,
    base_url: str,
    summary_chars: int,
) -> Entry | None:
    """A statement, or None for an item with neither title nor text. An item without a
    title (RSS allows it) is titled by its text's first line."""
    title = title or headline(content or summary)
    if not title:
        return None
    lead = summary or content
    return make_entry(
        title,
        published,
        shorten(lead, summary_chars) if lead else "",
        urljoin(base_url, url.strip()) if url and url.strip() else None,
        content=content or None,
    )


def _text_of(value: object, media_type: str | None, paragraphs: bool = False) -> str:
    """Plain text of a feed's text construct: HTML laid out as a browser shows it,
    entities decoded; paragraphs apart by a blank line, or all on one line."""
    if not isinstance(value, str) or not value:
        return ""
    value = _LONE_SURROGATES.sub("", strip_controls(value))
    if "html" in (media_type or "text/html"):
        lines = _html_lines(value)
    else:
        lines = _BLANK_LINE.split(value)
    return clean_paragraphs(lines) if paragraphs else clean(" ".join(lines))


def _html_lines(markup: str) -> list[str]:
    if not markup.strip():
        return []
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (etree.ParserError, ValueError):
        return [markup]
    return layout_lines(root)


def _is_html(body: bytes, content_type: str | None) -> bool:
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime in _HTML_TYPES or looks_like_html(body, content_type)


def _london_day(moment: dt.datetime) -> dt.date | None:
    try:
        return moment.astimezone(LONDON).date()
    except (OverflowError, ValueError):
        return None


def _one_line(text: str) -> str:
    return clean(text)[:200] or "unreadable"
