"""Telegram message formatting: escaping, splitting under the limit, counters."""

from __future__ import annotations

import datetime as dt
import html
from html.parser import HTMLParser

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.messages import LIMIT, Block, counters_message, length, pack, statement_message
from feedbot.logs import RedactingFormatter, redact
from feeds.model import Statement, StoredCounter

ALLOWED_TAGS = {"b", "i", "a", "code"}


class TagChecker(HTMLParser):
    """Fails on anything Telegram's HTML mode would reject: unknown or unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, tag
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def visible_text(message: str) -> str:
    checker = TagChecker()
    checker.feed(message)
    checker.close()
    assert checker.stack == []
    # Only the four entities Telegram knows may appear.
    for chunk in message.split("&")[1:]:
        assert chunk.startswith(("lt;", "gt;", "amp;", "quot;")), chunk[:10]
    return "".join(checker.text)


def statement(
    title: str, summary: str, published: dt.date | None = dt.date(2020, 6, 24)
) -> Statement:
    seen = dt.datetime(2020, 7, 6, tzinfo=dt.UTC)
    return Statement(
        seq=1,
        id="https://example.org/1",
        url="https://example.org/1",
        title=title,
        summary=summary,
        content=None,
        published=published,
        featured=False,
        first_seen=seen,
        last_seen=seen,
        edited_at=None,
    )


def test_statement_message_is_escaped_with_bold_title_and_date() -> None:
    (message,) = statement_message(statement('Q&A <on> "things"', "Lead <b>not bold</b> & more"))
    assert message == (
        '<b>Q&amp;A &lt;on&gt; "things"</b>\n<i>24 June 2020</i>\n\n'
        "Lead &lt;b&gt;not bold&lt;/b&gt; &amp; more"
    )
    visible_text(message)


WORDS = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("<>&\"' \n")), st.characters(blacklist_categories=("Cs", "Cc"))
    ),
    min_size=0,
    max_size=3000,
)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(str.strip), st.lists(WORDS, min_size=1, max_size=8))
def test_long_statements_split_under_the_limit_without_breaking_markup(
    title: str, paragraphs: list[str]
) -> None:
    paragraphs = [p for p in paragraphs if p.strip()] or ["x"]
    summary = "\n\n".join(paragraphs)
    assume(summary != title)  # a lead that only repeats the title is left out
    parts = statement_message(statement(title, summary))
    assert all(length(p) <= LIMIT for p in parts)
    joined = "".join(visible_text(p) for p in parts)
    # Nothing is lost: every non-space character of title and lead is there, in order.
    squeeze = lambda s: "".join(s.split())  # noqa: E731
    assert squeeze(joined).endswith(squeeze(html.unescape(html.escape(summary, quote=False))))
    assert squeeze(title) in squeeze(joined)


def test_a_huge_word_is_cut_hard_but_never_inside_an_entity() -> None:
    blocks = [Block(text="&" * 5000)]
    parts = pack(blocks)
    assert len(parts) == 7  # 5000 × "&amp;" = 25000 characters of HTML, cut under 4096 each
    assert all(length(p) <= LIMIT for p in parts)
    assert "".join(html.unescape(p) for p in parts) == "&" * 5000
    for p in parts:
        visible_text(p)


def test_counters_message() -> None:
    counter = StoredCounter(
        key="k",
        subject="the Salisbury incident",
        note="no credible information",
        since=dt.date(2018, 3, 4),
        page_days=855,
        page_as_of=dt.date(2020, 7, 6),
        active=True,
        first_seen=dt.datetime(2020, 7, 6, tzinfo=dt.UTC),
    )
    (message,) = counters_message([counter], dt.date(2020, 7, 6))
    assert message == (
        "<b>Counters on 6 July 2020</b>\n\n"
        "<b>855</b> days have passed since the Salisbury incident - no credible information"
    )


def test_the_token_is_redacted_from_log_lines() -> None:
    import logging

    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        "HTTP Request: POST %s",
        (f"https://api.example/bot{token}/getMe",),
        None,
    )
    for json_lines in (False, True):
        line = RedactingFormatter((token,), json_lines).format(record)
        assert token not in line and "[REDACTED]" in line
    assert token not in redact(f"url=https://x/bot{token}/sendMessage")
