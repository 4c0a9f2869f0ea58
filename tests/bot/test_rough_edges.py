"""The bot's small rough edges, as a Telegram user meets them: odd digits in
``/latest``, commands in a group meant for another bot, a statement whose
"title" is a whole page long."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.messages import LIMIT, MAX_PARTS, length, statement_message
from feeds.model import Statement
from tests.support.harness import Harness, Running, drain, subscribe

USAGE = "Usage: /latest"


@pytest.mark.one_database
async def test_latest_with_digits_that_are_not_ascii_gets_the_usage_line(
    running: Running,
) -> None:
    for odd in ("²", "٣", "５", "0" * 5000, "-1", "1.5"):
        assert USAGE in await running.command(201, f"/latest {odd}"), odd
    assert "No statements" not in await running.command(201, "/latest 1")


async def test_a_command_for_another_bot_gets_no_answer(running: Running) -> None:
    tg = running.tg
    for chat, kind in ((-2001, "supergroup"), (202, "private")):
        tg.set_chat(chat, kind, title="Readers")
        tg.send_command(chat, "/start@otherbot", chat_type=kind, title="Readers")
        tg.send_command(chat, "/frobnicate@otherbot", chat_type=kind, title="Readers")
        # Updates are handled in order: once this is answered, the two above were seen.
        help_reply = await running.command(chat, "/help@feedbot_test_bot", chat_type=kind)
        assert "/start" in help_reply
        assert [m["text"] for m in tg.sent(chat)] == [help_reply]
        assert running.ctx.bot_store.subscriber(chat) is None
    # Addressed to us by name, it is ours.
    reply = await running.command(-2001, "/start@FeedBot_Test_Bot", chat_type="supergroup")
    assert "Subscribed" in reply


async def test_a_page_long_title_takes_at_most_three_messages(harness: Harness) -> None:
    subscribe(harness.ctx.bot_store, [301])
    title = " ".join(f"word{i}" for i in range(15_000))  # about 100 KB
    assert len(title) > 100_000
    statement_id = await harness.publish(7301, title)
    await drain(harness.sender())
    sent = harness.tg.sent(301)
    assert 1 <= len(sent) <= MAX_PARTS
    assert all(length(str(m["text"])) <= LIMIT for m in sent)
    assert str(sent[0]["text"]).startswith("<b>word0 word1 ")
    assert "…" in str(sent[-1]["text"])
    # The button under the last message leads to the whole statement.
    button = sent[-1]["reply_markup"]["inline_keyboard"][0][0]
    assert button["url"] == statement_id == f"{harness.source.url}/fnapr/7301"


def a_statement(title: str, summary: str) -> Statement:
    now = dt.datetime(2020, 7, 6, 12, tzinfo=dt.UTC)
    return Statement(
        seq=1,
        id="https://example.test/fnapr/1",
        url="https://example.test/fnapr/1",
        title=title,
        summary=summary,
        content=None,
        published=dt.date(2020, 7, 6),
        featured=False,
        first_seen=now,
        last_seen=now,
        edited_at=None,
    )


@settings(max_examples=40, deadline=None)
@given(
    title=st.text(st.sampled_from("ab &<>\"'\n"), min_size=1, max_size=30_000),
    summary=st.text(st.sampled_from("cd &<>\n"), max_size=60_000),
)
def test_any_statement_fits_the_cap(title: str, summary: str) -> None:
    parts = statement_message(a_statement(title, summary))
    assert 1 <= len(parts) <= MAX_PARTS
    assert all(length(p) <= LIMIT for p in parts)


def test_a_short_statement_is_not_cut() -> None:
    parts = statement_message(a_statement("Title & more", "A lead.\n\nA second paragraph."))
    assert parts == [
        "<b>Title &amp; more</b>\n<i>6 July 2020</i>\n\nA lead.\n\nA second paragraph."
    ]
