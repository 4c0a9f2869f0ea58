"""`feedbot profile suggest`: a profile written for a page nobody wrote selectors for.

Each page is suggested a profile; the TOML text is saved to a file and loaded
back as an operator would, and that profile must read the page's statements,
counters and date exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.config import FetchSettings
from feeds.errors import ParseError
from feeds.fetch import Fetcher
from feeds.model import Page
from feeds.parse import parse_page
from feeds.profile import load_profile
from feeds.suggest import Suggestion, suggest_profile
from tests.support.fake_source import FakeSource

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
BASE = "https://www.rusemb.org.uk/"
EXPECTED_HOME = json.loads((FIXTURES / "expected-home.json").read_text("utf-8"))

# The fixture site's home page, and markups of the same statements that no profile
# names: an old table layout, inline-styled divs, a CMS with its own classes. The
# golden corpus has three (pages/unknown-*: both counters in one element, apart by a
# run of spaces; the page's date on one line with the clocks); suggest/ holds three
# more, whose header date and counters each sit in an element of their own.
UNKNOWN = FIXTURES / "pages"
OWN = FIXTURES / "suggest"
READ_EXACTLY = {
    "site": FIXTURES / "site" / "index.html",
    "unknown-table": UNKNOWN / "unknown-table.html",
    "unknown-inline": UNKNOWN / "unknown-inline.html",
    "unknown-cms": UNKNOWN / "unknown-cms.html",
    "own-table": OWN / "unknown-table.html",
    "own-inline": OWN / "unknown-inline.html",
    "own-cms": OWN / "unknown-cms.html",
}


def saved_and_loaded(suggestion: Suggestion, tmp_path: Path, body: bytes, url: str) -> Page:
    """What the operator gets: the printed TOML saved to a file, loaded, applied."""
    path = tmp_path / "suggested.toml"
    path.write_text(suggestion.toml, "utf-8")
    profile = load_profile(tomllib.loads(path.read_text("utf-8")), where=str(path))
    return parse_page(body, url, profile)


def home_entries(page: Page, base: str) -> list[dict[str, Any]]:
    """The page's statements in the shape of expected-home.json."""
    got = []
    for entry in page.entries:
        row: dict[str, Any] = {
            "title": entry.title,
            "url_path": urlsplit(entry.url).path if entry.url else None,
            "featured": entry.featured,
        }
        assert entry.url == urljoin(base, str(row["url_path"]))
        if not entry.featured:
            row["published"] = entry.published.isoformat() if entry.published else None
            row["summary"] = entry.summary
        got.append(row)
    return got


def home_counters(page: Page) -> list[dict[str, Any]]:
    return [{"days": c.days, "subject": c.subject, "note": c.note} for c in page.counters]


def assert_reads_home(page: Page, base: str) -> None:
    assert page.as_of == dt.date.fromisoformat(EXPECTED_HOME["as_of"])
    assert home_counters(page) == EXPECTED_HOME["counters"]
    assert [c.since for c in page.counters] == [dt.date(2018, 3, 4), dt.date(2018, 3, 12)]
    assert home_entries(page, base) == EXPECTED_HOME["entries"]


@pytest.mark.parametrize("path", READ_EXACTLY.values(), ids=READ_EXACTLY.keys())
def test_suggested_profile_reads_the_home_page_exactly(path: Path, tmp_path: Path) -> None:
    body = path.read_bytes()
    suggestion = suggest_profile(body, BASE)

    assert suggestion.reader == "selectors"
    assert suggestion.warnings == ()
    assert suggestion.items == 10 and suggestion.featured
    assert_reads_home(suggestion.page, BASE)
    assert_reads_home(saved_and_loaded(suggestion, tmp_path, body, BASE), BASE)
    featured = suggestion.page.entries[0]
    assert featured.content and len(featured.content) > 1000
    # Paragraphs stay apart, whether <p>s, <div>s or <br><br> made them.
    assert featured.content.startswith("Ladies and gentlemen,\n\nFirst of all, I would")
    assert "# CHECK" not in suggestion.toml


def test_both_counters_in_one_element_are_read_apart(tmp_path: Path) -> None:
    """unknown-table: one <font> holds both counters, apart by a run of spaces."""
    body = (UNKNOWN / "unknown-table.html").read_bytes()
    suggestion = suggest_profile(body, BASE)
    profile = load_profile(tomllib.loads(suggestion.toml))

    assert profile.counters is not None
    (element,) = profile.counters(lxml.html.document_fromstring(body))
    assert element.text_content().count("days have passed since") == 2
    assert (
        home_counters(saved_and_loaded(suggestion, tmp_path, body, BASE))
        == (EXPECTED_HOME["counters"])
    )


def test_the_page_date_before_the_clocks_is_read_with_a_pattern(tmp_path: Path) -> None:
    """unknown-inline: "6 July 2020  London 00:43  Moscow 02:43" in one <div>."""
    body = (UNKNOWN / "unknown-inline.html").read_bytes()
    suggestion = suggest_profile(body, BASE)
    as_of = tomllib.loads(suggestion.toml)["as_of"]

    assert "(?P<date>" in as_of["pattern"]
    (element,) = lxml.html.document_fromstring(body).cssselect(as_of["selector"])
    assert "London" in element.text_content()
    page = saved_and_loaded(suggestion, tmp_path, body, BASE)
    assert page.as_of == dt.date(2020, 7, 6)
    assert [c.since for c in page.counters] == [dt.date(2018, 3, 4), dt.date(2018, 3, 12)]


def test_suggested_profile_reads_another_language_and_charset(tmp_path: Path) -> None:
    """The alt layout: a windows-1251 page, a table, ISO dates, a Russian counter."""
    golden = json.loads((FIXTURES / "pages" / "alt-layout.json").read_text("utf-8"))
    body = (FIXTURES / "pages" / "alt-layout.html").read_bytes()
    suggestion = suggest_profile(body, golden["base_url"], "text/html")
    page = saved_and_loaded(suggestion, tmp_path, body, golden["base_url"])

    expect = golden["expect"]
    assert page.as_of == dt.date.fromisoformat(expect["as_of"])
    assert [
        {"days": c.days, "subject": c.subject, "note": c.note, "since": c.since.isoformat()}
        for c in page.counters
        if c.since
    ] == expect["counters"]
    assert [
        {
            "id": e.id,
            "title": e.title,
            "published": e.published.isoformat() if e.published else None,
            "summary": e.summary,
            "url": e.url,
            "featured": e.featured,
        }
        for e in page.entries
    ] == expect["entries"]


def test_the_profile_is_commented_toml_an_operator_can_edit() -> None:
    suggestion = suggest_profile(READ_EXACTLY["own-table"].read_bytes(), BASE)
    text = suggestion.toml
    data = tomllib.loads(text)

    assert {
        "name",
        "date_formats",
        "as_of",
        "counters",
        "featured",
        "list",
        "article",
        "text",
    } <= set(data)
    assert data["date_formats"][0] == "%d.%m.%Y"
    assert data["archive"]["url"] == "/fnapr/"
    # Every table says what it is for, and the file opens with how to check it.
    headers = [line for line in text.splitlines() if line.startswith("[")]
    assert headers and all("#" in line for line in headers)
    assert text.startswith("# Source profile suggested")
    assert "feedbot parse" in text


def test_the_summary_says_what_the_profile_reads() -> None:
    suggestion = suggest_profile(READ_EXACTLY["own-cms"].read_bytes(), BASE)
    lines = suggestion.summary_lines(first=3)

    assert lines[0] == "statements: 11 (10 in the list, 1 featured)"
    assert "as of: 2020-07-06" in lines
    assert "counters: 2" in lines
    assert "  855 days since the Salisbury incident" in lines
    assert f"  2020-06-24  {EXPECTED_HOME['entries'][1]['title']}" in lines
    assert "next page: https://www.rusemb.org.uk/fnapr/page/2/" in lines
    data = json.loads(json.dumps(suggestion.as_json()))
    assert data["statements"] == 11 and data["featured"] is True
    assert data["entries"][1]["published"] == "2020-06-24"
    assert tomllib.loads(data["profile"])["list"]["item"]


def test_the_profile_follows_a_numbered_pager_page_by_page() -> None:
    """``Pages: ««« :: 1 2 :: »»»``: the next page is the number after the current
    one; where the block ends, ``»»»`` leads on; the last page has none."""
    archive = FIXTURES / "archive-real" / "apress_arh"
    base = "https://www.rusemb.org.uk/apress_arh/&start={}&ps=10&ppp=15"
    first = (archive / "&start=1&ps=10&ppp=15.html").read_bytes()
    profile = load_profile(tomllib.loads(suggest_profile(first, base.format(1)).toml))

    def next_of(start: int) -> str | None:
        body = (archive / f"&start={start}&ps=10&ppp=15.html").read_bytes()
        page = parse_page(body, base.format(start), profile)
        assert len(page.entries) == (6 if start == 31 else 10)
        return page.next_url

    assert [next_of(n) for n in (1, 11, 21, 31)] == [
        base.format(11),
        base.format(21),
        base.format(31),
        None,
    ]


def test_a_page_fetched_from_the_source_gets_links_on_its_own_host() -> None:
    """The command's path: the real fetcher reads the page, the suggestion reads it back."""
    with FakeSource() as source:
        source.set_body("/", READ_EXACTLY["own-inline"].read_bytes())
        fetcher = Fetcher(FetchSettings(), sleep=lambda _s: None)
        try:
            response = fetcher.get(source.url + "/")
        finally:
            fetcher.close()
    suggestion = suggest_profile(response.body, response.url, response.content_type)

    assert_reads_home(suggestion.page, response.url)
    assert all(str(e.url).startswith(source.url + "/fnapr/") for e in suggestion.page.entries)


@pytest.mark.parametrize(
    "body",
    [
        (FIXTURES / "pages" / "layout-changed.html").read_bytes(),  # one dated card only
        b"<html><body><ul><li><a href='/a'>About us</a></li><li><a href='/b'>Contacts</a></li>"
        b"<li><a href='/c'>Visas</a></li></ul><p>06.07.2020</p></body></html>",
        b"<html><body><ul><li>24.06.2020 No link here</li><li>18.06.2020</li></ul></body></html>",
    ],
    ids=["one-item", "links-without-dates", "dates-without-links"],
)
def test_a_page_without_a_repeated_dated_block_is_a_clear_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="no repeated block with a date and a link"):
        suggest_profile(body, BASE)


def test_month_first_dates_are_read_month_first_when_one_of_them_says_so() -> None:
    """06/01/2020 alone could be either; 06/13/2020 on the same list settles it."""
    items = "".join(
        f'<li><span>{d}</span> <a href="/s/{n}">Statement number {n} on the matter</a></li>'
        for n, d in enumerate(["06/13/2020", "06/01/2020", "05/30/2020"])
    )
    page = suggest_profile(f"<html><body><ul>{items}</ul></body></html>".encode(), BASE).page

    assert [e.published for e in page.entries] == [
        dt.date(2020, 6, 13),
        dt.date(2020, 6, 1),
        dt.date(2020, 5, 30),
    ]


def test_dates_without_an_element_of_their_own_are_read_from_the_items_text(
    tmp_path: Path,
) -> None:
    """``<li>24.06.2020 - <a>Title</a> …</li>``: no element holds the date alone; the
    profile's ``list.date_pattern`` reads it out of the item's text."""
    dates = ["24.06.2020 -", "18.06.2020 –", "(17.06.2020)"]
    items = "".join(
        f'<li>{d} <a href="/s/{n}">Statement number {n} on the matter</a>'
        f"<p>What statement {n} says, at some length.</p></li>"
        for n, d in enumerate(dates)
    )
    body = f"<html><body><ul>{items}</ul></body></html>".encode()
    suggestion = suggest_profile(body, BASE)

    assert suggestion.warnings == ()
    assert "date_pattern" in tomllib.loads(suggestion.toml)["list"]
    assert [
        (e.title, e.published, e.summary)
        for e in saved_and_loaded(suggestion, tmp_path, body, BASE).entries
    ] == [
        (f"Statement number {n} on the matter", day, f"What statement {n} says, at some length.")
        for n, day in enumerate([dt.date(2020, 6, 24), dt.date(2020, 6, 18), dt.date(2020, 6, 17)])
    ]


def test_a_plain_text_capture_is_refused_with_a_reason() -> None:
    capture = (FIXTURES / "seeds" / "statements-page-2020-07-06.txt").read_bytes()
    with pytest.raises(ParseError, match="not HTML"):
        suggest_profile(capture, BASE, "text/plain; charset=utf-8")


# --- generated list pages ---------------------------------------------------------------

WORDS = (
    *("embassy", "statement", "minister", "press", "council", "foreign", "affairs"),
    *("comment", "briefing", "note", "visit", "talks", "relations", "treaty", "security"),
    *("meeting", "cooperation", "trade", "report", "answer"),
)
DATE_SHAPES = ("%d.%m.%Y", "%Y-%m-%d", "%d %B %Y", "%d/%m/%Y")
names = st.from_regex(r"[a-z][a-z]{2,7}(-[a-z]{2,5})?", fullmatch=True)


def sentence(min_words: int, max_words: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(WORDS), min_size=min_words, max_size=max_words).map(
        lambda w: " ".join(w).capitalize()
    )


@dataclass(frozen=True)
class Statement:
    date: dt.date
    title: str
    lead: str  # "" when the item shows none
    href: str


@dataclass(frozen=True)
class Header:
    html: str
    as_of: dt.date | None
    counters: list[tuple[int, str, str | None]]  # days, subject, note


AS_OF_SHAPES = ("%d %B %Y", "%A, %d %B %Y", "%d %b %Y")
# A run of spaces, non-breaking or not, as a page lines things up on one line.
GAPS = st.lists(st.sampled_from([" ", "&nbsp;", "\xa0"]), min_size=2, max_size=40).map("".join)


@st.composite
def headers(draw: st.DrawFn) -> Header:
    """A page's header: its date (alone, or before the clocks) and two day counters
    (in elements of their own, in one apart by a gap, or in one on two lines)."""
    as_of = draw(st.one_of(st.none(), st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31))))
    parts = []
    if as_of is not None:
        shown = as_of.strftime(draw(st.sampled_from(AS_OF_SHAPES)))
        if draw(st.booleans()):
            shown += f"{draw(GAPS)}London 09:15{draw(GAPS)}Moscow 12:15"
        parts.append(f"<div>{shown}</div>")
    counters: list[tuple[int, str, str | None]] = [
        (
            draw(st.integers(1, 9999)),
            "the " + draw(sentence(2, 5)).lower(),
            draw(st.one_of(st.none(), sentence(2, 6).map(str.lower))),
        )
        for _ in range(draw(st.sampled_from([0, 2])))
    ]
    texts = [
        f"{days} days have passed since {subject}" + (f" - {note}" if note else "")
        for days, subject, note in counters
    ]
    if texts:
        joint = draw(st.sampled_from(["elements", "gap", "br"]))
        if joint == "elements":
            parts.append("<div>" + "".join(f"<p>{t}</p>" for t in texts) + "</div>")
        else:
            between = draw(GAPS) if joint == "gap" else "<br>"
            parts.append(f"<div><font>{between.join(texts)}</font></div>")
    return Header("".join(parts), as_of, counters)


@st.composite
def list_pages(draw: st.DrawFn) -> tuple[str, list[Statement]]:
    n = draw(st.integers(min_value=2, max_value=8))
    statements = [
        Statement(
            date=draw(st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31))),
            title=draw(sentence(3, 10)),
            lead=draw(st.one_of(sentence(6, 30), st.just("")) if k else sentence(6, 30)),
            href=f"/{draw(names)}/{k}",
        )
        for k in range(n)
    ]
    shape = draw(st.sampled_from(DATE_SHAPES))
    # Distinct class names (or none) for the list, the item and each field.
    classes = draw(st.lists(names, min_size=5, max_size=5, unique=True))
    use = draw(st.lists(st.booleans(), min_size=5, max_size=5))
    cls = [f' class="{c}"' if u else "" for c, u in zip(classes, use, strict=True)]
    layout = draw(st.sampled_from(["ul", "div", "section", "table"]))
    date_tag = draw(st.sampled_from(["span", "time", "em", "small", "div"]))
    lead_tag = draw(st.sampled_from(["p", "div", "span"]))
    heading = draw(st.sampled_from(["", "h2", "h3", "b", "strong"]))
    date_first = draw(st.booleans())
    more_link = draw(st.booleans())  # a "more" link after the lead
    trailer = draw(st.booleans())  # a same-tag sibling after the items: "all messages"
    # "24.06.2020 - <a>Title</a>": the date is the item's own text, not an element.
    in_text = layout != "table" and date_first and draw(st.booleans())

    def item(s: Statement) -> str:
        date = f"<{date_tag}{cls[2]}>{s.date.strftime(shape)}</{date_tag}>"
        if in_text:
            date = s.date.strftime(shape)
        link = f'<a href="{s.href}">{escape(s.title)}</a>'
        if heading:
            link = f"<{heading}{cls[3]}>{link}</{heading}>"
        lead = f"<{lead_tag}{cls[4]}>{escape(s.lead)}</{lead_tag}>" if s.lead else ""
        if more_link:
            lead += f'<a href="{s.href}">more</a>'
        if layout == "table":
            cells = [f"<td>{date}</td>", f"<td>{link}<br>{lead}</td>"]
            return f"<tr{cls[1]}>{''.join(cells if date_first else cells[::-1])}</tr>"
        tag = {"ul": "li", "div": "div", "section": "article"}[layout]
        inner = date + " - " + link if date_first else link + " " + date
        return f"<{tag}{cls[1]}>{inner}{lead}</{tag}>"

    items = "\n".join(item(s) for s in statements)
    if layout == "table":
        items = "<tr><th>Date</th><th>Statement</th></tr>\n" + items
    if trailer:
        tag = {"ul": "li", "div": "div", "section": "article", "table": "tr"}[layout]
        cell = "<td></td><td>" if layout == "table" else ""
        items += f'\n<{tag}>{cell}<a href="/archive/">all messages</a></{tag}>'
    listing = f"<{layout}{cls[0]}>\n{items}\n</{layout}>"
    html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>x</title></head><body>"
        "<div><a href='/'>Home</a> <a href='/about'>About</a> <a href='/visas'>Visas</a></div>"
        f"<div>{listing}</div><div><a href='/contact'>Contact</a></div></body></html>"
    )
    return html, statements


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(list_pages(), headers())
def test_a_generated_list_page_reads_back_exactly_its_statements(
    generated: tuple[str, list[Statement]], header: Header
) -> None:
    html, statements = generated
    html = html.replace("<body>", f"<body>{header.html}", 1)
    base = "http://example.test/news/"
    suggestion = suggest_profile(html.encode("utf-8"), base)

    assert suggestion.warnings == ()
    page = parse_page(html.encode("utf-8"), base, load_profile(tomllib.loads(suggestion.toml)))
    assert [(e.title, e.published, e.summary, e.url) for e in page.entries] == [
        (s.title, s.date, s.lead, urljoin(base, s.href)) for s in statements
    ]
    assert page.as_of == header.as_of
    assert [(c.days, c.subject, c.note) for c in page.counters] == header.counters
    if header.as_of is not None:
        assert [c.since for c in page.counters] == [
            header.as_of - dt.timedelta(days=days) for days, _, _ in header.counters
        ]
