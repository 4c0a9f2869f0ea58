"""Per-chat keyword filters: parsing, matching (properties) and the /filter command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.filters import MAX_TERMS, FilterError, Term, matches, merge, parse_terms


def test_words_phrases_and_exclusions() -> None:
    terms = parse_terms('Sanctions "Skripal case" -sport «Солсбери инцидент»')
    assert terms == [
        Term("sanctions", False),
        Term("skripal case", False),
        Term("sport", True),
        Term("солсбери инцидент", False),
    ]
    assert [str(t) for t in terms] == [
        "sanctions",
        '"skripal case"',
        "-sport",
        '"солсбери инцидент"',
    ]


@pytest.mark.parametrize(
    ("filter_text", "title", "lead", "expected"),
    [
        ("sanctions", "New SANCTIONS announced", "", True),
        ("sanction", "New sanctions announced", "", False),  # whole words only
        ("oil", "Soil and water", "", False),
        ('"skripal case"', "On the Skripal  case", "", True),  # spacing folded
        ('"skripal case"', "Skripal and the case", "", False),
        ("заявление", "ЗАЯВЛЕНИЕ МИД России", "", True),
        ("мид", "Заявление МИД России", "", True),
        ("sanctions -sport", "Sanctions on sport", "", False),
        ("-sport", "A statement on trade", "", True),
        ("-sport", "A statement on sport", "", False),
        ("trade", "A statement", "The lead mentions trade.", True),
    ],
)
def test_matching(filter_text: str, title: str, lead: str, expected: bool) -> None:
    assert matches(parse_terms(filter_text), title, lead) is expected


def test_limits_and_mistakes_get_a_reason() -> None:
    with pytest.raises(FilterError, match="quote"):
        parse_terms('"unclosed phrase')
    with pytest.raises(FilterError, match="at most 60"):
        parse_terms("x" * 61)
    with pytest.raises(FilterError, match="no words"):
        parse_terms("- ! ?")
    many = parse_terms(" ".join(f"w{n}" for n in range(MAX_TERMS)))
    with pytest.raises(FilterError, match=f"at most {MAX_TERMS}"):
        merge(many, parse_terms("one-more"))


@given(st.text(max_size=200), st.text(max_size=300), st.text(max_size=300))
def test_any_input_is_safe(filter_text: str, title: str, lead: str) -> None:
    try:
        terms = parse_terms(filter_text)
    except FilterError:
        return
    assert isinstance(matches(terms, title, lead), bool)
    for term in terms:  # a term always matches a text made of itself
        if not term.exclude:
            assert matches([term], term.text, "")
