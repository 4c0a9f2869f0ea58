"""Reading a statement page with a source profile: a pure function of bytes.

``parse_page`` reads the home page (or an archive page), ``parse_article`` a
statement's own page. Both take the raw body, the URL it came from (to make
links absolute) and the profile; they never fetch and never touch the store.

A page that yields no statement is a ParseError: a layout change must be loud,
never an empty feed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any, TypeAlias
from urllib.parse import urldefrag, urljoin

import lxml.html
from lxml import etree

from feeds.encoding import decode
from feeds.errors import ParseError
from feeds.ids import statement_id
from feeds.model import Article, Counter, Entry, Page
from feeds.profile import ListProfile, Selector, SourceProfile
from feeds.text import clean, clean_paragraphs, fold, shorten

HtmlElement: TypeAlias = Any  # lxml.html.HtmlElement; lxml ships no type information

_LOOKS_HTML = re.compile(rb"<\s*(!doctype|html|head|body|div|p|ul|li|a|span|article|main)\b", re.I)
_PARAGRAPH_TAGS = ("p", "li", "h2", "h3", "h4", "blockquote", "pre")
_COLUMN_GAP = re.compile(r"\s{2,}")


def looks_like_html(body: bytes, content_type: str | None = None) -> bool:
    if content_type and "text/plain" in content_type.lower():
        return False
    return bool(_LOOKS_HTML.search(body[:65536]))


def parse_date(text: str, formats: Iterable[str]) -> dt.date | None:
    """The first format that reads the whole (cleaned) text wins; None if none does."""
    value = clean(text)
    for fmt in formats:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


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


def _document(body: bytes, content_type: str | None) -> HtmlElement:
    text = decode(body, content_type)
    # lxml refuses str input that carries an XML encoding declaration.
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(f"the page is not readable HTML: {exc}") from None


def _first(root: HtmlElement, selector: Selector) -> HtmlElement | None:
    if selector is None:
        return None
    found = selector(root)
    return found[0] if found else None


def _text(element: HtmlElement | None) -> str:
    return clean(element.text_content()) if element is not None else ""


def _href(element: HtmlElement | None, base_url: str) -> str | None:
    if element is None:
        return None
    if not element.get("href"):
        links = element.xpath(".//a[@href]")
        if not links:
            return None
        element = links[0]
    href = str(element.get("href") or "").strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "tel:")):
        return None
    return urljoin(base_url, href)


def _paragraphs(element: HtmlElement) -> str:
    """Block text of an element: one paragraph per <p>/<li>/… or the whole text."""
    blocks = [b for b in element.iter(*_PARAGRAPH_TAGS) if b is not element]
    # Outermost blocks only, so a <p> inside an <li> is not read twice.
    inner = {id(d) for b in blocks for d in b.iterdescendants(*_PARAGRAPH_TAGS)}
    blocks = [b for b in blocks if id(b) not in inner]
    if not blocks:
        return clean(element.text_content())
    return clean_paragraphs([b.text_content() for b in blocks])


def _entry(
    profile: SourceProfile,
    title: str,
    published: dt.date | None,
    summary: str,
    url: str | None,
    featured: bool = False,
    content: str | None = None,
) -> Entry:
    url = urldefrag(url).url if url else None
    return Entry(
        id=statement_id(url, published, fold(title)),
        title=title,
        published=published,
        summary=summary,
        url=url,
        featured=featured,
        content=content,
    )


def _featured_entry(
    text: str, title: str, url: str | None, published: dt.date | None, profile: SourceProfile
) -> Entry:
    return _entry(
        profile,
        title,
        published,
        shorten(text, profile.summary_chars) if text else title,
        url,
        featured=True,
        content=text or None,
    )


def _list_entries(
    root: HtmlElement, lp: ListProfile, base_url: str, profile: SourceProfile
) -> list[Entry]:
    entries = []
    for item in lp.item(root):
        title = _text(_first(item, lp.title))
        if not title:
            continue
        date_el = _first(item, lp.date)
        lead_el = _first(item, lp.lead)
        lead = _paragraphs(lead_el).replace("\n\n", " ") if lead_el is not None else ""
        url = _href(_first(item, lp.link) if lp.link else _first(item, lp.title), base_url)
        published = (
            parse_date(_text(date_el), profile.date_formats) if date_el is not None else None
        )
        entries.append(_entry(profile, title, published, lead, url))
    return entries


def _merge_duplicates(entries: list[Entry]) -> list[Entry]:
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


def _parse_html(body: bytes, base_url: str, profile: SourceProfile, ctype: str | None) -> Page:
    root = _document(body, ctype)
    as_of = parse_date(_text(_first(root, profile.as_of)), profile.as_of_formats)
    counters: list[Counter] = []
    if profile.counters is not None:
        for element in profile.counters(root):
            counter = parse_counter(element.text_content(), profile, as_of)
            if counter is not None:
                counters.append(counter)
    entries: list[Entry] = []
    fp = profile.featured
    if fp is not None:
        for block in fp.block(root):
            title = _text(_first(block, fp.title))
            if not title:
                continue
            text_el = _first(block, fp.text)
            date_el = _first(block, fp.date)
            entries.append(
                _featured_entry(
                    _paragraphs(text_el) if text_el is not None else "",
                    title,
                    _href(_first(block, fp.link) if fp.link else _first(block, fp.title), base_url),
                    parse_date(_text(date_el), profile.date_formats)
                    if date_el is not None
                    else None,
                    profile,
                )
            )
    entries += _list_entries(root, profile.list, base_url, profile)
    if profile.archive_list is not None and profile.archive_list.item != profile.list.item:
        entries += _list_entries(root, profile.archive_list, base_url, profile)
    next_url = _href(_first(root, profile.next_page), base_url)
    return Page(
        as_of=as_of, counters=counters, entries=_merge_duplicates(entries), next_url=next_url
    )


def _parse_text(body: bytes, profile: SourceProfile) -> Page:
    """A plain-text capture: header lines, counters, the featured statement, then
    ``DD.MM.YYYY - Title`` lines each followed by its lead."""
    lines = decode(body, "text/plain").splitlines()
    tp = profile.text
    starts = [i for i, line in enumerate(lines) if tp.entry.match(clean(line))]
    first = starts[0] if starts else len(lines)

    as_of = None
    for line in lines[:first]:
        if clean(line):
            as_of = parse_date(line, profile.as_of_formats)
            if as_of:
                break
    counters: list[Counter] = []
    last_counter_line = -1
    for i, line in enumerate(lines[:first]):
        # A capture lays several header counters out on one line, in columns.
        for segment in _COLUMN_GAP.split(line):
            counter = parse_counter(segment, profile, as_of) if segment.strip() else None
            if counter is not None:
                counters.append(counter)
                last_counter_line = i

    entries: list[Entry] = []
    if tp.featured and last_counter_line >= 0:
        block = [clean(line) for line in lines[last_counter_line + 1 : first]]
        paragraphs = [p for p in block if p]
        if paragraphs:
            entries.append(
                _featured_entry(
                    clean_paragraphs(paragraphs[1:]), paragraphs[0], None, None, profile
                )
            )
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(lines)
        match = tp.entry.match(clean(lines[start]))
        assert match is not None
        lead_lines = []
        for line in lines[start + 1 : stop]:
            if tp.end is not None and tp.end.match(clean(line)):
                break
            lead_lines.append(line)
        entries.append(
            _entry(
                profile,
                clean(match.group("title")),
                parse_date(match.group("date"), profile.date_formats),
                clean(" ".join(lead_lines)),
                None,
            )
        )
    return Page(as_of=as_of, counters=counters, entries=_merge_duplicates(entries))


def parse_page(
    body: bytes, base_url: str, profile: SourceProfile, content_type: str | None = None
) -> Page:
    """Everything the profile reads out of a page; ParseError if it finds no statement."""
    if looks_like_html(body, content_type):
        page = _parse_html(body, base_url, profile, content_type)
    else:
        page = _parse_text(body, profile)
    if not page.entries:
        raise ParseError(
            f"profile {profile.name!r} found no statements on the page "
            f"({len(page.counters)} counters) — has the site's layout changed?"
        )
    return page


def parse_article(
    body: bytes, base_url: str, profile: SourceProfile, content_type: str | None = None
) -> Article:
    """A statement's own page: its full text (paragraphs separated by blank lines)."""
    root = _document(body, content_type)
    ap = profile.article
    text_el = _first(root, ap.text)
    if text_el is None:
        raise ParseError(f"profile {profile.name!r} found no article text on {base_url}")
    date_el = _first(root, ap.date)
    content = _paragraphs(text_el)
    if not content:
        raise ParseError(f"the article text on {base_url} is empty")
    return Article(
        title=_text(_first(root, ap.title)) or None,
        published=parse_date(_text(date_el), profile.date_formats) if date_el is not None else None,
        content=content,
    )
