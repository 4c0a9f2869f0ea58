"""Source profiles: how to read one site's pages, kept in config, never in code.

A profile is a TOML table (``config/sources/<name>.toml``) of CSS selectors,
date formats and regular expressions. Loading compiles every selector and
pattern up front, so a typo stops start-up with the key that is wrong instead
of failing at the first poll.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from lxml.cssselect import CSSSelector, SelectorSyntaxError

from feeds.errors import ConfigError

# lxml ships no type information: a compiled CSSSelector, or None when not configured.
Selector: TypeAlias = Any


@dataclass(frozen=True)
class ListProfile:
    item: CSSSelector
    title: CSSSelector
    link: Selector
    date: Selector
    lead: Selector
    # Where a date is written inside other text ("24.06.2020 - Title …"): searched in
    # the date element's text, or the item's own text when it has no date element.
    date_pattern: re.Pattern[str] | None = None
    # The date in an attribute of the date element (``<time datetime="…">``): ISO 8601,
    # else the date formats.
    date_attribute: str | None = None
    # The title is the first line of the title element's text (a post with no title
    # of its own, as in a Telegram channel).
    title_first_line: bool = False
    # The page lists its newest item last: entries are turned newest first.
    newest_last: bool = False


@dataclass(frozen=True)
class ArchiveList:
    """One archive list. ``url`` is a path or URL where ``{start}`` stands for the
    offset of the page's first item; without it, the list's one fixed first page."""

    name: str
    url: str

    def first_page(self, start: int) -> str:
        return self.url.replace("{start}", str(start))


@dataclass(frozen=True)
class ArchiveProfile:
    """How ``feedbot backfill`` finds its way through the archive lists."""

    lists: tuple[ArchiveList, ...] = ()  # in walk order
    walk: tuple[str, ...] = ()  # the lists walked unless others are asked for
    first: int = 1  # the offset of a list's first page
    step: int = 10  # items per page: a page at offset N is followed by N + step
    offset: str = "start"  # the URL parameter that carries the offset
    all_messages: re.Pattern[str] | None = None  # the home page's link to the archive
    pager: re.Pattern[str] | None = None  # the text that starts the pager ("Pages:")


@dataclass(frozen=True)
class FeaturedProfile:
    block: CSSSelector
    title: CSSSelector
    link: Selector
    date: Selector
    text: Selector


@dataclass(frozen=True)
class ArticleProfile:
    title: Selector
    date: Selector
    text: CSSSelector


@dataclass(frozen=True)
class TextProfile:
    """The text rules: how to read the page as lines of text — a plain-text capture,
    or an HTML page laid out as a browser shows it when the selectors find nothing."""

    entry: re.Pattern[str]  # a dated statement's first line: groups ``date`` and ``title``
    end: re.Pattern[str] | None  # the line after the last statement
    featured: bool  # the text between the page's header and the first entry is a statement
    # Lines of the page's header (clocks, consular phone, e-mail): never a statement,
    # and a featured statement follows the last of them.
    header: tuple[re.Pattern[str], ...] = ()
    # Other lines that are never a statement (pager, "all messages", …).
    skip: tuple[re.Pattern[str], ...] = ()
    # A line with letters and none in lower case is a section heading, never a statement.
    headings: bool = False


@dataclass(frozen=True)
class SourceProfile:
    name: str
    date_formats: tuple[str, ...]
    counter_pattern: re.Pattern[str]
    list: ListProfile
    article: ArticleProfile
    text: TextProfile
    counters: Selector = None
    as_of: Selector = None
    as_of_formats: tuple[str, ...] = ()
    # The page's date inside other text ("6 July 2020  London 00:43"): its ``date`` group.
    as_of_pattern: re.Pattern[str] | None = None
    featured: FeaturedProfile | None = None
    archive_url: str | None = None
    archive_list: ListProfile | None = None
    next_page: Selector = None
    archive: ArchiveProfile = ArchiveProfile()
    allowed_hosts: tuple[str, ...] = ()
    summary_chars: int = 500
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _table(data: Mapping[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}.{key}: missing table")
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{key}: must be a table")
    return dict(value)


def _css(data: Mapping[str, Any], key: str, where: str, required: bool = False) -> Selector:
    value = data.get(key)
    if value in (None, ""):
        if required:
            raise ConfigError(f"{where}.{key}: a CSS selector is required")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a CSS selector string")
    try:
        selector: Selector = CSSSelector(value)
        return selector
    except (SelectorSyntaxError, ValueError, SyntaxError) as exc:
        raise ConfigError(f"{where}.{key}: invalid CSS selector {value!r}: {exc}") from None


def _required_css(data: Mapping[str, Any], key: str, where: str) -> CSSSelector:
    selector = _css(data, key, where, required=True)
    assert selector is not None
    return selector


def _regex(
    data: Mapping[str, Any], key: str, where: str, groups: tuple[str, ...]
) -> re.Pattern[str]:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: a regular expression is required")
    try:
        pattern = re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{where}.{key}: invalid regular expression: {exc}") from None
    missing = [g for g in groups if g not in pattern.groupindex]
    if missing:
        raise ConfigError(f"{where}.{key}: the pattern needs named groups {', '.join(missing)}")
    return pattern


def _regexes(data: Mapping[str, Any], key: str, where: str) -> tuple[re.Pattern[str], ...]:
    patterns = []
    for n, value in enumerate(_strings(data, key, where)):
        try:
            patterns.append(re.compile(value, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(f"{where}.{key}[{n}]: invalid regular expression: {exc}") from None
    return tuple(patterns)


def _strings(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}: must be a list of strings")
    return tuple(value)


def _date_pattern(table: Mapping[str, Any], key: str, where: str) -> re.Pattern[str] | None:
    """An optional pattern whose named group ``date`` is the date, read with the formats."""
    return _regex(table, key, where, ("date",)) if key in table else None


def _list_profile(table: Mapping[str, Any], where: str) -> ListProfile:
    return ListProfile(
        item=_required_css(table, "item", where),
        title=_required_css(table, "title", where),
        link=_css(table, "link", where),
        date=_css(table, "date", where),
        lead=_css(table, "lead", where),
        date_pattern=_date_pattern(table, "date_pattern", where),
        date_attribute=_attribute_name(table, "date_attribute", where),
        title_first_line=_flag(table, "title_first_line", where),
        newest_last=_flag(table, "newest_last", where),
    )


def _attribute_name(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][\w:.-]*", value):
        raise ConfigError(f"{where}.{key}: must be an attribute name such as 'datetime'")
    return value


def _flag(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be true or false")
    return value


def _as_of_pattern(table: Mapping[str, Any], where: str) -> re.Pattern[str] | None:
    pattern = _date_pattern(table, "pattern", where)
    if pattern is not None and not table.get("selector"):
        raise ConfigError(f"{where}.pattern: needs a selector for the element holding the date")
    return pattern


def _whole(table: Mapping[str, Any], key: str, where: str, default: int, least: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(f"{where}.{key}: must be a whole number of at least {least}")
    return value


def _archive_profile(table: Mapping[str, Any], where: str) -> ArchiveProfile:
    lists_t = _table(table, "lists", where, required=False)
    if not lists_t and table.get("url"):  # one list, walked by its next links
        lists_t = {"archive": table["url"]}
    lists = []
    for name, url in lists_t.items():
        if not isinstance(url, str) or not url or re.search(r"\{(?!start\})", url):
            raise ConfigError(f"{where}.lists.{name}: must be a URL; {{start}} marks the offset")
        lists.append(ArchiveList(name, url))
    walk = _strings(table, "walk", where) or tuple(a.name for a in lists)
    unknown = sorted(set(walk) - {a.name for a in lists})
    if unknown:
        raise ConfigError(f"{where}.walk: no such list {', '.join(unknown)}")
    offset = table.get("offset", "start")
    if not isinstance(offset, str) or not re.fullmatch(r"\w+", offset):
        raise ConfigError(f"{where}.offset: must be a URL parameter name such as 'start'")
    return ArchiveProfile(
        lists=tuple(lists),
        walk=walk,
        first=_whole(table, "first", where, default=1, least=0),
        step=_whole(table, "step", where, default=10, least=1),
        offset=offset,
        all_messages=_regex(table, "all_messages", where, ()) if "all_messages" in table else None,
        pager=_regex(table, "pager", where, ()) if "pager" in table else None,
    )


def load_profile(data: Mapping[str, Any], where: str = "profile") -> SourceProfile:
    """Build and check a profile from its TOML table; raises ConfigError naming the key."""
    date_formats = _strings(data, "date_formats", where)
    if not date_formats:
        raise ConfigError(f"{where}.date_formats: at least one strptime format is required")

    counters = _table(data, "counters", where, required=False)
    as_of = _table(data, "as_of", where, required=False)
    featured_t = _table(data, "featured", where, required=False)
    archive = _table(data, "archive", where, required=False)
    text = _table(data, "text", where)

    featured = None
    if featured_t:
        w = f"{where}.featured"
        featured = FeaturedProfile(
            block=_required_css(featured_t, "block", w),
            title=_required_css(featured_t, "title", w),
            link=_css(featured_t, "link", w),
            date=_css(featured_t, "date", w),
            text=_css(featured_t, "text", w),
        )
    article_t = _table(data, "article", where)
    article = ArticleProfile(
        title=_css(article_t, "title", f"{where}.article"),
        date=_css(article_t, "date", f"{where}.article"),
        text=_required_css(article_t, "text", f"{where}.article"),
    )
    end = text.get("end")
    summary_chars = data.get("summary_chars", 500)
    if not isinstance(summary_chars, int) or summary_chars < 40:
        raise ConfigError(f"{where}.summary_chars: must be a whole number of at least 40")
    archive_list = None
    if "item" in archive:
        archive_list = _list_profile(archive, f"{where}.archive")
    return SourceProfile(
        name=str(data.get("name", "unnamed")),
        date_formats=date_formats,
        counter_pattern=_regex(
            counters or {"pattern": r"(?P<days>\d+) days since (?P<subject>.+)"},
            "pattern",
            f"{where}.counters",
            ("days", "subject"),
        ),
        counters=_css(counters, "selector", f"{where}.counters"),
        as_of=_css(as_of, "selector", f"{where}.as_of"),
        as_of_formats=_strings(as_of, "formats", f"{where}.as_of"),
        as_of_pattern=_as_of_pattern(as_of, f"{where}.as_of"),
        list=_list_profile(_table(data, "list", where), f"{where}.list"),
        featured=featured,
        article=article,
        text=TextProfile(
            entry=_regex(text, "entry", f"{where}.text", ("date", "title")),
            end=_regex(text, "end", f"{where}.text", ()) if end else None,
            featured=bool(text.get("featured", False)),
            header=_regexes(text, "header", f"{where}.text"),
            skip=_regexes(text, "skip", f"{where}.text"),
            headings=bool(text.get("headings", False)),
        ),
        archive_url=archive.get("url") or None,
        archive_list=archive_list,
        next_page=_css(archive, "next", f"{where}.archive"),
        archive=_archive_profile(archive, f"{where}.archive"),
        allowed_hosts=_strings(data, "allowed_hosts", where),
        summary_chars=summary_chars,
        raw=data,
    )
