"""Writing a source profile for a page feedbot has never seen.

``suggest_profile(body, url)`` looks at one statement page and returns a
commented TOML profile (like ``config/sources/embassy-uk.toml``) together with
what that profile, loaded back exactly as an operator would save it, reads out
of the same page. It is a pure function of the bytes: it never fetches.

How it reads a page:

1. Dates. An element is a *date element* when its whole text (cleaned) is a
   date in one of ``DATE_FORMATS``, possibly wrapped in punctuation such as
   ``24.06.2020 -`` or ``(24.06.2020)``; the wrapping becomes part of the
   strptime format, because the parser reads an element's whole text.
2. Items. Children of one parent are grouped by tag; a member is *good* when it
   holds a date element and an ``<a href>``. The group with most good members
   that each hold one date wins (ties: the one with higher date coverage, then
   the first in the page); at least two good members are needed, else
   ParseError ("no repeated block with a date and a link").
3. Selectors. The item selector prefers stable class names (no long digit
   runs, no hash-like tokens), then an ancestor with an id or class in front,
   then a structural path from ``html`` with ``:nth-of-type``. A selector is
   accepted when it finds every good member and nothing that could read as a
   wrong statement. Inside an item: the title is the link or heading with the
   longest text that is not the date, the link the title's ``<a href>``, the
   lead the longest remaining text element; each field's selector is the
   candidate (class, tag, parent class, path) that picks the intended element
   in the most items. Items whose date has no element of its own
   (``<li>24.06.2020 - <a>…``) get a ``date_pattern`` reading it from their text.
   Other members named exactly like the items (same parent, tag and classes)
   may be matched too: a listed statement whose date is missing is still one.
4. The rest of the page. Counters are the innermost elements whose text
   matches the counter pattern (English or Russian wording; several in one
   element are read apart by the parser); ``as_of`` the first element outside
   the items whose text is a full date, else one whose text starts with one
   ("6 July 2020  London 00:43", read with an ``as_of.pattern``); the featured
   statement a block before the list holding a linked title and a long text;
   the next page a ``rel=next`` link, else the link right after the current
   (unlinked) number of a numbered pager (``Pages: ««« :: 1 2 3 :: »»»``),
   else a link reading "next", "older posts", "»", "далее"; the archive an
   "all messages" link.
5. Verify. The TOML text is parsed with tomllib, loaded with
   ``feeds.profile.load_profile`` and applied with ``feeds.parse.parse_page``;
   the summary reports what that reading gave, not what was guessed. What the
   page shows but the profile does not read (counters, the page's date,
   statements or their dates) becomes a
   warning, also written at the top of the TOML as a ``# CHECK:`` line.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree
from lxml.cssselect import CSSSelector, SelectorError

from feeds.encoding import decode
from feeds.errors import ParseError
from feeds.model import Page
from feeds.parse import looks_like_html, parse_page
from feeds.profile import SourceProfile, load_profile
from feeds.text import clean

Element: TypeAlias = Any  # lxml.html.HtmlElement; lxml ships no type information

# Tried in this order; for a page the first format that reads every item's date wins.
DATE_FORMATS = (
    "%d.%m.%Y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y-%m-%d",
    "%d.%m.%y",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%A, %d %B %Y",
    "%A %d %B %Y",
)
# The page's own date ("6 July 2020"), read outside the list.
AS_OF_FORMATS = ("%d %B %Y", "%d %b %Y", "%A, %d %B %Y", "%A %d %B %Y", "%d.%m.%Y", "%Y-%m-%d")

# A date inside an element's text; what is around it must be punctuation only.
_DATE_CORE = re.compile(
    r"(?:[^\W\d_]+,?\s+)?\d{1,2}\s+[^\W\d_]+\.?\s+\d{4}"  # (Monday, ) 6 July 2020
    r"|[^\W\d_]+\.?\s+\d{1,2},\s+\d{4}"  # July 6, 2020
    r"|\d{4}-\d{1,2}-\d{1,2}"
    r"|\d{1,2}[./]\d{1,2}[./]\d{2,4}"
)
_DECORATION = re.compile(r"[\s\-–—:|,()\[\]•·]*")

# How a header counter is worded: "855 days have passed since …" and its Russian twin.
_COUNTER_WORDINGS = {
    "en": r"days?\s+(?:have|has)\s+passed\s+since",
    "ru": r"(?:день|дня|дней)\s+(?:прошло|прошел|прошёл)\s+(?:с|со)",
}
# The note ends where the text ends or where another counter starts ("… authorities
# 847 days have passed since …"), so two counters in one element are not read as one.
_COUNTER_PATTERN = (
    r"^(?P<days>\d[\d,]*)\s+(?:{wording})\s+(?P<subject>.+?)(?:\s+[-–—]\s+(?P<note>.+?))?"
    r"(?=\s+\d[\d,]*\s+(?:{wording})\s|$)"
)

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_TITLE_TAGS = ("a", *_HEADINGS, "b", "strong")
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "title", "meta", "link", "br"}
_NEXT_TEXT = re.compile(
    r"^(?:next(?: page)?|older(?: posts| entries)?|далее|следующая|вперед|вперёд)?\s*(?:»+|›|>+)?$",
    re.I,
)
_ARCHIVE_TEXT = re.compile(
    r"^(?:all (?:messages|news|statements)|archive|все (?:сообщения|новости))$", re.I
)
_UNSTABLE_CLASS = re.compile(
    r"\d{3}|^(?=.*\d)(?=.*[a-z])[a-z0-9]{6,}$|-[a-z0-9]*\d[a-z0-9]*$", re.I
)

MAX_DATE_TEXT = 60  # no element showing only a date has a longer text
FEATURED_MIN_TEXT = 200  # characters of body text that make a block a featured statement
FEATURED_MIN_TITLE = 15


@dataclass(frozen=True)
class Suggestion:
    """A suggested profile and what it reads out of the page it was made from."""

    toml: str  # the commented profile, ready to save as config/sources/NAME.toml
    profile: SourceProfile  # the same text, loaded
    page: Page  # what the profile reads from the page
    items: int  # repeated dated blocks found on the page
    featured: bool  # a featured statement was found and is read
    reader: str  # which reader parse_page used ("selectors" unless the parser fell back)
    warnings: tuple[str, ...] = ()

    def summary_lines(self, first: int = 5) -> list[str]:
        """What an operator reads on stderr: counts, the first titles with dates."""
        page = self.page
        listed = [e for e in page.entries if not e.featured]
        lines = [
            f"statements: {len(page.entries)} ({len(listed)} in the list"
            + (", 1 featured)" if self.featured else ", no featured statement)"),
            f"as of: {page.as_of.isoformat() if page.as_of else 'not found'}",
            f"counters: {len(page.counters)}",
        ]
        lines += [f"  {c.days} days since {c.subject}" for c in page.counters]
        lines.append(f"next page: {page.next_url or 'not found'}")
        lines.append(f"first {min(first, len(page.entries))} statements:")
        for entry in page.entries[:first]:
            when = entry.published.isoformat() if entry.published else "no date   "
            mark = " (featured)" if entry.featured else ""
            lines.append(f"  {when}  {entry.title}{mark}")
        lines += [f"warning: {w}" for w in self.warnings]
        return lines

    def as_json(self) -> dict[str, Any]:
        """The suggestion as one JSON-ready object (for ``--json``)."""
        page = self.page
        return {
            "profile": self.toml,
            "reader": self.reader,
            "items": self.items,
            "featured": self.featured,
            "statements": len(page.entries),
            "as_of": page.as_of.isoformat() if page.as_of else None,
            "counters": [
                {"days": c.days, "subject": c.subject, "note": c.note} for c in page.counters
            ],
            "next_url": page.next_url,
            "entries": [
                {
                    "title": e.title,
                    "published": e.published.isoformat() if e.published else None,
                    "url": e.url,
                    "featured": e.featured,
                }
                for e in page.entries
            ],
            "warnings": list(self.warnings),
        }


# --- reading the tree -------------------------------------------------------------


class _Tree:
    """The parsed page with each element's cleaned text computed once."""

    def __init__(self, root: Element) -> None:
        self.root = root
        self._text: dict[Element, str] = {}
        self.elements = [
            e for e in root.iter() if isinstance(e.tag, str) and e.tag not in _SKIP_TAGS
        ]
        self._order = {e: i for i, e in enumerate(root.iter())}
        self._dates: dict[Element, list[tuple[Element, str]]] = {}

    def text(self, element: Element) -> str:
        value = self._text.get(element)
        if value is None:
            value = self._text[element] = clean(element.text_content())
        return value

    def select(self, selector: str) -> list[Element] | None:
        """What the selector finds, or None when it is not a selector cssselect compiles."""
        compiled = _compile(selector)
        return None if compiled is None else list(compiled(self.root))

    def order(self, element: Element) -> int:
        return self._order.get(element, -1)

    def dates(self, element: Element) -> list[tuple[Element, str]]:
        """The outermost date elements within ``element`` (itself included), with the
        strptime format each is written in; computed once per element."""
        found = self._dates.get(element)
        if found is None:
            fmt = None
            if isinstance(element.tag, str) and element.tag not in _SKIP_TAGS:
                fmt = _date_format(self.text(element))
            if fmt is not None:
                found = [(element, fmt)]
            else:
                found = [d for child in element for d in self.dates(child)]
            self._dates[element] = found
        return found


def _compile(selector: str) -> Any:
    try:
        return CSSSelector(selector)
    except (SelectorError, SyntaxError, ValueError):
        return None


def _date_format(text: str, formats: Sequence[str] = DATE_FORMATS) -> str | None:
    """The strptime format (with its punctuation) that reads the whole text, or None."""
    readers = _date_readers(text, formats)
    return readers[0] if readers else None


def _date_readers(text: str, formats: Sequence[str] = DATE_FORMATS) -> list[str]:
    """Every strptime format (with the text's punctuation) that reads the whole text."""
    if len(text) > MAX_DATE_TEXT:
        return []
    match = _DATE_CORE.search(text)
    if match is None:
        return []
    prefix, core, suffix = text[: match.start()], match.group(), text[match.end() :]
    if not (_DECORATION.fullmatch(prefix) and _DECORATION.fullmatch(suffix)):
        return []
    readers = []
    for fmt in formats:
        try:
            dt.datetime.strptime(core, fmt)
        except ValueError:
            continue
        readers.append(prefix.replace("%", "%%") + fmt + suffix.replace("%", "%%"))
    return readers


def _choose_formats(texts: Sequence[str]) -> list[str]:
    """Few formats, in the order to try them, that read every date text: greedily the
    one reading most of those still unread (ties: DATE_FORMATS order), so 01/02/2020
    and 13/02/2020 on one page make day-first win over month-first."""
    readers = [_date_readers(t) for t in texts]
    unread = [r for r in readers if r]
    chosen: list[str] = []
    while unread:
        tally = Tally(f for r in unread for f in r)
        order = {f: n for n, f in enumerate(f for r in unread for f in r)}
        best = max(tally, key=lambda f: (tally[f], -_format_rank(f), -order[f]))
        chosen.append(best)
        unread = [r for r in unread if best not in r]
    return chosen


def _format_rank(fmt: str) -> int:
    bare = fmt.strip(" -–—:|,()[]•·")
    return DATE_FORMATS.index(bare) if bare in DATE_FORMATS else len(DATE_FORMATS)


def _leading_date(text: str) -> str | None:
    """The full date a longer text starts with ("6 July 2020 London 00:43"), if any."""
    match = _DATE_CORE.match(text)
    if match is None or match.end() == len(text):
        return None
    return match.group() if _date_format(match.group(), AS_OF_FORMATS) else None


def _stable_classes(element: Element) -> list[str]:
    classes = (element.get("class") or "").split()
    return [
        c
        for c in classes
        if re.fullmatch(r"-?[A-Za-z_][\w-]*", c) and not _UNSTABLE_CLASS.search(c)
    ]


def _step(element: Element) -> str:
    """A selector step for one element: tag, id or classes when it has them."""
    tag = str(element.tag)
    ident = element.get("id")
    if ident and re.fullmatch(r"[A-Za-z][\w-]*", ident) and not _UNSTABLE_CLASS.search(ident):
        return f"{tag}#{ident}"
    classes = _stable_classes(element)
    return tag + "".join(f".{c}" for c in classes)


def _nth_step(element: Element) -> str:
    """A structural step: the tag and, when it has same-tag siblings, its position."""
    tag = str(element.tag)
    parent = element.getparent()
    if parent is None:
        return tag
    same = [c for c in parent if c.tag == element.tag]
    if len(same) == 1:
        return tag
    return f"{tag}:nth-of-type({same.index(element) + 1})"


def _structural_path(element: Element) -> str:
    steps = []
    node = element
    while node is not None:
        steps.append(_nth_step(node))
        node = node.getparent()
    return " > ".join(reversed(steps))


def _ancestors(element: Element) -> Iterable[Element]:
    node = element.getparent()
    while node is not None:
        yield node
        node = node.getparent()


def _shared_ancestor(elements: Sequence[Element]) -> Element:
    chains = [list(_ancestors(e)) for e in elements]
    for ancestor in chains[0]:
        if all(ancestor in chain for chain in chains[1:]):
            return ancestor
    return chains[0][-1]


def _contains(outer: Element, inner: Element) -> bool:
    return outer is inner or any(a is outer for a in _ancestors(inner))


class _Region:
    """Blocks already taken (items, counters, the featured statement): what lies in
    them, and what holds them, is answered in time proportional to the depth."""

    def __init__(self, blocks: Iterable[Element]) -> None:
        self.blocks = set(blocks)
        self.holders = {a for b in self.blocks for a in _ancestors(b)}

    def inside(self, element: Element) -> bool:
        return element in self.blocks or any(a in self.blocks for a in _ancestors(element))

    def touches(self, element: Element) -> bool:
        """In a block, a block, or holding one."""
        return element in self.holders or self.inside(element)


# --- the repeated block -------------------------------------------------------------


@dataclass
class _Item:
    element: Element
    date: Element | None = None
    date_format: str | None = None
    date_text: str | None = None  # the date as shown, with its punctuation
    title: Element | None = None
    link: Element | None = None
    lead: Element | None = None
    dates: int = 0


def _date_elements(tree: _Tree, within: Element) -> list[tuple[Element, str]]:
    """Outermost elements whose whole text is a date (one per date shown)."""
    return tree.dates(within)


def _links(element: Element) -> list[Element]:
    """The element's links to a page (not anchors, scripts, mail or phone)."""
    return [
        a
        for a in element.iter("a")
        if (a.get("href") or "").strip()
        and not (a.get("href") or "").strip().startswith(("#", "javascript:", "mailto:", "tel:"))
    ]


def _opening_date(text: str) -> str | None:
    """The date a longer text opens with, after any punctuation ("24.06.2020 - Title …",
    "(24.06.2020) Title"), when the date has no element of its own."""
    start = _DECORATION.match(text)
    match = _DATE_CORE.match(text, start.end() if start else 0)
    if match is None or match.end() == len(text) or _date_format(match.group()) is None:
        return None
    return match.group()


def _text_date(text: str) -> bool:
    """Whether a text opens with a date that has no element of its own."""
    return _opening_date(text) is not None


def _dates_shown(tree: _Tree, element: Element) -> int:
    """How many dates a block shows: its date elements, else one if its text opens
    with a date (which no selector can pick out, but it is still a dated item)."""
    return len(_date_elements(tree, element)) or int(_text_date(tree.text(element)))


def _is_good(tree: _Tree, element: Element) -> bool:
    return bool(_dates_shown(tree, element)) and bool(_links(element))


def _best_group(tree: _Tree) -> list[Element]:
    best: list[Element] = []
    best_score: tuple[float, float] = (0.0, 0.0)
    for parent in tree.elements:
        by_tag: dict[str, list[Element]] = {}
        for child in parent:
            if isinstance(child.tag, str) and child.tag not in _SKIP_TAGS:
                by_tag.setdefault(str(child.tag), []).append(child)
        for members in by_tag.values():
            if len(members) < 2:
                continue
            good = []
            weight = 0.0
            for member in members:
                dates = _dates_shown(tree, member)
                if dates and _links(member):
                    good.append(member)
                    # A block holding many dates is a wrapper of items, not an item.
                    weight += 1.0 if dates == 1 else 0.25
            if len(good) < 2 or len(good) * 2 < len(members):
                continue
            score = (weight, len(good) / len(members))
            if score > best_score:
                best, best_score = good, score
    return best


def _accepts_items(tree: _Tree, selector: str, items: Sequence[Element]) -> bool:
    found = tree.select(selector)
    if found is None:
        return False
    wanted = set(items)
    if not wanted <= set(found):
        return False
    # Extra matches are fine when they are items too, cannot yield a title, or are
    # named exactly like the items beside them (a listed statement whose date is
    # missing or unreadable is still a statement).
    signatures = {(e.getparent(), str(e.tag), tuple(_stable_classes(e))) for e in items}
    for extra in (e for e in found if e not in wanted):
        named_alike = bool(_stable_classes(extra)) and (
            (extra.getparent(), str(extra.tag), tuple(_stable_classes(extra))) in signatures
        )
        if named_alike or _is_good(tree, extra):
            continue
        if _links(extra) or any(True for _ in extra.iter(*_HEADINGS)):
            return False
    return True


def _set_selector(elements: Sequence[Element], accepts: Callable[[str], bool]) -> str:
    """A document-level selector for a set of same-tag elements (stable names first)."""
    first = elements[0]
    tag = str(first.tag)
    common = set(_stable_classes(first))
    for element in elements[1:]:
        common &= set(_stable_classes(element))
    ordered = [c for c in _stable_classes(first) if c in common]
    own = [f"{tag}.{c}" for c in ordered]
    if len(ordered) > 1:
        own.append(tag + "".join(f".{c}" for c in ordered))
    if len(elements) == 1 and first.get("id"):
        own.insert(0, _step(first))
    candidates = list(own)
    parents = {id(e.getparent()): e.getparent() for e in elements}
    if len(parents) == 1:
        parent = next(iter(parents.values()))
        leaf = own[0] if own else tag
        if len(elements) == 1 and not own:
            leaf = _nth_step(first)
        for ancestor in [parent, *_ancestors(parent)]:
            step = _step(ancestor)
            if step != str(ancestor.tag) and ancestor.tag not in ("html", "body"):
                candidates.append(f"{step} {leaf}")
                if ancestor is parent:
                    candidates.append(f"{step} > {leaf}")
        path = _structural_path(parent)
        candidates.append(f"{path} > {leaf}")
        candidates.append(f"{path} > {tag}")
        if len(elements) > 1:
            # A run of siblings with other same-tag siblings before or after it.
            same = [c for c in parent if c.tag == first.tag]
            start = same.index(elements[0]) + 1
            tail = len(same) - same.index(elements[-1])
            run = (f":nth-of-type(n+{start})" if start > 1 else "") + (
                f":nth-last-of-type(n+{tail})" if tail > 1 else ""
            )
            candidates.append(f"{path} > {tag}{run}")
    else:
        # Spread over several parents (one counter per table cell): name the nearest
        # ancestor they share, then descend to them.
        shared = _shared_ancestor(elements)
        leaf = own[0] if own else tag
        for ancestor in [shared, *_ancestors(shared)]:
            step = _step(ancestor)
            if step != str(ancestor.tag) and ancestor.tag not in ("html", "body"):
                candidates.append(f"{step} {leaf}")
        candidates.append(f"{_structural_path(shared)} {leaf}")
    for candidate in candidates:
        if accepts(candidate):
            return candidate
    return ", ".join(_structural_path(e) for e in elements)


def _exactly(tree: _Tree, elements: Sequence[Element]) -> Callable[[str], bool]:
    def accepts(selector: str) -> bool:
        return tree.select(selector) == list(elements)

    return accepts


# --- fields inside an item ------------------------------------------------------------


def _read_item(tree: _Tree, element: Element) -> _Item:
    item = _Item(element)
    dates = _date_elements(tree, element)
    item.dates = len(dates)
    if dates:
        item.date, item.date_format = dates[0]
        item.date_text = tree.text(item.date)
    elif (opening := _opening_date(tree.text(element))) is not None:
        item.date_text = opening
        item.date_format = _date_format(opening)
    taken = [item.date] if item.date is not None else []
    best: Element | None = None
    for candidate in element.iter(*_TITLE_TAGS):
        if candidate is element or any(
            _contains(t, candidate) or _contains(candidate, t) for t in taken
        ):
            continue
        text = tree.text(candidate)
        if not re.search(r"[^\W\d_]", text) or _date_format(text):
            continue
        if (
            best is None
            or len(text) > len(tree.text(best))
            or (len(text) == len(tree.text(best)) and candidate.tag == "a" and best.tag != "a")
        ):
            best = candidate
    item.title = best
    if best is not None:
        taken.append(best)
        if best.tag == "a" and best.get("href"):
            item.link = best
        else:
            inner = _links(best)
            item.link = inner[0] if inner else None
    if item.link is None:
        links = _links(element)
        item.link = links[0] if links else None
    lead: Element | None = None
    for candidate in element.iter():
        if (
            candidate is element
            or not isinstance(candidate.tag, str)
            or candidate.tag in _SKIP_TAGS
        ):
            continue
        if any(_contains(t, candidate) or _contains(candidate, t) for t in taken):
            continue
        text = tree.text(candidate)
        if not re.search(r"[^\W\d_]{2}", text) or _date_format(text):
            continue
        # A link ("more", "Continue reading") or a box holding only one is not a lead.
        if candidate.tag == "a" or any(tree.text(a) == text for a in candidate.iter("a")):
            continue
        if lead is None or len(text) > len(tree.text(lead)):
            lead = candidate
    item.lead = lead
    return item


def _field_candidates(element: Element, item: Element) -> list[str]:
    tag = str(element.tag)
    classes = _stable_classes(element)
    candidates = [f"{tag}.{c}" for c in classes]
    if len(classes) > 1:
        candidates.append(tag + "".join(f".{c}" for c in classes))
    # A named ancestor inside the item says more than a bare tag ("h1.title a").
    for ancestor in _ancestors(element):
        if ancestor is item:
            break
        for c in _stable_classes(ancestor):
            candidates.append(f"{ancestor.tag}.{c} {tag}")
    candidates.append(tag)
    steps = []
    node = element
    while node is not None and node is not item:
        steps.append(_nth_step(node))
        node = node.getparent()
    candidates.append(" > ".join(reversed(steps)))
    # The item's own step anchors the path when a nested copy of it could match first.
    candidates.append(" > ".join([_nth_step(item).split(":")[0], *reversed(steps)]))
    return candidates


def _same_text_chain(
    tree: _Tree, element: Element, item: Element, inner_too: bool = True
) -> list[Element]:
    """The element and the ones around or inside it showing the same text, innermost first
    (``<td><font>24.06.2020</font></td>``: either reads the date)."""
    text = tree.text(element)
    inner = [element]
    while inner_too:
        children = [c for c in inner[-1] if isinstance(c.tag, str)]
        if len(children) != 1 or tree.text(children[0]) != text:
            break
        inner.append(children[0])
    outer = []
    for ancestor in _ancestors(element):
        if ancestor is item or tree.text(ancestor) != text:
            break
        outer.append(ancestor)
    return list(reversed(inner)) + outer


def _field_selector(
    tree: _Tree,
    items: Sequence[_Item],
    pick: Callable[[_Item], Element | None],
    inner_too: bool = True,
) -> str | None:
    """The candidate selector that finds the intended element in the most items.

    ``inner_too=False`` for links: an element inside the ``<a>`` does not carry its href."""
    wanted = []
    for item in items:
        target = pick(item)
        chain = (
            _same_text_chain(tree, target, item.element, inner_too) if target is not None else []
        )
        wanted.append((item.element, chain))
    if not any(chain for _, chain in wanted):
        return None
    candidates: list[str] = []
    for item_element, chain in wanted:
        for target in chain:
            for c in _field_candidates(target, item_element):
                if c not in candidates:
                    candidates.append(c)
    best, best_hits = None, -1
    for candidate in candidates:
        selector = _compile(candidate)
        if selector is None:
            continue
        hits = 0
        for item_element, chain in wanted:
            found = selector(item_element)
            hits += (found[0] in chain) if found else not chain
        if hits > best_hits:
            best, best_hits = candidate, hits
        if hits == len(wanted):
            break
    return best


# --- the rest of the page ------------------------------------------------------------------


def _innermost(
    tree: _Tree, test: Callable[[str], bool], outside: Sequence[Element]
) -> list[Element]:
    """Innermost elements whose whole text passes ``test``, outside the given blocks."""
    region = _Region(outside)
    hits = [e for e in tree.elements if test(tree.text(e)) and not region.inside(e)]
    hit_set = set(hits)
    return [e for e in hits if not any(d in hit_set for d in e.iterdescendants())]


def _counter_wordings(texts: Iterable[str]) -> list[str]:
    texts = list(texts)
    found = []
    for key, wording in _COUNTER_WORDINGS.items():
        pattern = re.compile(_COUNTER_PATTERN.format(wording=wording), re.I)
        if any(pattern.search(t) for t in texts):
            found.append(key)
    return found


def _featured(
    tree: _Tree, before: Element, outside: Sequence[Element]
) -> tuple[Element, Element, Element | None] | None:
    """A block before the list with a linked title and a long text: (block, title, text)."""
    limit = tree.order(before)
    region = _Region([*outside, before])
    best: tuple[Element, Element, Element | None] | None = None
    for block in tree.elements:
        if tree.order(block) >= limit or block.tag in ("html", "body") or region.touches(block):
            continue
        titles = [
            t
            for t in block.iter(*_TITLE_TAGS)
            if t is not block
            and len(tree.text(t)) >= FEATURED_MIN_TITLE
            and ((t.tag == "a" and t.get("href")) or _links(t))
        ]
        if not titles:
            continue
        title = titles[0]
        if title.tag == "a":
            # The heading around a linked title is the nicer selector.
            parent = title.getparent()
            if parent is not None and parent is not block and tree.text(parent) == tree.text(title):
                title = parent
        texts = [
            t
            for t in block.iterdescendants()
            if isinstance(t.tag, str)
            and t.tag not in _SKIP_TAGS
            and not _contains(t, title)
            and not _contains(title, t)
            and len(tree.text(t)) >= FEATURED_MIN_TEXT
        ]
        if not texts:
            continue
        text = max(texts, key=lambda t: len(tree.text(t)))
        # The innermost block holding both wins: it is the statement, not the page column.
        best = (block, title, text)
    return best


def _numbered_next(tree: _Tree) -> str | None:
    """In a numbered pager ("Pages: ««« :: 1 2 3 :: »»»") the current page is the
    number that is not a link; the next page is the link right after it."""
    for current in tree.elements:
        if not tree.text(current).isdigit() or current.tag == "a" or _links(current):
            continue
        if current.getparent() is None or current.getparent().tag == "a":
            continue
        node = current
        # <li class="active"><span>2</span></li>: the step is the <li>, not the <span>.
        while node.getnext() is None and node.getparent() is not None and len(node) == 0:
            parent = node.getparent()
            if tree.text(parent) != tree.text(node):
                break
            node = parent
        following = node.getnext()
        if following is None or not isinstance(following.tag, str):
            continue
        siblings = [c for c in node.getparent() if c is not node and isinstance(c.tag, str)]
        if not any(tree.text(c).isdigit() and _links(c) for c in siblings):
            continue  # not a pager: no other page number is a link
        target = following if following.tag == "a" else (_links(following) or [None])[0]
        if target is None:
            continue
        parent_step = _step(node.getparent())
        leaf = f"{_step(node)} + {following.tag}" + ("" if following is target else " a")
        for candidate in (
            f"{parent_step} {leaf}",
            f"{_structural_path(node.getparent())} > {leaf}",
        ):
            found = tree.select(candidate)
            if found and found[0] is target:
                return candidate
    return None


def _next_link(tree: _Tree) -> str | None:
    """A selector for the next page's link: rel=next, a numbered pager, or a "next" text."""
    if tree.select("a[rel~=next]") or tree.select("link[rel~=next]"):
        return "a[rel~=next], link[rel~=next]"
    numbered = _numbered_next(tree)
    if numbered:
        return numbered
    for a in tree.root.iter("a"):
        text = tree.text(a)
        if text and a.get("href") and _NEXT_TEXT.fullmatch(text) and not text.isdigit():
            for candidate in (_step(a), f'a:contains("{text}")'):
                found = tree.select(candidate)
                if found and found[0] is a:
                    return candidate
    return None


def _archive_link(tree: _Tree) -> str | None:
    for a in tree.root.iter("a"):
        if _ARCHIVE_TEXT.fullmatch(tree.text(a)) and a.get("href"):
            href = str(a.get("href")).strip()
            parts = urlsplit(href)
            return (
                href
                if not parts.netloc
                else parts.path + (f"?{parts.query}" if parts.query else "")
            )
    return None


# --- writing the profile ----------------------------------------------------------------


def _toml_string(value: str) -> str:
    """A TOML string: literal ('…') when it can be, which keeps regexes readable."""
    if "'" not in value and "\n" not in value and not re.search(r"[\x00-\x1f\x7f]", value):
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def _date_regex(fmt: str) -> str:
    """A regular expression for text written in a strptime format (for the [text] rules)."""
    pieces = {
        "d": r"\d{1,2}",
        "m": r"\d{1,2}",
        "Y": r"\d{4}",
        "y": r"\d{2}",
        "B": r"[^\W\d_]+",
        "b": r"[^\W\d_]+\.?",
        "A": r"[^\W\d_]+",
        "%": "%",
    }
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            out.append(pieces.get(fmt[i + 1], r"\S+"))
            i += 2
        else:
            out.append(r"\s+" if fmt[i] == " " else re.escape(fmt[i]))
            i += 1
    return "".join(out)


def _leading_date_pattern(formats: Sequence[str]) -> str:
    """A pattern whose ``date`` group is a date in one of the (bare) formats at the
    start of a text, after any punctuation ("24.06.2020 - Title", "6 July 2020 London")."""
    bare = dict.fromkeys(
        _date_regex(DATE_FORMATS[_format_rank(f)] if _format_rank(f) < len(DATE_FORMATS) else f)
        for f in formats
    )
    return r"^\W*(?P<date>" + "|".join(bare) + r")(?!\d)"


def _profile_name(url: str) -> str:
    host = urlsplit(url).hostname or ""
    host = host.removeprefix("www.")
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-") or "suggested"


@dataclass
class _Parts:
    name: str
    date_formats: list[str]
    item: str
    title: str
    link: str | None
    date: str | None
    lead: str | None
    items: int
    statements: int
    counters: str | None = None
    counter_wordings: list[str] = field(default_factory=list)
    as_of: str | None = None
    as_of_format: str | None = None
    as_of_pattern: str | None = None  # the page's date read out of a longer text
    date_pattern: str | None = None  # the items' dates read out of their text
    featured: tuple[str, str, str | None, str | None] | None = None
    next_page: str | None = None
    archive_url: str | None = None
    counters_shown: int = 0  # counter wordings in the page's text, read or not
    as_of_hidden: str | None = None  # text that starts with the page's date but holds more


def _render(parts: _Parts, url: str) -> str:
    wordings = parts.counter_wordings or ["en"]
    counter_pattern = _COUNTER_PATTERN.format(
        wording="|".join(_COUNTER_WORDINGS[w] for w in wordings)
    )
    as_of_formats = [parts.as_of_format] if parts.as_of_format else []
    as_of_formats += [f for f in AS_OF_FORMATS if f not in as_of_formats]
    lines = [
        f"# Source profile suggested by `feedbot profile suggest` for {url}",
        "#",
        "# Written from one page: check it with `feedbot parse URL` and correct what",
        "# it misreads. Selectors are CSS (as in a browser's querySelector); patterns are",
        "# Python regular expressions, matched case-insensitively; dates are strptime",
        "# formats, tried in turn, and must read an element's whole text (or the `date`",
        "# group of a pattern, where one is given).",
        "",
        f"name = {_toml_string(parts.name)}",
        "# The dates the list shows (found on this page).",
        f"date_formats = {_toml_list(parts.date_formats)}",
        "",
    ]
    lines.append(
        "[as_of]        # the page's own date, from which counters' start dates are computed"
    )
    if parts.as_of:
        lines.append(f"selector = {_toml_string(parts.as_of)}")
    if parts.as_of_pattern:
        lines.append("# The date is shown with other text (clocks): its `date` group is read.")
        lines.append(f"pattern = {_toml_string(parts.as_of_pattern)}")
    else:
        lines.append("# not found on this page: name the element that shows today's date")
        lines.append('# selector = ""')
    lines.append(f"formats = {_toml_list(as_of_formats)}")
    lines.append("")
    lines.append('[counters]     # "855 days have passed since <subject> - <note>"')
    if parts.counters:
        lines.append(f"selector = {_toml_string(parts.counters)}")
    else:
        lines.append("# no counters found on this page")
        lines.append('# selector = ""')
    lines.append(f"pattern = {_toml_string(counter_pattern)}")
    lines.append("")
    if parts.featured:
        block, title, link, text = parts.featured
        lines.append("[featured]     # the statement shown with its full text above the list")
        lines.append(f"block = {_toml_string(block)}")
        lines.append(f"title = {_toml_string(title)}")
        if link:
            lines.append(f"link = {_toml_string(link)}")
        if text:
            lines.append(f"text = {_toml_string(text)}")
        lines.append("")
    else:
        lines += [
            "# No featured statement found above the list; add a [featured] table",
            "# (block, title, link, text) if the page has one.",
            "",
        ]
    lines.append(
        f"[list]         # the dated statements: one item each ({parts.items} on this page)"
    )
    lines.append(f"item = {_toml_string(parts.item)}")
    lines.append(f"title = {_toml_string(parts.title)}")
    for key, value in (("link", parts.link), ("date", parts.date), ("lead", parts.lead)):
        if value:
            lines.append(f"{key} = {_toml_string(value)}")
        elif not (key == "date" and parts.date_pattern):
            lines.append(f"# {key}: not found in the items")
    if parts.date_pattern:
        lines.append(
            "# Dates written in the items' text ('24.06.2020 - Title'): the `date` group of"
        )
        lines.append("# this pattern, searched in the date element's text, else the item's.")
        lines.append(f"date_pattern = {_toml_string(parts.date_pattern)}")
    lines.append("")
    lines.append("[article]      # a statement's own page, read for its full text")
    lines.append("# A guess: open one statement's page and name the element holding its text.")
    lines.append("text = 'body'")
    lines.append("")
    if parts.next_page or parts.archive_url:
        lines.append('[archive]      # "all messages": the same items, page after page')
        if parts.archive_url:
            lines.append(f"url = {_toml_string(parts.archive_url)}")
        if parts.next_page:
            lines.append(f"next = {_toml_string(parts.next_page)}")
        lines.append("")
    else:
        lines += [
            "# No pager or archive link found: add an [archive] table (url, next) for backfill.",
            "",
        ]
    entry = (
        r"^(?P<date>" + _date_regex(parts.date_formats[0]).rstrip() + r")\s+[-–—]?\s*(?P<title>.+)$"
    )
    lines.append("[text]         # a plain-text capture of the page (no markup, no links)")
    lines.append(f"entry = {_toml_string(entry)}")
    lines.append("")
    return "\n".join(lines)


# --- the whole -----------------------------------------------------------------------------


def _root(body: bytes, content_type: str | None) -> Element:
    if not looks_like_html(body, content_type):
        raise ParseError("the page is not HTML: a profile can only be suggested for an HTML page")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", decode(body, content_type))
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(f"the page is not readable HTML: {exc}") from None


def _parts(tree: _Tree, url: str, warnings: list[str]) -> _Parts:
    group = _best_group(tree)
    if not group:
        raise ParseError(
            "no repeated block with a date and a link on the page: "
            "a profile cannot be suggested for it"
        )
    item_selector = _set_selector(group, lambda s: _accepts_items(tree, s, group))
    elements = [e for e in tree.select(item_selector) or [] if _is_good(tree, e)] or group
    items = [_read_item(tree, e) for e in elements]
    date_formats = _choose_formats([i.date_text for i in items if i.date_text])
    # The bare formats too, for an item written without the others' punctuation.
    bare = [
        DATE_FORMATS[_format_rank(f)] for f in date_formats if _format_rank(f) < len(DATE_FORMATS)
    ]
    date_formats += [f for f in dict.fromkeys(bare) if f not in date_formats]

    title = _field_selector(tree, items, lambda i: i.title)
    if title is None:
        raise ParseError("the repeated dated blocks hold no title (no link or heading text)")
    link = _field_selector(tree, items, lambda i: i.link, inner_too=False)
    parts = _Parts(
        name=_profile_name(url),
        date_formats=date_formats,
        item=item_selector,
        title=title,
        link=link,
        date=_field_selector(tree, items, lambda i: i.date),
        lead=_field_selector(tree, items, lambda i: i.lead),
        items=len(items),
        # One statement listed twice is read once.
        statements=len(
            {
                urljoin(url, str(i.link.get("href"))) if i.link is not None else str(id(i))
                for i in items
            }
        ),
    )

    first_item = elements[0]
    item_blocks = list(elements)

    wordings = _counter_wordings(tree.text(e) for e in tree.elements)
    parts.counter_wordings = wordings
    if wordings:
        pattern = re.compile(
            _COUNTER_PATTERN.format(wording="|".join(_COUNTER_WORDINGS[w] for w in wordings)), re.I
        )
        counters = _innermost(tree, lambda t: bool(pattern.search(t)), item_blocks)
        if counters:
            parts.counters = _set_selector(counters, _exactly(tree, counters))
            # Counter wordings shown, read or not ("855 days … 847 days …" in one element).
            start = re.compile(
                r"(?:^|\s)\d[\d,]*\s+(?:" + "|".join(_COUNTER_WORDINGS[w] for w in wordings) + ")",
                re.I,
            )
            parts.counters_shown = sum(len(start.findall(tree.text(e))) for e in counters)
    counter_blocks = (tree.select(parts.counters) or []) if parts.counters else []

    featured = _featured(tree, first_item, item_blocks + counter_blocks)
    featured_blocks: list[Element] = []
    if featured is not None:
        block, title_el, text_el = featured
        block_sel = _set_selector([block], _exactly(tree, [block]))
        holder = _Item(block, title=title_el, lead=text_el)
        holder.link = title_el if title_el.tag == "a" else (_links(title_el) or [None])[0]
        f_title = _field_selector(tree, [holder], lambda i: i.title)
        f_link = _field_selector(tree, [holder], lambda i: i.link, inner_too=False)
        f_text = _field_selector(tree, [holder], lambda i: i.lead)
        if f_title:
            parts.featured = (block_sel, f_title, f_link, f_text)
            featured_blocks = [block]

    def full_date(text: str) -> bool:
        return bool(text) and _date_format(text, AS_OF_FORMATS) is not None

    outside = item_blocks + counter_blocks + featured_blocks
    dated = _innermost(tree, full_date, outside)
    if not dated:
        # A date shown with other text ("6 July 2020 London 00:43"): no selector reads it.
        holders = _Region(outside).holders
        leading = [
            e
            for e in _innermost(tree, lambda t: _leading_date(t) is not None, outside)
            if len(tree.text(e)) <= 120 and e not in holders
        ]
        if leading:
            element = leading[0]
            parts.as_of_hidden = tree.text(element)
            for ancestor in _ancestors(element):
                if tree.text(ancestor) != tree.text(element):
                    break
                element = ancestor
            day = _leading_date(tree.text(element))
            assert day is not None
            parts.as_of = _set_selector([element], _exactly(tree, [element]))
            parts.as_of_format = _date_format(day, AS_OF_FORMATS)
            assert parts.as_of_format is not None
            parts.as_of_pattern = _leading_date_pattern([parts.as_of_format])
    if dated:
        element = dated[0]
        # The outermost element with the same text carries the nicer name.
        for ancestor in _ancestors(element):
            if tree.text(ancestor) != tree.text(element):
                break
            element = ancestor
        parts.as_of = _set_selector([element], _exactly(tree, [element]))
        parts.as_of_format = _date_format(tree.text(element), AS_OF_FORMATS)

    parts.next_page = _next_link(tree)
    parts.archive_url = _archive_link(tree)
    if any(i.date is None for i in items):
        # "24.06.2020 - <a>Title</a>": no element holds the date alone; a pattern reads it.
        parts.date_pattern = _leading_date_pattern(date_formats)
    if any(i.dates > 1 for i in items):
        warnings.append("some items show more than one date; the first is read")
    return parts


def suggest_profile(body: bytes, url: str, content_type: str | None = None) -> Suggestion:
    """A commented TOML profile for the page, and what it reads when loaded back.

    Raises ParseError when the page holds no repeated block with a date and a
    link (nothing a list profile could read)."""
    tree = _Tree(_root(body, content_type))
    warnings: list[str] = []
    parts = _parts(tree, url, warnings)
    toml_text = _render(parts, url)
    profile = load_profile(tomllib.loads(toml_text), where=f"suggested profile for {url}")
    page = parse_page(body, url, profile, content_type)
    reader = str(getattr(page, "reader", "selectors"))
    if reader != "selectors":
        warnings.append(
            f"the parser did not trust what the selectors read and fell back to {reader!r}"
        )
    listed = sum(1 for e in page.entries if not e.featured)
    if listed < parts.statements:
        warnings.append(f"{parts.statements} dated statements found but the profile reads {listed}")
    if parts.counters_shown > len(page.counters):
        warnings.append(
            f"the page shows {parts.counters_shown} counters but the profile reads "
            f"{len(page.counters)}: check the counters' selector and pattern"
        )
    if page.as_of is None and parts.as_of_hidden:
        warnings.append(
            f"the page's date is shown with other text ({parts.as_of_hidden[:60]!r}); "
            "and the profile does not read it: check [as_of] selector and pattern"
        )
    undated = sum(1 for e in page.entries if not e.featured and e.published is None)
    if undated:
        warnings.append(f"{undated} listed statements read without a date")
    if warnings:
        # The operator reads these where they edit: at the top of the file.
        head, _, rest = toml_text.partition("\n\n")
        notes = "\n".join(f"# CHECK: {w}" for w in warnings)
        toml_text = f"{head}\n#\n{notes}\n\n{rest}"
    return Suggestion(
        toml=toml_text,
        profile=profile,
        page=page,
        items=parts.items,
        featured=any(e.featured for e in page.entries),
        reader=reader,
        warnings=tuple(warnings),
    )
