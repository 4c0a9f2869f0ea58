"""Reading a statement page with a source profile: a pure function of bytes.

``parse_page`` reads the home page, an archive page or one statement's page,
``parse_article`` a statement's own page for its full text. Both take the raw
body, the URL it came from (to make links absolute) and the profile; they never
fetch and never touch the store.

Three readers, tried in turn:

1. ``selectors`` — the profile's CSS selectors (fast, exact, tied to markup);
2. ``text-layout`` — when the selectors find no statement, or clearly fewer than
   the page shows (under half its visible dated items), the HTML is laid out as
   text the way a browser shows it and read with the profile's text rules;
   links are found by title among the page's own anchors;
3. ``plain-text`` — a text capture is read with the same text rules.

A page that yields no statement is a ParseError: never an empty feed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any, TypeAlias
from urllib.parse import urljoin

import lxml.html
from lxml import etree

from feeds.clock import LONDON
from feeds.encoding import decode
from feeds.entries import (
    counter_texts,
    find_date,
    make_entry,
    merge_duplicates,
    parse_counter,
    parse_date,
    with_text,
)
from feeds.errors import ParseError
from feeds.layout import BLOCK_TAGS, CELL_TAGS, HIDDEN_TAGS, LinkIndex, layout_lines
from feeds.model import Article, Counter, Entry, Page
from feeds.profile import ListProfile, Selector, SourceProfile
from feeds.text import clean, clean_lined_paragraphs, shorten
from feeds.textpage import count_dated_lines, read_lines

__all__ = ["explain_page", "looks_like_html", "parse_article", "parse_counter", "parse_date"]
__all__ += ["headline", "parse_page"]

HtmlElement: TypeAlias = Any  # lxml.html.HtmlElement; lxml ships no type information

_LOOKS_HTML = re.compile(rb"<\s*(!doctype|html|head|body|div|p|ul|li|a|span|article|main)\b", re.I)


def looks_like_html(body: bytes, content_type: str | None = None) -> bool:
    if content_type and "text/plain" in content_type.lower():
        return False
    return bool(_LOOKS_HTML.search(body[:65536]))


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


class _Lines:
    """An element's visible text gathered as a browser breaks it: a block element or
    two ``<br>`` in a row end a paragraph, one ``<br>`` ends a line. The text stays
    raw (spaces as written) for the caller to clean or to split at wide gaps."""

    def __init__(self) -> None:
        self.paragraphs: list[list[str]] = []
        self._lines: list[str] = []
        self._chunks: list[str] = []
        self._breaks = 0  # <br>s since the last visible text

    def text(self, chunk: str) -> None:
        # A space or a zero-width mark between two <br>s is no text.
        if self._breaks and clean(chunk):
            self._breaks = 0
        self._chunks.append(chunk)

    def line_break(self) -> None:
        self._lines.append("".join(self._chunks))
        self._chunks = []
        self._breaks += 1
        if self._breaks >= 2:
            self.paragraph_break()

    def paragraph_break(self) -> None:
        self._lines.append("".join(self._chunks))
        self._chunks = []
        kept = [line for line in self._lines if line.strip()]
        if kept:
            self.paragraphs.append(kept)
        self._lines = []
        self._breaks = 0


def _gather(element: HtmlElement, out: _Lines, top: bool = False) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if not tag or (tag in HIDDEN_TAGS and not top):
        # A comment, a script, a style: only the tail is shown. Text hidden by a style
        # is kept: in an element the profile names, a collapsed "read more" part is
        # still the statement's text.
        pass
    elif tag == "br":
        out.line_break()
    else:
        block = tag in BLOCK_TAGS and not top
        gap = " " if tag in CELL_TAGS else ""  # cells side by side: at least a space
        if block:
            out.paragraph_break()
        out.text(gap + (element.text or ""))
        for child in element:
            _gather(child, out)
        if block:
            out.paragraph_break()
        out.text(gap)
    if element.tail and not top:
        out.text(element.tail)


def _line_paragraphs(element: HtmlElement) -> list[list[str]]:
    """The element's text as paragraphs of raw lines."""
    out = _Lines()
    _gather(element, out, top=True)
    out.paragraph_break()
    return out.paragraphs


def _paragraphs(element: HtmlElement) -> str:
    """Block text of an element: paragraphs apart by a blank line (blocks, a double
    ``<br>``), lines within one by a newline (a single ``<br>``)."""
    return clean_lined_paragraphs(_line_paragraphs(element))


def _counters(root: HtmlElement, profile: SourceProfile, as_of: dt.date | None) -> list[Counter]:
    """Every counter the counter elements show: one element may show several, on
    lines of their own or apart by a wide gap on one line (as the real site does)."""
    counters: list[Counter] = []
    if profile.counters is None:
        return counters
    for element in profile.counters(root):
        lines = [line for paragraph in _line_paragraphs(element) for line in paragraph]
        for text in counter_texts(lines, profile):
            counter = parse_counter(text, profile, as_of)
            if counter is not None:
                counters.append(counter)
    return counters


def _date_in(
    element: HtmlElement | None, pattern: re.Pattern[str] | None, formats: tuple[str, ...]
) -> dt.date | None:
    """The date an element shows: its whole text, or the pattern's ``date`` group in it."""
    if element is None:
        return None
    if pattern is None:
        return parse_date(_text(element), formats)
    return find_date(_text(element), pattern, formats)


TITLE_CHARS = 120  # a title made from a text's first line is cut to this


def headline(text: str, limit: int = TITLE_CHARS) -> str:
    """A title for a text that has none: its first line; when that is long, its
    first sentence, else the line cut at a word."""
    line = next((c for c in (clean(x) for x in text.splitlines()) if c), "")
    if len(line) <= limit:
        return line
    sentence = re.match(r"(.{20,}?[.!?…])\s", line)
    if sentence and len(sentence.group(1)) <= limit:
        return sentence.group(1)
    return shorten(line, limit)


def _attribute_date(
    element: HtmlElement | None, attribute: str, formats: tuple[str, ...]
) -> dt.date | None:
    """The date an attribute holds (``<time datetime>``): ISO 8601, an instant taken
    as its London day; else the profile's formats."""
    value = clean(str(element.get(attribute) or "")) if element is not None else ""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return parse_date(value, formats) if value else None
    try:
        return moment.astimezone(LONDON).date() if moment.tzinfo else moment.date()
    except OverflowError:  # an instant at the edge of the calendar
        return None


def _list_entries(
    root: HtmlElement, lp: ListProfile, base_url: str, profile: SourceProfile
) -> list[Entry]:
    entries = []
    for item in lp.item(root):
        title_el = _first(item, lp.title)
        if lp.title_first_line and title_el is not None:
            title = headline(_paragraphs(title_el))
        else:
            title = _text(title_el)
        if not title:
            continue
        date_el = _first(item, lp.date)
        if date_el is None and lp.date_pattern is not None:
            date_el = item  # "24.06.2020 - <a>Title</a>": the date is the item's own text
        lead_el = _first(item, lp.lead)
        lead = clean(_paragraphs(lead_el)) if lead_el is not None else ""
        url = _href(_first(item, lp.link) if lp.link else _first(item, lp.title), base_url)
        if lp.date_attribute:
            published = _attribute_date(date_el, lp.date_attribute, profile.date_formats)
        else:
            published = _date_in(date_el, lp.date_pattern, profile.date_formats)
        if lp.title_first_line:  # the text is the whole post: its full text, the lead cut from it
            text = _paragraphs(lead_el) if lead_el is not None else ""
            rest = text.removeprefix(title)  # the title once, not again as the lead's start
            lead = shorten(rest, profile.summary_chars) or title
            entries.append(make_entry(title, published, lead, url, content=text or None))
            continue
        entries.append(make_entry(title, published, lead, url))
    return entries[::-1] if lp.newest_last else entries


def _parse_html(root: HtmlElement, base_url: str, profile: SourceProfile) -> Page:
    as_of = _date_in(_first(root, profile.as_of), profile.as_of_pattern, profile.as_of_formats)
    counters = _counters(root, profile, as_of)
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
                with_text(
                    title,
                    _paragraphs(text_el) if text_el is not None else "",
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
        as_of=as_of, counters=counters, entries=merge_duplicates(entries), next_url=next_url
    )


def _read_html(body: bytes, base_url: str, profile: SourceProfile, ctype: str | None) -> Page:
    root = _document(body, ctype)
    page = _parse_html(root, base_url, profile)
    notes = [f"selectors: {len(page.entries)} statements, {len(page.counters)} counters"]
    lines = layout_lines(root)
    visible = count_dated_lines(lines, profile)
    if page.entries and len(page.entries) * 2 >= visible:
        return replace(page, notes=notes)
    if not page.entries:
        article = _selected_article(root, base_url, profile)
        if article is not None:
            notes.append("no list; the article selectors read one statement's page")
            return replace(article, notes=notes)
    notes.append(
        f"the page shows {visible} dated items: reading it as laid-out text"
        if page.entries
        else "no statement found by the selectors: reading the page as laid-out text"
    )
    links = LinkIndex(root, base_url)
    from_text = read_lines(lines, profile, links.url_for, base_url, reader="text-layout")
    if from_text is None or len(from_text.entries) <= len(page.entries):
        notes.append("the text rules found no more statements than the selectors")
        return replace(page, notes=notes)
    if links.foreign:
        notes.append(f"{links.foreign} links to other hosts not used")
    return replace(
        from_text,
        as_of=from_text.as_of or page.as_of,
        counters=from_text.counters or page.counters,
        next_url=page.next_url,
        notes=notes + from_text.notes,
    )


def _selected_article(root: HtmlElement, base_url: str, profile: SourceProfile) -> Page | None:
    """One statement's page, read with the profile's article selectors."""
    ap = profile.article
    text_el = _first(root, ap.text)
    title = _text(_first(root, ap.title))
    if text_el is None or not title:
        return None
    date_el = _first(root, ap.date)
    published = parse_date(_text(date_el), profile.date_formats) if date_el is not None else None
    entry = with_text(title, _paragraphs(text_el), base_url, published, profile, featured=False)
    return Page(as_of=None, entries=[entry], kind="statement")


def explain_page(
    body: bytes, base_url: str, profile: SourceProfile, content_type: str | None = None
) -> tuple[Page, list[str]]:
    """The page and why it was read as it was (one short line each), for
    ``feedbot parse --explain``; ParseError when no reader finds a statement."""
    if looks_like_html(body, content_type):
        page = _read_html(body, base_url, profile, content_type)
    else:
        lines = decode(body, "text/plain").splitlines()
        page = read_lines(lines, profile, reader="plain-text") or Page(as_of=None)
        page = replace(page, notes=["plain text: read with the text rules", *page.notes])
    if not page.entries:
        raise ParseError(
            f"profile {profile.name!r} found no statements on the page: neither a list of "
            f"dated statements nor one statement's page ({len(page.counters)} counters) "
            "— has the site's layout changed?"
        )
    return page, list(page.notes)


def parse_page(
    body: bytes, base_url: str, profile: SourceProfile, content_type: str | None = None
) -> Page:
    """Everything the profile reads out of a page; ParseError if it finds no statement.
    ``Page.kind`` says what the page is, ``Page.reader`` how it was read."""
    return explain_page(body, base_url, profile, content_type)[0]


def parse_article(
    body: bytes, base_url: str, profile: SourceProfile, content_type: str | None = None
) -> Article:
    """A statement's own page: its full text (paragraphs separated by blank lines).
    Read with the article selectors, else as laid-out text (date line, title, text)."""
    root = _document(body, content_type)
    ap = profile.article
    text_el = _first(root, ap.text)
    if text_el is None:
        page = read_lines(layout_lines(root), profile, page_url=base_url, reader="text-layout")
        if page is None or page.kind != "statement" or not page.entries[0].content:
            raise ParseError(f"profile {profile.name!r} found no article text on {base_url}")
        entry = page.entries[0]
        assert entry.content is not None
        return Article(title=entry.title, published=entry.published, content=entry.content)
    date_el = _first(root, ap.date)
    content = _paragraphs(text_el)
    if not content:
        raise ParseError(f"the article text on {base_url} is empty")
    return Article(
        title=_text(_first(root, ap.title)) or None,
        published=parse_date(_text(date_el), profile.date_formats) if date_el is not None else None,
        content=content,
    )
