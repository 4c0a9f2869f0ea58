"""The Telegram bot end to end: the real Application inside `feedbot run`'s
service, talking to the fake Bot API server; the source on a local server."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from tests.conftest import FIXTURES
from tests.support.harness import Running

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")


def with_new_statement(n: int, title: str, lead: str = "A lead.") -> str:
    item = f"""<ul class="news-list">
      <li class="news-item"><span class="news-date">07.07.2020</span> - <a class="news-title" href="/fnapr/{n}">{title}</a>
        <p class="news-lead">{lead}</p></li>"""
    return HOME.replace('<ul class="news-list">', item, 1)


async def test_start_subscribes_and_new_statements_arrive_once(running: Running) -> None:
    tg = running.tg
    assert {c["command"] for c in tg.commands()} >= {
        "start",
        "stop",
        "latest",
        "counters",
        "settings",
        "feed",
        "help",
    }
    assert "stats" not in {c["command"] for c in tg.commands()}
    reply = await running.command(101, "/start")
    assert "Subscribed" in reply
    assert "already subscribed" in await running.command(101, "/start")
    assert running.ctx.bot_store.subscriber_counts()["total"] == 1
    # The first fill was not pushed to anyone.
    assert [m for m in tg.sent(101) if "Putin" in str(m["text"])] == []

    running.source.set_body("/", with_new_statement(7001, "New &amp; <i>important</i> statement"))
    await running.until(lambda: any("important" in str(m["text"]) for m in tg.sent(101)))
    await asyncio.sleep(1.5)  # a second poll, and time for any duplicate to show
    pushed = [m for m in tg.sent(101) if "important" in str(m["text"])]
    assert len(pushed) == 1
    text = str(pushed[0]["text"])
    assert text.startswith("<b>New &amp; important statement</b>\n<i>7 July 2020</i>")
    assert pushed[0]["parse_mode"] == "HTML"
    markup = pushed[0]["reply_markup"]
    assert markup["inline_keyboard"][0][0]["url"] == running.source.url + "/fnapr/7001"


@pytest.mark.one_database
async def test_commands(running: Running) -> None:
    latest = await running.command(102, "/latest 2")
    assert "President Vladimir Putin" in latest and "Republic of Belarus" in latest
    assert "Article by President" not in latest
    assert "Usage: /latest" in await running.command(102, "/latest abc")
    assert "Usage: /latest" in await running.command(102, "/latest 100000")
    counters = await running.command(102, "/counters")
    today = dt.datetime.now(dt.UTC).date()
    assert (
        f"<b>{(today - dt.date(2018, 3, 4)).days}</b> days have passed since the Salisbury incident"
        in counters
    )
    assert "/feeds/statements.atom" in await running.command(102, "/feed")
    assert "/start" in await running.command(102, "/help")
    assert "don't know that command" in await running.command(102, "/frobnicate")
    assert "not subscribed" in await running.command(102, "/settings")
    await running.command(102, "/start")
    assert "09:00" in await running.command(102, "/settings")
    assert "08:30" in await running.command(102, "/settings time 8:30")
    assert "off" in await running.command(102, "/settings counters off")
    assert "Usage" in await running.command(102, "/settings time 25:00")
    sub = running.ctx.bot_store.subscriber(102)
    assert sub is not None and sub.counters_time == "08:30" and not sub.counters_enabled
    assert "for the operators" in await running.command(102, "/stats")
    stats = await running.command(900, "/stats")
    assert "Subscribers: 1" in stats and "Statements stored: 11" in stats
    assert "Unsubscribed" in await running.command(102, "/stop")
    assert "not subscribed" in await running.command(102, "/stop")


async def test_groups_and_channels_subscribe_like_private_chats(running: Running) -> None:
    running.tg.set_chat(-1001, "supergroup", title="Readers")
    await running.command(-1001, "/start@feedbot_test_bot", chat_type="supergroup", title="Readers")
    running.tg.set_chat(-1002, "channel", title="News")
    await running.command(-1002, "/start", chat_type="channel", title="News")
    counts = running.ctx.bot_store.subscriber_counts()
    assert counts == {"supergroup": 1, "channel": 1, "total": 2}
    running.source.set_body("/", with_new_statement(7002, "For groups"))
    await running.until(
        lambda: all(
            any("For groups" in str(m["text"]) for m in running.tg.sent(c)) for c in (-1001, -1002)
        )
    )


async def test_preview_reads_the_live_page_for_operators_only(running: Running) -> None:
    assert "for the operators" in await running.command(103, "/preview")
    preview = await running.command(900, "/preview")
    assert "11 statements, 2 counters" in preview
    assert "2020-06-24 President Vladimir Putin" in preview
    assert "855 — the Salisbury incident" in preview
    running.source.set_body("/", "<html><body><p>redesigned</p></body></html>")
    await asyncio.sleep(1.1)  # one message a second per chat
    # The service's own poll may see the new page first and alert chat 900 too: the
    # reply is the message that answers /preview, whichever comes last.
    before = len(running.tg.sent(900))
    running.tg.send_command(900, "/preview")
    await running.until(
        lambda: any("Reading the live page" in m["text"] for m in running.tg.sent(900)[before:])
    )
    failed = next(
        m["text"] for m in running.tg.sent(900)[before:] if "Reading the live page" in m["text"]
    )
    assert "Reading the live page failed" in failed and "found no statements" in failed
