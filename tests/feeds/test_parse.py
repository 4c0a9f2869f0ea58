"""The source profile reads pages into statements and counters.

Golden files: every ``tests/fixtures/pages/NAME.html`` (or ``NAME.txt``, a text
capture) is read with the profile its ``NAME.json`` names (default: the shipped
embassy profile) and must give exactly the ``expect`` document — read by the
``reader`` and as the ``kind`` of page it names, when it names them — or fail
with the ``error`` text. A new page shape is a new file pair, not new test code.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.errors import ConfigError, ParseError
from feeds.ids import statement_id
from feeds.model import page_json
from feeds.parse import parse_article, parse_page
from feeds.profile import SourceProfile, load_profile
from feeds.text import clean, fold

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PAGES = FIXTURES / "pages"
BASE = "https://www.rusemb.org.uk/"


def profile_from(path: Path) -> SourceProfile:
    return load_profile(tomllib.loads(path.read_text("utf-8")))


PROFILE = profile_from(ROOT / "config" / "sources" / "embassy-uk.toml")


# The fixture's home page, and the same page in markups no profile names (read
# as laid-out text, links found by title).
HOME_PAGES = ["site/index.html", *(f"pages/unknown-{n}.html" for n in ("table", "inline", "cms"))]


@pytest.mark.parametrize("home", HOME_PAGES)
def test_home_page_reads_as_expected(home: str) -> None:
    expected = json.loads((FIXTURES / "expected-home.json").read_text("utf-8"))
    page = parse_page((FIXTURES / home).read_bytes(), BASE, PROFILE)

    assert page.as_of == dt.date.fromisoformat(expected["as_of"])
    got_counters = [{"days": c.days, "subject": c.subject, "note": c.note} for c in page.counters]
    assert got_counters == expected["counters"]
    assert [c.since for c in page.counters] == [dt.date(2018, 3, 4), dt.date(2018, 3, 12)]
    assert len(page.entries) == len(expected["entries"]) == 11
    for entry, want in zip(page.entries, expected["entries"], strict=True):
        assert entry.title == want["title"]
        assert entry.url == BASE.rstrip("/") + want["url_path"]
        assert entry.id == entry.url
        assert entry.featured == want["featured"]
        if "published" in want:
            assert entry.published == dt.date.fromisoformat(want["published"])
        if "summary" in want:
            assert entry.summary == want["summary"]
    featured = page.entries[0]
    assert featured.content and featured.content.startswith("Ladies and gentlemen,\n\nFirst of all")
    assert featured.summary.endswith("…") and len(featured.summary) <= PROFILE.summary_chars


def test_text_capture_gives_the_same_statements_and_counters() -> None:
    from_html = parse_page((FIXTURES / "site" / "index.html").read_bytes(), BASE, PROFILE)
    capture = FIXTURES / "seeds" / "statements-page-2020-07-06.txt"
    from_text = parse_page(capture.read_bytes(), BASE, PROFILE)

    assert from_text.as_of == from_html.as_of
    assert from_text.counters == from_html.counters
    assert len(from_text.entries) == 11

    def visible(e: Any) -> tuple[Any, ...]:
        return (e.title, e.published, e.summary, e.featured, e.content)

    assert [visible(e) for e in from_text.entries] == [visible(e) for e in from_html.entries]
    assert all(e.url is None for e in from_text.entries)
    # Without URLs the ids are tag: URIs, one per statement.
    assert len({e.id for e in from_text.entries}) == 11
    assert all(e.id.startswith("tag:") for e in from_text.entries)


PAGE_SUFFIXES = (".html", ".txt")


def _golden_cases() -> list[Path]:
    return sorted(PAGES.glob("*.json"))


def _page_file(case: Path) -> Path:
    (page,) = [case.with_suffix(s) for s in PAGE_SUFFIXES if case.with_suffix(s).exists()]
    return page


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda p: p.stem)
def test_golden_page(case: Path) -> None:
    spec = json.loads(case.read_text("utf-8"))
    profile = profile_from(PAGES / spec["profile"]) if "profile" in spec else PROFILE
    body = _page_file(case).read_bytes()
    if "encoding" in spec:
        body = body.decode("utf-8").encode(spec["encoding"])
    if "error" in spec:
        with pytest.raises(ParseError, match=spec["error"]):
            parse_page(body, spec["base_url"], profile)
        return
    page = parse_page(body, spec["base_url"], profile)
    doc = page_json(page)
    assert {k: v for k, v in doc.items() if k not in ("kind", "reader")} == spec["expect"]
    assert (page.reader, page.kind) == (
        spec.get("reader", page.reader),
        spec.get("kind", page.kind),
    )


def test_every_golden_page_has_its_expectation() -> None:
    pages = {p.stem for s in PAGE_SUFFIXES for p in PAGES.glob(f"*{s}")}
    assert pages == {p.stem for p in _golden_cases()}


def test_article_page_gives_full_text_and_date() -> None:
    body = (FIXTURES / "site" / "fnapr" / "6941.html").read_bytes()
    article = parse_article(body, BASE + "fnapr/6941", PROFILE)
    assert article.published == dt.date(2020, 6, 19)
    assert article.content.startswith("Ladies and gentlemen,\n\n")
    assert article.content.count("\n\n") == 14  # fifteen paragraphs, as on the page


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"\x00\x01\x02garbage\xff\xfe", b"<html><body><p>nothing</p></body></html>"],
)
def test_a_page_with_no_statements_is_an_error_not_an_empty_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match="found no statements"):
        parse_page(body, BASE, PROFILE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"list": {"item": "ul[[", "title": "a"}}, "profile.list.item: invalid CSS selector"),
        ({"counters": {"pattern": "(?P<days>\\d+"}}, "profile.counters.pattern: invalid"),
        ({"counters": {"pattern": "(?P<n>\\d+)"}}, "needs named groups days, subject"),
        ({"date_formats": []}, "profile.date_formats"),
        ({"summary_chars": 3}, "profile.summary_chars"),
        (
            {"text": {"entry": "(?P<date>x)(?P<title>y)", "end": "(unclosed"}},
            "profile.text.end: invalid",
        ),
        ({"as_of": {"pattern": "(?P<date>"}}, "profile.as_of.pattern: invalid regular"),
        ({"as_of": {"pattern": r"\d+ \w+ \d{4}"}}, "profile.as_of.pattern: .*named groups date"),
        (
            {"as_of": {"selector": "", "pattern": "(?P<date>.+)"}},
            "profile.as_of.pattern: needs a selector",
        ),
        ({"list": {"date_pattern": "(?P<day>.+)"}}, "profile.list.date_pattern: .*groups date"),
        ({"list": {"date_pattern": "[0-9"}}, "profile.list.date_pattern: invalid regular"),
    ],
)
def test_profile_mistakes_name_the_key(change: dict[str, Any], message: str) -> None:
    data = tomllib.loads((ROOT / "config" / "sources" / "embassy-uk.toml").read_text("utf-8"))
    for key, value in change.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as raised:
        load_profile(data)
    assert "\n" not in str(raised.value)  # one line, naming the key


# -- properties ----------------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=80,
)


def _list_page(items: list[tuple[dt.date, str, str]]) -> bytes:
    rows = "".join(
        f'<li class="news-item"><span class="news-date">{d:%d.%m.%Y}</span> - '
        f'<a class="news-title" href="/fnapr/{n}">{html.escape(t)}</a>'
        f'<p class="news-lead">{html.escape(lead)}</p></li>'
        for n, (d, t, lead) in enumerate(items)
    )
    return f'<html><body><ul class="news-list">{rows}</ul></body></html>'.encode()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)), TEXT, TEXT),
        min_size=1,
        max_size=5,
    )
)
def test_any_title_and_lead_come_back_as_clean_text(items: list[tuple[dt.date, str, str]]) -> None:
    items = [(d, t, lead) for d, t, lead in items if clean(t)]
    if not items:
        return
    page = parse_page(_list_page(items), BASE, PROFILE)
    assert [(e.published, e.title, e.summary) for e in page.entries] == [
        (d, clean(t), clean(lead)) for d, t, lead in items
    ]
    for e in page.entries:
        assert e.title == e.title.strip() and "  " not in e.title and "\xa0" not in e.title


@settings(max_examples=200)
@given(
    st.integers(0, 36500),
    TEXT.filter(lambda s: clean(s) and " - " not in clean(s)),
    st.one_of(st.none(), TEXT.filter(lambda s: bool(clean(s)))),
    st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1)),
)
def test_counter_lines_round_trip(
    days: int, subject: str, note: str | None, as_of: dt.date
) -> None:
    line = f"{days} days have passed since {subject}" + (f" - {note}" if note else "")
    body = (
        '<html><body><span class="today-date">'
        f"{as_of:%d %B %Y}</span><ul class='counters'><li class='counter'>{html.escape(line)}</li></ul>"
        '<ul class="news-list"><li class="news-item"><a class="news-title" href="/x">t</a></li></ul>'
        "</body></html>"
    ).encode()
    (counter,) = parse_page(body, BASE, PROFILE).counters
    assert counter.days == days
    assert counter.subject == clean(subject) or (note is None and " - " in clean(subject))
    if note is not None:
        assert counter.note == clean(note)
    assert counter.since == as_of - dt.timedelta(days=days)


def _respace(text: str, data: st.DataObject) -> str:
    words = text.split()
    gaps = data.draw(
        st.lists(
            st.sampled_from([" ", "  ", "\xa0", "\t", "\n "]),
            min_size=len(words),
            max_size=len(words),
        )
    )
    return "".join(w + g for w, g in zip(words, gaps, strict=True))


@given(TEXT.filter(lambda s: bool(clean(s))), st.dates(), st.data())
def test_tag_ids_survive_spacing_and_case_changes(
    title: str, day: dt.date, data: st.DataObject
) -> None:
    variant = _respace(title, data)
    variant = variant.upper() if data.draw(st.booleans()) else variant
    assert statement_id(None, day, fold(variant)) == statement_id(None, day, fold(title))
    assert statement_id(None, day, fold(title)) != statement_id(
        None, day + dt.timedelta(days=1), fold(title)
    )


def test_tag_ids_differ_between_statements() -> None:
    a = statement_id(None, dt.date(2020, 6, 18), fold("Article by President of Russia"))
    b = statement_id(None, dt.date(2020, 6, 18), fold("Article co-authored by Foreign Minister"))
    assert a != b and a.startswith("tag:") and b.startswith("tag:")


def test_an_impossible_counter_is_ignored() -> None:
    body = (
        b'<html><body><span class="today-date">6 July 2020</span><ul class="counters">'
        b'<li class="counter">99999999 days have passed since the dawn of time</li></ul>'
        b'<ul class="news-list"><li class="news-item"><a class="news-title" href="/x">t</a></li></ul>'
        b"</body></html>"
    )
    assert parse_page(body, BASE, PROFILE).counters == []


# -- text gathered from an element: <br> breaks lines, a double <br> paragraphs ------


def test_featured_text_keeps_its_br_paragraphs_and_lines() -> None:
    """header-one-line: the featured text is one <font> broken by <br>s."""
    page = parse_page(
        (PAGES / "header-one-line.html").read_bytes(),
        "https://consulate.example/",
        profile_from(PAGES / "header-one-line.toml"),
    )
    assert page.entries[0].content == (
        "Dear colleagues,\n\n"
        "Thank you for coming on such a cold evening.\n"
        "Our doors stay open\non weekdays from nine to five.\n\n"
        "We look forward to a busy spring."
    )


def test_a_collapsed_part_of_the_text_is_read_and_a_script_is_not() -> None:
    body = (
        b'<html><body><div class="article-text"><p>The first part.</p>'
        b"<script>var shown = false;</script>"
        b'<div style="display:none">The rest, behind a read-more link.</div>'
        b"</div></body></html>"
    )
    article = parse_article(body, BASE + "fnapr/1", PROFILE)
    assert article.content == "The first part.\n\nThe rest, behind a read-more link."


LINE = TEXT.filter(lambda s: bool(clean(s)))
# What may stand between two <br>s and still leave the line between them blank.
BLANK = st.sampled_from(["", " ", "\n  ", "&nbsp;", "\u200b", "<!-- x -->"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(LINE, min_size=1, max_size=4), min_size=1, max_size=5), st.data())
def test_br_breaks_lines_and_a_double_br_paragraphs(
    paragraphs: list[list[str]], data: st.DataObject
) -> None:
    def br() -> str:
        return f"<br>{data.draw(BLANK)}"

    text = (br() * 2).join(br().join(html.escape(line) for line in p) for p in paragraphs)
    body = f'<html><body><div class="article-text">{text}</div></body></html>'.encode()
    article = parse_article(body, BASE + "fnapr/1", PROFILE)

    assert article.content == "\n\n".join("\n".join(clean(line) for line in p) for p in paragraphs)


# -- several counters in one element -------------------------------------------


def _counters_page(inner: str) -> bytes:
    return (
        '<html><body><span class="today-date">6 July 2020</span>'
        f"<ul class='counters'><li class='counter'>{inner}</li></ul>"
        '<ul class="news-list"><li class="news-item"><a class="news-title" href="/x">t</a></li></ul>'
        "</body></html>"
    ).encode()


WORD = st.sampled_from(["the", "talks", "visit", "of", "closure", "office", "a", "notes"])
PHRASE = st.lists(WORD, min_size=1, max_size=6).map(" ".join)
GAP = st.lists(st.sampled_from([" ", "\xa0", "&nbsp;"]), min_size=2, max_size=40).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 36500), PHRASE, st.one_of(st.none(), PHRASE)),
        min_size=2,
        max_size=2,
    ),
    st.one_of(GAP, st.just("<br>")),
)
def test_two_counters_in_one_element_read_back_as_two(
    counters: list[tuple[int, str, str | None]], between: str
) -> None:
    """The real site shows both counters on one line, apart by a long run of
    spaces; a line break between them reads the same."""
    texts = [
        f"{days} days have passed since {subject}" + (f" - {note}" if note else "")
        for days, subject, note in counters
    ]
    page = parse_page(_counters_page(between.join(texts)), BASE, PROFILE)

    assert [(c.days, c.subject, c.note) for c in page.counters] == counters
    assert [c.since for c in page.counters] == [
        dt.date(2020, 7, 6) - dt.timedelta(days=days) for days, _, _ in counters
    ]


@given(st.integers(0, 36500), PHRASE, PHRASE, st.integers(0, 36500), PHRASE, GAP, GAP)
def test_a_wide_gap_inside_the_first_of_two_counters_does_not_cut_it(
    days: int, subject: str, tail: str, days2: int, subject2: str, inside: str, between: str
) -> None:
    """The words after a gap inside the first counter stay the first counter's."""
    first = f"{days} days have passed since {subject}{inside}{tail}"
    second = f"{days2} days have passed since {subject2}"
    page = parse_page(_counters_page(first + between + second), BASE, PROFILE)
    assert [(c.days, c.subject) for c in page.counters] == [
        (days, f"{subject} {tail}"),
        (days2, subject2),
    ]


@given(st.integers(0, 36500), PHRASE, PHRASE, GAP, GAP)
def test_a_wide_gap_inside_one_counter_does_not_cut_it(
    days: int, subject: str, note: str, gap: str, other: str
) -> None:
    """Only a part that reads as a counter of its own starts one: a gap before the
    note, or before a number that is not a counter, leaves one counter whole."""
    line = f"{days} days have passed since {subject}{gap}- {note}{other}2020 talks"
    (counter,) = parse_page(_counters_page(line), BASE, PROFILE).counters
    assert (counter.days, counter.subject, counter.note) == (days, subject, f"{note} 2020 talks")


# -- dates inside other text: as_of.pattern and list.date_pattern ---------------------

DATES_IN_TEXT = profile_from(PAGES / "header-one-line.toml")
CLOCKS = st.sampled_from(["", " London 09:15 | Moscow 12:15", "\xa0\xa0 London 23:59", ", Friday"])


@given(
    st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)),
    CLOCKS,
    st.dates(dt.date(1000, 1, 1)),
    st.data(),
)
def test_dates_are_read_out_of_longer_texts(
    as_of: dt.date, clocks: str, listed: dt.date, data: st.DataObject
) -> None:
    """The page's date before the clocks, an item's date before its title."""
    before = data.draw(st.sampled_from(["", " ", "(", "\n  "]))
    body = (
        f'<table><tr><td class="today">{as_of:%d %B %Y}{html.escape(clocks)}</td></tr></table>'
        f'<ul class="notes"><li>{before}{listed:%d.%m.%Y} - <a href="/n/1">A notice</a></li>'
        f'<li><a href="/n/2">A notice without a date</a> 01.02.2003</li></ul>'
    ).encode()
    page = parse_page(body, "https://consulate.example/", DATES_IN_TEXT)

    assert page.as_of == as_of
    assert [(e.title, e.published) for e in page.entries] == [
        ("A notice", listed),
        ("A notice without a date", None),  # a date later in the text is not the item's
    ]
