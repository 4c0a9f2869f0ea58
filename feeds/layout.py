"""An HTML page as a browser lays it out, read without knowing its markup.

``layout_lines`` turns a parsed document into the lines a reader sees: block
elements and ``<br>`` break lines, table cells sit side by side separated by a
tab, runs of ordinary whitespace fold into one space while non-breaking spaces
stay (a page that lines things up with ``&nbsp;`` keeps its columns).

``LinkIndex`` finds a statement's link by its title: the page's anchors on the
page's own host, keyed by the title folded (case, spacing, punctuation).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, TypeAlias
from urllib.parse import urldefrag, urljoin, urlsplit

from feeds.text import fold

HtmlElement: TypeAlias = Any  # lxml.html.HtmlElement; lxml ships no type information

# What a browser shows on a line of its own (CSS display: block, list-item, table-row…).
BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "frameset",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    ]
)
CELL_TAGS = frozenset({"td", "th"})
# Never shown: their text is not part of the page a reader sees.
HIDDEN_TAGS = frozenset(
    [
        "head",
        "title",
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "object",
        "embed",
        "svg",
        "canvas",
        "select",
    ]
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
# HTML collapses these; U+00A0 is not among them.
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_NEWLINE = "\n"
_CELL = "\t"


def _hidden(element: HtmlElement) -> bool:
    return (
        element.get("hidden") is not None
        or element.get("aria-hidden") == "true"
        or bool(_HIDDEN_STYLE.search(element.get("style") or ""))
    )


def _walk(element: HtmlElement, out: list[str]) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in HIDDEN_TAGS or (tag and _hidden(element)):
        pass
    elif not tag:
        pass  # a comment or processing instruction: only its tail is shown
    elif tag == "br":
        out.append(_NEWLINE)
    else:
        block = tag in BLOCK_TAGS
        if block:
            out.append(_NEWLINE)
        elif tag in CELL_TAGS:
            out.append(_CELL)
        if element.text:
            out.append(_HTML_SPACE.sub(" ", element.text))
        for child in element:
            _walk(child, out)
        if block:
            out.append(_NEWLINE)
        elif tag in CELL_TAGS:
            out.append(_CELL)
    if element.tail:
        out.append(_HTML_SPACE.sub(" ", element.tail))


def layout_lines(root: HtmlElement) -> list[str]:
    """The page's visible text, one string per laid-out line (blank lines dropped)."""
    out: list[str] = []
    _walk(root, out)
    lines = []
    for line in "".join(out).split(_NEWLINE):
        # Spaces around a cell boundary belong to no cell; repeated boundaries are one.
        line = re.sub(r" *\t[\t ]*", _CELL, line).strip(" \t")
        if line:
            lines.append(line)
    return lines


def link_key(text: str) -> str:
    """The form a title and its anchor share: case, spacing and punctuation folded."""
    folded = fold(text)
    kept = "".join(
        ch if not unicodedata.category(ch).startswith(("P", "S")) else " " for ch in folded
    )
    return " ".join(kept.split())


class LinkIndex:
    """The page's own links, found by the text they carry."""

    def __init__(self, root: HtmlElement, base_url: str) -> None:
        self.base_url = base_url
        host = urlsplit(base_url).hostname
        self._by_key: dict[str, list[str]] = {}
        self.foreign = 0  # anchors to other hosts: never used as a statement's link
        for anchor in root.iter("a"):
            href = str(anchor.get("href") or "").strip()
            if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
                continue
            url = urldefrag(urljoin(base_url, href)).url
            if urlsplit(url).hostname != host:
                self.foreign += 1
                continue
            key = link_key(anchor.text_content())
            if key:
                self._by_key.setdefault(key, []).append(url)

    def __len__(self) -> int:
        return len(self._by_key)

    def url_for(self, title: str) -> str | None:
        """The page's link whose text is ``title`` (folded), or None. Asked again for
        the same title, the next such link in page order (two statements of one
        title); the last one stays for every later ask (a statement shown twice)."""
        urls = self._by_key.get(link_key(title))
        if not urls:
            return None
        return urls.pop(0) if len(urls) > 1 else urls[0]

    def is_link_text(self, line: str) -> bool:
        return link_key(line) in self._by_key
