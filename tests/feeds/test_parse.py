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
    ],
)
def test_profile_mistakes_name_the_key(change: dict[str, Any], message: str) -> None:
    data = tomllib.loads((ROOT / "config" / "sources" / "embassy-uk.toml").read_text("utf-8"))
    for key, value in change.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_profile(data)


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
