"""Finding the way through a site's archive lists: pure functions of a page's bytes.

The source's archive is a set of lists paged by an item offset
(``/apress_arh/&start=11&ps=10&ppp=15``) with a pager line
``Pages: ««« :: 1 2 3 … :: »»»``. The markup around the pager is not known, so
it is found by its text (the profile's ``pager`` pattern) and every link in it
that carries an offset is a page of the list: the next page is the one with
the smallest offset past the current page's — a numbered link, or the »»» link
to the next block of numbers. Nothing here fetches or stores.
"""

from __future__ import annotations

import re
from typing import Any, TypeAlias
from urllib.parse import urljoin

import lxml.html
from lxml import etree

from feeds.encoding import decode
from feeds.parse import looks_like_html
from feeds.text import clean

HtmlElement: TypeAlias = Any  # lxml ships no type information

# How far above the "Pages:" text its links may sit (text in a <span>, links beside it).
_PAGER_LEVELS = 3


def _document(body: bytes, content_type: str | None) -> HtmlElement | None:
    if not looks_like_html(body, content_type):
        return None  # a plain-text capture has no links to follow
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", decode(body, content_type))
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def _link(anchor: HtmlElement, base_url: str) -> str | None:
    href = str(anchor.get("href") or "").strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "tel:")):
        return None
    return urljoin(base_url, href)


def _offset_pattern(param: str) -> re.Pattern[str]:
    # The site puts its parameters in the path (``/apress_arh/&start=11``), so no
    # query-string parser: the parameter is found after any ``?``, ``&``, ``;`` or ``/``.
    return re.compile(rf"(?<=[?&;/])({re.escape(param)}=)(\d+)")


def offset_of(url: str, param: str) -> int | None:
    """The item offset a list page's URL carries (``start=11`` → 11), or None."""
    match = _offset_pattern(param).search(url)
    return int(match.group(2)) if match else None


def with_offset(url: str, param: str, offset: int) -> str:
    """The same list page's URL at another offset (its other parameters kept)."""
    return _offset_pattern(param).sub(lambda m: f"{m.group(1)}{offset}", url, count=1)


def all_messages_link(
    body: bytes, base_url: str, text: re.Pattern[str], content_type: str | None = None
) -> str | None:
    """The absolute URL of the first link whose text matches ``text`` ("all messages")."""
    root = _document(body, content_type)
    if root is None:
        return None
    for anchor in root.iter("a"):
        if text.search(clean(anchor.text_content())):
            url = _link(anchor, base_url)
            if url:
                return url
    return None


def pager_links(
    body: bytes,
    base_url: str,
    pager: re.Pattern[str],
    param: str,
    content_type: str | None = None,
) -> list[tuple[int, str]] | None:
    """The pager's pages as (offset, absolute URL), in page order; None when the
    page has no pager line, [] when it has one that links nowhere (a single page)."""
    root = _document(body, content_type)
    if root is None:
        return None
    for node in root.xpath("//text()"):
        if not pager.search(clean(str(node))):
            continue
        box = node.getparent()
        if box is not None and node.is_tail:
            box = box.getparent()
        for _level in range(_PAGER_LEVELS):
            if box is None:
                break
            links = _offset_links(box, base_url, param)
            if links:
                return links
            box = box.getparent()
        return []
    return None


def _offset_links(box: HtmlElement, base_url: str, param: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for anchor in box.iter("a"):
        url = _link(anchor, base_url)
        offset = offset_of(url, param) if url else None
        if url and offset is not None:
            found.append((offset, url))
    return found


def next_in_pager(links: list[tuple[int, str]], current: int) -> str | None:
    """The pager's next page after offset ``current``; None when it shows none further."""
    later = [(offset, url) for offset, url in links if offset > current]
    return min(later)[1] if later else None
