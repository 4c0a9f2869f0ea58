"""HTML in markup no profile names is read as a browser lays it out.

When the profile's selectors find no statement, or clearly fewer than the page
shows, the page is laid out as text and read with the text rules; each
statement gets its link by its title from the page's own anchors.
"""

from __future__ import annotations

import datetime as dt
import html
import tomllib
from collections.abc import Callable
from pathlib import Path

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.config import FetchSettings
from feeds.errors import ParseError
from feeds.fetch import Fetcher
from feeds.layout import layout_lines
from feeds.parse import explain_page, parse_article, parse_page
from feeds.profile import load_profile
from tests.support.fake_source import FakeSource

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PROFILE = load_profile(
    tomllib.loads((ROOT / "config" / "sources" / "embassy-uk.toml").read_text("utf-8"))
)
BASE = "https://www.rusemb.org.uk/"
HEADER = (
    "<div>6 July 2020</div><div>Moscow: 02:43 London: 00:43</div>"
    "<div>855 days have passed since the Salisbury incident - no answer</div>"
)


def lines_of(markup: str) -> list[str]:
    return layout_lines(lxml.html.document_fromstring(markup))


def test_layout_breaks_lines_as_a_browser_does() -> None:
    markup = (
        "<html><head><title>not shown</title><style>p {}</style></head><body>"
        "<div>one <b>line</b>  with\n inline   parts</div>"
        "<p>first<br>second</p>"
        "<table><tr><td>24.06.2020</td><td><a href='/x'>Title</a></td></tr></table>"
        "<script>var hidden = 1;</script><div style='display: none'>hidden</div>"
        "<ul><li>item</li><li>item two</li></ul>"
        "<div>wide&nbsp;&nbsp;&nbsp;gap</div></body></html>"
    )
    assert lines_of(markup) == [
        "one line with inline parts",
        "first",
        "second",
        "24.06.2020\tTitle",
        "item",
        "item two",
        "wide\xa0\xa0\xa0gap",  # non-breaking spaces stay: a page lines up columns with them
    ]


def _page(body: str) -> bytes:
    return f"<!DOCTYPE html><html><body>{HEADER}{body}</body></html>".encode()


def test_titles_find_their_links_whatever_the_case_spacing_and_punctuation() -> None:
    body = (
        "<h2><a href='featured/1'>The  Featured: statement</a></h2><p>Its text.</p>"
        "<div>24.06.2020 - Embassy’s comment on a visit</div><p>Lead.</p>"
        "<div>23.06.2020 - A statement with no link</div>"
        "<p>Related: <a href='https://www.rusemb.org.uk/fnapr/9#top'>EMBASSY'S COMMENT ON A VISIT</a>"
        " <a href='/fnapr/8'>the featured statement</a></p>"
    )
    page = parse_page(_page(body), BASE + "news/", PROFILE)
    assert page.reader == "text-layout"
    assert [(e.title, e.url, e.featured) for e in page.entries] == [
        ("The Featured: statement", BASE + "news/featured/1", True),  # relative to the page
        ("Embassy’s comment on a visit", BASE + "fnapr/9", False),  # fragment dropped
        ("A statement with no link", None, False),
    ]
    assert page.entries[2].id.startswith("tag:")  # no link: the date-and-title id


def test_links_to_other_hosts_are_never_used() -> None:
    body = (
        "<div>24.06.2020 - <a href='https://mirror.example.net/fnapr/1'>Mirrored statement</a></div>"
        "<div>23.06.2020 - <a href='//elsewhere.example/fnapr/2'>Another statement</a></div>"
        "<div>22.06.2020 - <a href='/fnapr/3'>A third statement</a></div>"
    )
    page, notes = explain_page(_page(body), BASE, PROFILE)
    assert [e.url for e in page.entries] == [None, None, BASE + "fnapr/3"]
    assert "2 links to other hosts not used" in notes


def test_two_statements_of_one_title_get_their_own_links_in_page_order() -> None:
    body = (
        "<h2><a href='/fnapr/5'>Embassy comment</a></h2><p>The featured text.</p>"
        "<div>24.06.2020 - <a href='/fnapr/5'>Embassy comment</a></div>"
        "<div>23.06.2020 - <a href='/fnapr/4'>Embassy comment</a></div>"
    )
    page = parse_page(_page(body), BASE, PROFILE)
    # The featured statement is listed again (one statement); the older one is another.
    assert [(e.url, e.published, e.featured) for e in page.entries] == [
        (BASE + "fnapr/5", dt.date(2020, 6, 24), True),
        (BASE + "fnapr/4", dt.date(2020, 6, 23), False),
    ]


def test_a_featured_statement_keeps_the_link_its_title_carries() -> None:
    page = parse_page((FIXTURES / "pages" / "unknown-cms.html").read_bytes(), BASE, PROFILE)
    featured = page.entries[0]
    assert featured.featured and featured.url == BASE + "fnapr/6941"


def test_the_selectors_reading_stands_when_it_finds_what_the_page_shows() -> None:
    page, notes = explain_page((FIXTURES / "site" / "index.html").read_bytes(), BASE, PROFILE)
    assert (page.reader, page.kind, len(page.entries)) == ("selectors", "list", 11)
    assert notes == ["selectors: 11 statements, 2 counters"]


def test_fewer_than_half_of_the_visible_items_sends_the_page_to_the_text_reader() -> None:
    # The profile's list matches one item; the page shows four dated statements.
    rows = "".join(
        f"<div>{day:02d}.06.2020 - <a href='/fnapr/{day}'>Statement of the {day}th</a></div>"
        for day in (24, 23, 22)
    )
    body = (
        "<ul class='news-list'><li class='news-item'><span class='news-date'>25.06.2020</span>"
        " - <a class='news-title' href='/fnapr/25'>Statement of the 25th</a></li></ul>" + rows
    )
    page, notes = explain_page(_page(body), BASE, PROFILE)
    assert page.reader == "text-layout"
    assert [e.url for e in page.entries] == [BASE + f"fnapr/{d}" for d in (25, 24, 23, 22)]
    assert "the page shows 4 dated items: reading it as laid-out text" in notes


def test_a_statement_page_in_unknown_markup() -> None:
    body = (FIXTURES / "pages" / "statement-page-html.html").read_bytes()
    url = BASE + "fnapr/7012"
    page = parse_page(body, url, PROFILE)
    assert (page.kind, page.reader) == ("statement", "text-layout")
    article = parse_article(body, url, PROFILE)
    assert article.published == dt.date(2021, 7, 5)
    assert article.title == page.entries[0].title
    assert article.content.startswith("The Embassy has learned")
    assert article.content.count("\n\n") == 1  # two paragraphs, as on the page


def test_an_article_page_with_no_statement_is_an_error() -> None:
    with pytest.raises(ParseError, match="found no article text"):
        parse_article(_page("<p>Nothing dated here.</p>"), BASE + "fnapr/1", PROFILE)


def test_the_fixture_article_page_still_reads_by_its_selectors() -> None:
    page = parse_page((FIXTURES / "site" / "fnapr" / "6941.html").read_bytes(), BASE, PROFILE)
    assert (page.kind, page.reader) == ("statement", "selectors")
    assert page.entries[0].published == dt.date(2020, 6, 19)


def test_an_unknown_markup_served_over_http_reads_with_the_servers_links() -> None:
    settings = FetchSettings(allow_private_addresses=True, retries=0, article_delay=0)
    with FakeSource() as source:
        source.set_body("/", (FIXTURES / "pages" / "unknown-table.html").read_bytes())
        fetcher = Fetcher(settings, sleep=lambda _s: None)
        try:
            response = fetcher.get(source.url + "/")
        finally:
            fetcher.close()
    page = parse_page(response.body, response.url, PROFILE, response.content_type)
    assert page.reader == "text-layout" and len(page.entries) == 11
    assert page.entries[1].url == source.url + "/fnapr/6940"
    assert all(e.url and e.url.startswith(source.url + "/fnapr/") for e in page.entries)


# -- properties ----------------------------------------------------------------

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzабвгдеж", min_size=2, max_size=8)
TITLE = st.lists(WORD, min_size=2, max_size=8).map(lambda w: " ".join(w).capitalize())
ITEMS = st.lists(
    st.tuples(st.dates(dt.date(2005, 1, 1), dt.date(2030, 1, 1)), TITLE, TITLE),
    min_size=2,
    max_size=6,
    unique_by=lambda item: item[1],
)
Item = tuple[dt.date, str, str]


def _table(items: list[Item]) -> str:
    rows = "".join(
        f"<tr><td><font size=1>{d:%d.%m.%Y}</font></td><td><a href='/s/{n}'><b>{html.escape(t)}"
        f"</b></a><br><font>{html.escape(lead)}</font></td></tr>"
        for n, (d, t, lead) in enumerate(items)
    )
    return f"<table>{rows}</table>"


def _date_below_title(items: list[Item]) -> str:
    return "".join(
        f"<article><h2><a href='/s/{n}'>{html.escape(t)}</a></h2><time>{d:%d.%m.%Y}</time>"
        f"<div><p>{html.escape(lead)}</p></div></article>"
        for n, (d, t, lead) in enumerate(items)
    )


def _date_above_title(items: list[Item]) -> str:
    return "".join(
        f"<section><div>{d:%d.%m.%Y}</div><h3><a href='/s/{n}'>{html.escape(t)}</a></h3>"
        f"<p>{html.escape(lead)}</p></section>"
        for n, (d, t, lead) in enumerate(items)
    )


MARKUPS: list[Callable[[list[Item]], str]] = [_table, _date_below_title, _date_above_title]


@settings(max_examples=60, deadline=None)
@given(ITEMS, st.sampled_from(MARKUPS))
def test_any_list_in_any_of_these_markups_reads_back_with_its_links(
    items: list[Item], markup: Callable[[list[Item]], str]
) -> None:
    page = parse_page(_page(markup(items)), BASE, PROFILE)
    assert page.reader == "text-layout"
    assert [(e.published, e.title, e.summary, e.url) for e in page.entries] == [
        (d, t, lead, f"{BASE}s/{n}") for n, (d, t, lead) in enumerate(items)
    ]
