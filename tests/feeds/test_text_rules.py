"""The text rules read the real site's page shapes (2014–2022) from plain text.

Every page here is text written in the real shapes — header lines, counters,
section headings, pager lines, dated statements with leads, one statement's
page — and read with the shipped profile, through ``parse_page`` as
``feedbot parse`` does.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.errors import ConfigError, ParseError
from feeds.parse import explain_page, parse_page
from feeds.profile import load_profile
from feeds.text import clean, fold

ROOT = Path(__file__).resolve().parents[2]
PROFILE_DATA = tomllib.loads((ROOT / "config" / "sources" / "embassy-uk.toml").read_text("utf-8"))
PROFILE = load_profile(PROFILE_DATA)
BASE = "https://www.rusemb.org.uk/"
NBSP = "\u00a0"

HEADER = "3 March 2021\nLondon 10:15 Moscow 13:15\nConsular queries:\n+44 (0) 203 668 7474\n"
LIST = (
    "02.03.2021 - Embassy statement on the reopening of the library\n\n"
    "The library reopens on Monday.\n\n"
    "01.03.2021 - Ambassador's message on a school exchange\n\n"
    "Pupils from both countries will take part.\n"
)

# What the site shows around its statements: never a statement itself.
FURNITURE = [
    "PRESS RELEASES AND NEWS",
    "EMBASSY INFORMS",
    "SPEECHES, INTERVIEWS, ARTICLES",
    "Pages: ««« :: 123456789101112131415 :: »»»",
    "««« :: 12345 :: »»»",
    "London 14:05 Moscow 16:05",
    "Moscow: 02:43",
    "London: 00:43",
    "Consular Section:",
    "Consular queries: +44 (0) 203 668 7474",
    "+44 (0) 20 7229 0000",
    "[email protected]",
    "consular@example.org",
    "all messages",
]


def read(text: str) -> list[tuple[dt.date | None, str, str, bool]]:
    page = parse_page(text.encode(), BASE, PROFILE)
    return [(e.published, e.title, e.summary, e.featured) for e in page.entries]


EXPECTED_LIST = [
    (
        dt.date(2021, 3, 2),
        "Embassy statement on the reopening of the library",
        "The library reopens on Monday.",
        False,
    ),
    (
        dt.date(2021, 3, 1),
        "Ambassador's message on a school exchange",
        "Pupils from both countries will take part.",
        False,
    ),
]


@pytest.mark.parametrize("line", FURNITURE)
def test_furniture_is_never_a_statement_wherever_it_stands(line: str) -> None:
    before, after = LIST.split("01.03.2021")
    for text in (
        f"{HEADER}\n{line}\n\n{LIST}",  # above the list, where a featured statement would be
        f"{HEADER}\n{before}{line}\n\n01.03.2021{after}",  # between two statements
        f"{HEADER}\n{LIST}\n{line}\n",  # below the last one
    ):
        assert read(text) == EXPECTED_LIST


def test_a_featured_statement_is_read_with_no_counters_on_the_page() -> None:
    text = (
        "7 July 2014\nConsular Section:\n+44 (0) 20 7229 0000\n\n"
        "Embassy comment on a concert season\n\n"
        "The season opens in September.\n\nTickets go on sale next week.\n\n" + LIST
    )
    page = parse_page(text.encode(), BASE, PROFILE)
    assert page.counters == [] and page.as_of == dt.date(2014, 7, 7)
    featured = page.entries[0]
    assert (featured.title, featured.featured, featured.published) == (
        "Embassy comment on a concert season",
        True,
        None,
    )
    assert featured.content == "The season opens in September.\n\nTickets go on sale next week."
    assert read(text)[1:] == EXPECTED_LIST


def test_a_list_with_no_header_has_no_featured_statement() -> None:
    # An archive list page: a section heading, statements, the pager.
    text = "PRESS RELEASES AND NEWS\n\n" + LIST + "\nPages: ««« :: 123456789101112131415 :: »»»\n"
    assert read(text) == EXPECTED_LIST


def test_both_counters_on_one_line_are_two_counters() -> None:
    gap = (NBSP + " ") * 25
    line = (
        "900 days have passed since the first incident - no answer"
        f"{gap}892 days have passed since the second  incident - no answer either"
    )
    page = parse_page(f"2 September 2020\n{line}\n\n{LIST}".encode(), BASE, PROFILE)
    assert [(c.days, c.subject, c.note, c.since) for c in page.counters] == [
        (900, "the first incident", "no answer", dt.date(2018, 3, 17)),
        (892, "the second incident", "no answer either", dt.date(2018, 3, 25)),
    ]


def test_a_column_gap_inside_one_counter_does_not_split_it() -> None:
    line = f"855 days have passed since the{NBSP} {NBSP}Salisbury incident - no answer"
    page = parse_page(f"6 July 2020\n{line}\n\n{LIST}".encode(), BASE, PROFILE)
    assert [(c.days, c.subject) for c in page.counters] == [(855, "the Salisbury incident")]


def test_the_pages_date_is_read_beside_its_clocks() -> None:
    text = f"6 July 2020{NBSP} {NBSP}London 00:43{NBSP} Moscow 02:43\n\n{LIST}"
    assert parse_page(text.encode(), BASE, PROFILE).as_of == dt.date(2020, 7, 6)


def test_one_statements_page_reads_as_that_statement() -> None:
    text = (
        f"{HEADER}\nPRESS RELEASES AND NEWS\n\n05.07.2021\n\n"
        "Embassy statement on a visiting choir\n\n"
        "A choir from Novgorod will sing in three cathedrals.\n\n"
        "Admission is free.\n\nall messages\n"
    )
    page, notes = explain_page(text.encode(), BASE + "fnapr/7100", PROFILE)
    assert (page.kind, page.reader, page.as_of) == ("statement", "plain-text", dt.date(2021, 3, 3))
    (entry,) = page.entries
    assert (entry.published, entry.title, entry.url, entry.featured) == (
        dt.date(2021, 7, 5),
        "Embassy statement on a visiting choir",
        None,  # a text capture carries no links
        False,
    )
    assert entry.content == (
        "A choir from Novgorod will sing in three cathedrals.\n\nAdmission is free."
    )
    assert any("one statement's page" in note for note in notes)


def test_a_list_page_says_it_is_one() -> None:
    page = parse_page(f"{HEADER}\n{LIST}".encode(), BASE, PROFILE)
    assert (page.kind, page.reader) == ("list", "plain-text")


@pytest.mark.parametrize(
    "text",
    [
        HEADER,
        f"{HEADER}\nEMBASSY INFORMS\n\nPages: ««« :: 123 :: »»»\n",
        "Just a sentence with no date.\n",
        f"{HEADER}\n05.07.2021\n",  # a date line with nothing under it
        f"{HEADER}\nAbout the Embassy\n\nThe Embassy is open on weekdays.\n",  # text, no list
    ],
)
def test_a_page_that_is_neither_is_one_clear_error(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_page(text.encode(), BASE, PROFILE)
    message = str(info.value)
    assert "\n" not in message
    assert "neither a list of dated statements nor one statement's page" in message


def test_a_broken_never_a_statement_pattern_names_its_key() -> None:
    data = {**PROFILE_DATA, "text": {**PROFILE_DATA["text"], "skip": ["ok", "(unclosed"]}}
    with pytest.raises(ConfigError, match=r"profile\.text\.skip\[1\]: invalid regular expression"):
        load_profile(data)


def test_without_headings_rule_a_capitalised_line_is_text() -> None:
    # The rules are the profile's: a profile without them reads a heading as text.
    data = {**PROFILE_DATA, "text": {**PROFILE_DATA["text"], "headings": False}}
    profile = load_profile(data)
    text = f"{HEADER}\nEMBASSY INFORMS\n\n{LIST}"
    featured = parse_page(text.encode(), BASE, profile).entries[0]
    assert (featured.title, featured.featured) == ("EMBASSY INFORMS", True)


# -- properties ----------------------------------------------------------------

# Words as statements are written: letters (Latin and Cyrillic), some with
# capitals or punctuation; never a whole line in capitals, a date or a number.
WORD = st.builds(
    lambda word, cap, punct: (word.capitalize() if cap else word) + punct,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzабвгдежзиклмнопрстуфя", min_size=2, max_size=9),
    st.booleans(),
    st.sampled_from(["", "", "", ",", ":", "’s", ";", "!", "?"]),
)
SENTENCE = st.lists(WORD, min_size=1, max_size=12).map(" ".join)
ITEM = st.tuples(
    st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)),
    SENTENCE,
    st.lists(SENTENCE, min_size=0, max_size=2),  # a lead over 0–2 lines
)


def _distinct(items: list[tuple[dt.date, str, list[str]]]) -> list[tuple[dt.date, str, list[str]]]:
    # A statement listed twice (same date and title) is one statement.
    kept = {}
    for day, title, lead in items:
        kept.setdefault((day, fold(title)), (day, title, lead))
    return list(kept.values())


def _layout(
    items: list[tuple[dt.date, str, list[str]]], furniture: list[str], space: str = " "
) -> str:
    lines = [HEADER]
    for n, (day, title, lead) in enumerate(items):
        lines.append(furniture[n % len(furniture)] if furniture else "")
        lines.append(f"{day:%d.%m.%Y} - {title.replace(' ', space)}")
        lines.append("")
        lines += [line.replace(" ", space) for line in lead]
    lines.append("Pages: ««« :: 123456789101112131415 :: »»»")
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(ITEM, min_size=1, max_size=6),
    st.lists(st.sampled_from(FURNITURE), max_size=4),
)
def test_any_list_among_headings_and_pagers_reads_back_exactly(
    items: list[tuple[dt.date, str, list[str]]], furniture: list[str]
) -> None:
    items = _distinct(items)
    assert read(_layout(items, furniture)) == [
        (day, title, " ".join(lead), False) for day, title, lead in items
    ]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(ITEM, min_size=1, max_size=5),
    st.sampled_from([f"{NBSP}", f" {NBSP}", "  ", "\t", f"{NBSP}{NBSP}{NBSP} "]),
)
def test_spacing_and_non_breaking_spaces_change_no_id(
    items: list[tuple[dt.date, str, list[str]]], space: str
) -> None:
    plain = parse_page(_layout(items, []).encode(), BASE, PROFILE)
    respaced = parse_page(_layout(items, [], space).encode(), BASE, PROFILE)
    assert [e.id for e in respaced.entries] == [e.id for e in plain.entries]
    assert [(e.title, e.summary) for e in respaced.entries] == [
        (e.title, e.summary) for e in plain.entries
    ]
    assert all(e.title == clean(e.title) for e in respaced.entries)
