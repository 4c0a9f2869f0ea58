"""The text rules: a page read as lines of text, the way a person reads it.

The lines come from a plain-text capture or from an HTML page laid out as a
browser shows it (``feeds.layout``). The profile's ``[text]`` section says what
a dated statement's line looks like and which lines are never a statement; the
shapes themselves are those of the real site (2014–2022):

- a list page: the header (the page's date, clocks, consular lines, day
  counters, one line or several), optionally a featured statement (its title,
  then its text), then the dated statements — ``DD.MM.YYYY - Title`` (or date
  and title in two columns), each followed by its lead — with section headings
  and a pager among them;
- a list whose dates stand on lines of their own, above or below each title
  (which one is told by the page's links when there are any);
- one statement's page: a ``DD.MM.YYYY`` line, the title, then the text.

``read_lines`` gives a ``Page`` (``kind`` "list" or "statement"), or None when
the lines are neither. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from feeds.entries import (
    group_counters,
    make_entry,
    merge_duplicates,
    parse_counter,
    parse_date,
    with_text,
)
from feeds.model import Counter, Entry, Page
from feeds.profile import SourceProfile
from feeds.text import clean, clean_paragraphs

LinkFor = Callable[[str], "str | None"]

# Dropped as clean() drops them; other controls Python counts as space stay spaces.
_INVISIBLE = re.compile(
    "[\u200b-\u200d\u2060\ufeff\u00ad\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufffe\uffff]"
)
# A column gap: a tab (a table cell's edge) or a run of two or more spaces.
_GAP = re.compile(r"\s*\t\s*|\s{2,}")
_ONE_SPACE = re.compile(r"[^\S\t]")
# Words an as-of date may be followed by on its line: at most this many tried.
_DATE_WORDS = 5
# Longer than any date a profile reads: not worth a strptime (they are slow to fail).
_DATE_CHARS = 40


def _date(text: str, formats: tuple[str, ...]) -> dt.date | None:
    if len(text) > _DATE_CHARS or not any(c.isdigit() for c in text):
        return None
    return parse_date(text, formats)


def columns(line: str) -> str:
    """A line with its column gaps as single tabs and every other space one space."""
    line = _INVISIBLE.sub("", line.replace("\r", ""))
    return _ONE_SPACE.sub(" ", _GAP.sub("\t", line)).strip()


@dataclass
class _Line:
    text: str  # cleaned: one line, single spaces
    cols: str  # with column gaps kept as tabs
    entry: re.Match[str] | None = None  # "DD.MM.YYYY - Title"
    date: dt.date | None = None  # the whole line is a date in the profile's formats
    end: bool = False
    header: bool = False
    skip: bool = False
    counters: list[str] = field(default_factory=list)  # the counter texts on the line
    as_of: dt.date | None = None  # the line carries the page's own date

    @property
    def is_text(self) -> bool:
        return not (
            self.entry
            or self.date
            or self.end
            or self.header
            or self.skip
            or self.counters
            or self.as_of
        )


def _is_heading(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.upper() and text != text.lower()


def _counter_texts(line: _Line, profile: SourceProfile) -> list[str]:
    # A capture may lay several counters out on one line, in columns. A column
    # that does not start a counter continues the one before it: a wide gap
    # inside one counter's words must not cut it short.
    parts = group_counters(
        line.cols.split("\t"),
        lambda column: bool(
            profile.counter_pattern.search(column) and parse_counter(column, profile, None)
        ),
    )
    if len(parts) >= 2:
        return parts
    whole = profile.counter_pattern.search(line.text)
    return [line.text] if whole and parse_counter(line.text, profile, None) else []


def _as_of(line: _Line, profile: SourceProfile) -> dt.date | None:
    """The page's own date: the whole line, one column of it, or its first words
    when the rest of the line is header (clocks) or nothing."""
    formats = profile.as_of_formats
    if not formats:
        return None
    for part in (line.text, *line.cols.split("\t")):
        day = _date(part, formats)
        if day:
            return day
    words = line.text.split(" ")
    for n in range(1, min(len(words), _DATE_WORDS) + 1):
        day = _date(" ".join(words[:n]), formats)
        rest = " ".join(words[n:]).strip(" ,;|-–—")
        if day and (not rest or any(p.search(rest) for p in profile.text.header)):
            return day
    return None


def classify(raw: str, profile: SourceProfile) -> _Line | None:
    """What one line is to the text rules; None for a blank line."""
    cols = columns(raw)
    text = cols.replace("\t", " ")  # columns() left nothing else for clean() to do
    if not text:
        return None
    tp = profile.text
    line = _Line(text=text, cols=cols)
    line.entry = tp.entry.match(cols) or tp.entry.match(text)
    if line.entry:
        return line
    line.date = _date(text, profile.date_formats)
    if line.date:
        return line
    line.end = bool(tp.end and tp.end.match(text))
    line.header = any(p.search(text) for p in tp.header)
    line.skip = any(p.search(text) for p in tp.skip) or (tp.headings and _is_heading(text))
    if line.end or line.header or line.skip:
        return line
    line.counters = _counter_texts(line, profile)
    if not line.counters:
        line.as_of = _as_of(line, profile)
    return line


@dataclass
class _Item:
    start: int  # index of the item's first line
    title: str
    published: dt.date | None
    lead: list[str]
    link_text: str  # the text the page's anchor for it may carry


def _run_of_text(lines: list[_Line], start: int, stop: int) -> list[str]:
    """Text lines from ``start`` until ``stop`` or the first line that is not text."""
    out = []
    for line in lines[start:stop]:
        if not line.is_text:
            break
        out.append(line.text)
    return out


def _entry_items(lines: list[_Line], profile: SourceProfile) -> list[_Item]:
    starts = [i for i, line in enumerate(lines) if line.entry]
    items = []
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(lines)
        match = lines[start].entry
        assert match is not None
        title = clean(match.group("title"))
        if not title:
            continue
        items.append(
            _Item(
                start=start,
                title=title,
                published=parse_date(match.group("date"), profile.date_formats),
                lead=_run_of_text(lines, start + 1, stop),
                link_text=lines[start].text,
            )
        )
    return items


def _date_line_items(lines: list[_Line], dates: list[int], above: bool) -> list[_Item]:
    """Dates on lines of their own: the title is the line below (``above``: the date
    stands above its title) or the line above; the lead follows."""
    items = []
    for n, d in enumerate(dates):
        stop = dates[n + 1] if n + 1 < len(dates) else len(lines)
        if above:
            run = _run_of_text(lines, d + 1, stop)
            if not run:
                continue
            items.append(_Item(d, run[0], lines[d].date, run[1:], run[0]))
            continue
        floor = dates[n - 1] if n else -1
        if d - 1 <= floor or not lines[d - 1].is_text:
            continue
        # The next item's title is the last text line before its date.
        lead_stop = stop - 1 if n + 1 < len(dates) else stop
        title = lines[d - 1].text
        items.append(
            _Item(d - 1, title, lines[d].date, _run_of_text(lines, d + 1, lead_stop), title)
        )
    return items


def _dates_above_titles(lines: list[_Line], first_date: int, is_link: LinkFor | None) -> bool:
    """Whether dates stand above their titles: the page's links say which neighbour
    of the first date is a title; without links, above (the real site's shape)."""
    if is_link is None:
        return True
    after = next((line for line in lines[first_date + 1 :] if line.is_text), None)
    before = lines[first_date - 1] if first_date and lines[first_date - 1].is_text else None
    if after is not None and is_link(after.text):
        return True
    return not (before is not None and is_link(before.text))


@dataclass
class _Header:
    as_of: dt.date | None
    counters: list[Counter]
    last_mark: int  # index of the header's last line, -1 when the page shows no header


def _header(lines: list[_Line], stop: int, profile: SourceProfile) -> _Header:
    as_of = None
    last_mark = -1
    texts: list[str] = []
    for i, line in enumerate(lines[:stop]):
        day = line.as_of or (_date(line.text, profile.as_of_formats) if line.date else None)
        if day and as_of is None:
            as_of = day
        if day or line.header or line.counters:
            last_mark = i
        texts += line.counters
    counters = [c for c in (parse_counter(t, profile, as_of) for t in texts) if c is not None]
    return _Header(as_of, counters, last_mark)


def _featured(
    lines: list[_Line], start: int, stop: int, profile: SourceProfile, link_for: LinkFor
) -> Entry | None:
    """The featured statement between the header and the first dated item: its
    title, then its text; headings and the like among them are passed over."""
    paragraphs: list[str] = []
    published = None
    for line in lines[start:stop]:
        if line.end:
            break
        if line.date and paragraphs and published is None:
            published = line.date
        elif line.is_text:
            paragraphs.append(line.text)
    if not paragraphs:
        return None
    title = paragraphs[0]
    return with_text(title, clean_paragraphs(paragraphs[1:]), link_for(title), published, profile)


def _statement(
    lines: list[_Line], d: int, profile: SourceProfile, page_url: str | None
) -> Entry | None:
    """One statement's page: its date line, the title below it, then the text."""
    paragraphs = []
    for line in lines[d + 1 :]:
        if line.end:
            break
        if line.is_text:
            paragraphs.append(line.text)
    if not paragraphs:
        return None
    title = paragraphs[0]
    return with_text(
        title, clean_paragraphs(paragraphs[1:]), page_url, lines[d].date, profile, featured=False
    )


def _no_link(_: str) -> str | None:
    return None


def count_dated_lines(raw_lines: list[str], profile: SourceProfile) -> int:
    """How many dated items a reader sees: ``DD.MM.YYYY - Title`` lines and lines
    that are a date alone."""
    count = 0
    for raw in raw_lines:
        cols = columns(raw)
        text = cols.replace("\t", " ")
        dated = profile.text.entry.match(cols) or profile.text.entry.match(text)
        count += bool(dated or _date(text, profile.date_formats))
    return count


def read_lines(
    raw_lines: list[str],
    profile: SourceProfile,
    link_for: LinkFor | None = None,
    page_url: str | None = None,
    reader: str = "plain-text",
) -> Page | None:
    """The page the lines show, or None when they show neither a list of dated
    statements nor one statement. ``link_for`` finds a title's link (HTML pages);
    ``page_url`` is a statement page's own address."""
    lines = [line for line in (classify(r, profile) for r in raw_lines) if line is not None]
    find = link_for or _no_link
    notes: list[str] = []

    items = _entry_items(lines, profile)
    dates = [i for i, line in enumerate(lines) if line.date]
    if items:
        notes.append(f"{len(items)} dated lines ('DD.MM.YYYY - Title' or in two columns)")
    elif len(dates) >= 2:
        above = _dates_above_titles(lines, dates[0], link_for)
        items = _date_line_items(lines, dates, above)
        where = "above" if above else "below"
        notes.append(f"{len(items)} dated items, each date on its own line {where} its title")
    elif len(dates) == 1:
        header = _header(lines, dates[0], profile)
        statement = _statement(lines, dates[0], profile, page_url)
        if statement is not None:
            notes.append("one statement's page: a date line, its title, then its text")
            return Page(
                as_of=header.as_of,
                counters=header.counters,
                entries=[statement],
                kind="statement",
                reader=reader,
                notes=notes,
            )
    if not items:
        return None  # a header and some text is no list: a featured statement needs one
    first = items[0].start
    header = _header(lines, first, profile)
    entries: list[Entry] = []
    if profile.text.featured and header.last_mark >= 0:
        featured = _featured(lines, header.last_mark + 1, first, profile, find)
        if featured is not None:
            entries.append(featured)
            notes.append("a featured statement between the header and the list")
    for item in items:
        url = find(item.title) or find(item.link_text)
        entries.append(make_entry(item.title, item.published, clean(" ".join(item.lead)), url))
    skipped = sum(1 for line in lines if line.skip or line.header)
    notes.append(f"{skipped} lines never a statement (headings, pager, clocks, consular lines)")
    if link_for is not None:
        linked = sum(1 for e in entries if e.url)
        notes.append(f"{linked} of {len(entries)} statements linked by their titles")
    return Page(
        as_of=header.as_of,
        counters=header.counters,
        entries=merge_duplicates(entries),
        kind="list",
        reader=reader,
        notes=notes,
    )
