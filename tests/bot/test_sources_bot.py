"""Chats choose their sources: /start follows the default ones, /sources has a button
per source to follow or leave it, a statement reaches only its source's followers
and names its source, /latest, /counters and /feed read the chat's sources, and
subscribers of a database from before several sources keep receiving.

The real Application polls the fake Bot API server; each source is a page on the
local fake source server, polled by its own pipeline as the worker polls it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.delivery import Sender
from bot.handlers import BotDeps
from bot.outbox import enqueue_daily_counters
from bot.schema import subscribers
from bot.store import BotStore
from bot.telegram import TelegramBot
from feedbot.app import Context, open_context
from feedbot.poller import poll_and_queue
from feedbot.settings import load_settings
from feeds.clock import LONDON, utcnow
from feeds.pipeline import Pipeline
from feeds.store import Store, create_engine, serialise
from tests.conftest import PROFILE, toml_value
from tests.support.fake_source import FakeSource
from tests.support.fake_telegram import FakeTelegram
from tests.support.harness import FIRST_FILL, HOME, with_new_statement

EMBASSY = "Embassy in London"
MINISTRY = "Foreign Ministry"
AGENCY = "News Agency"
CHATS = itertools.count(2000)  # a chat of its own for each hypothesis example
ADMIN = 900  # the operators' chat


def more_sources(source: FakeSource, agency: dict[str, Any] | None = None) -> str:
    """Two [[sources]] beside the embassy: the ministry (not followed at /start) and
    the agency (followed at /start), each a page of its own on the fake server."""
    tables = {
        "ministry": {"name": MINISTRY, "url": source.url + "/ministry/"},
        "agency": {"name": AGENCY, "url": source.url + "/agency/", "default": True}
        | (agency or {}),
    }
    text = ""
    for sid, values in tables.items():
        text += f'\n[[sources]]\nid = "{sid}"\nprofile = {toml_value(PROFILE)}\n'
        text += "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
    return text


@dataclass
class Bot:
    """The bot of a deployment with its sources: long polling, the sender draining
    the outbox, and a pipeline per source."""

    ctx: Context
    tg: FakeTelegram
    source: FakeSource
    telegram: TelegramBot
    sender: Sender
    pipelines: dict[str, Pipeline] = field(default_factory=dict)

    async def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    async def command(self, chat_id: int, text: str, **kw: Any) -> str:
        before = len(self.tg.sent(chat_id))
        self.tg.send_command(chat_id, text, **kw)
        await self.until(lambda: len(self.tg.sent(chat_id)) > before)
        return str(self.tg.sent(chat_id)[-1]["text"])

    async def press(self, chat_id: int, message_id: int, data: str) -> str:
        """Press a button; what the bot answered the press with (once it has redrawn)."""
        answers = len(self.tg.calls_of("answerCallbackQuery"))
        edits = len(self.tg.calls_of("editMessageText"))
        self.tg.press_button(chat_id, message_id, data)
        await self.until(lambda: len(self.tg.calls_of("answerCallbackQuery")) > answers)
        await self.until(lambda: len(self.tg.calls_of("editMessageText")) > edits)
        return str(self.tg.calls_of("answerCallbackQuery")[-1].params.get("text"))

    async def publish(self, sid: str, n: int, title: str) -> str:
        """A new statement on one source's page, polled; its stored id."""
        path = "/" if sid == "embassy-uk" else f"/{sid}/"
        self.source.set_body(path, with_new_statement(n, title))
        pipeline = self.pipelines[sid]
        outcome = await asyncio.to_thread(
            poll_and_queue, pipeline, self.ctx.bot_store, True, utcnow()
        )
        assert outcome.changes is not None and [s.title for s in outcome.changes.new] == [title]
        self.sender.wake()
        return outcome.changes.new[0].id

    def following(self, chat_id: int) -> set[str]:
        return self.ctx.bot_store.following(chat_id)


def buttons(message: dict[str, Any]) -> list[str]:
    return [row[0]["text"] for row in message["reply_markup"]["inline_keyboard"]]


def pushed(tg: FakeTelegram, chat_id: int, marker: str) -> list[str]:
    return [str(m["text"]) for m in tg.sent(chat_id) if marker in str(m["text"])]


async def start_bot(config: Path, source: FakeSource, tg: FakeTelegram) -> Bot:
    settings = load_settings(
        config, env={"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url}
    )
    ctx = open_context(settings)
    sources = settings.feeds.sources
    deps = BotDeps(
        ctx.store, ctx.bot_store, "http://feeds.test", source.url + "/", (ADMIN,), sources=sources
    )
    telegram = TelegramBot(settings.telegram, deps)
    sender = Sender(
        telegram.bot, ctx.store, ctx.bot_store, limiter=telegram.limiter, sources=sources
    )
    bot = Bot(ctx, tg, source, telegram, sender)
    for s in sources:
        bot.pipelines[s.id] = Pipeline(settings.feeds, ctx.store, ctx.fetcher, source=s)
        await asyncio.to_thread(bot.pipelines[s.id].poll)  # the first fill: pushed to nobody
    await telegram.start()
    return bot


@contextlib.asynccontextmanager
async def running_bot(config: Path, source: FakeSource, tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = await start_bot(config, source, tg)
    stop = asyncio.Event()
    sending = asyncio.create_task(bot.sender.run(stop))
    try:
        yield bot
    finally:
        stop.set()
        await asyncio.wait_for(sending, 15)
        await bot.telegram.stop()
        bot.ctx.close()


@pytest.fixture
async def bot(
    make_config: Callable[..., Path], source: FakeSource, tg: FakeTelegram
) -> AsyncIterator[Bot]:
    for path in ("/ministry/", "/agency/"):
        source.set_body(path, HOME)
    config = make_config(source.url + "/", source={"name": EMBASSY})
    config.write_text(config.read_text("utf-8") + more_sources(source), "utf-8")
    async with running_bot(config, source, tg) as running:
        yield running


async def test_start_follows_the_default_sources_and_buttons_choose(bot: Bot) -> None:
    assert "sources" in {c["command"] for c in bot.tg.commands()}
    assert "/sources" in await bot.command(501, "/help")
    assert "Subscribed" in await bot.command(501, "/start")
    assert bot.following(501) == {"", "agency"}  # the embassy and the agency are defaults

    listing = await bot.command(501, "/sources")
    assert "Sources" in listing
    shown = bot.tg.bot_messages(501)[-1]
    assert buttons(shown) == [f"✅ {EMBASSY}", f"➕ {MINISTRY}", f"✅ {AGENCY}"]

    said = await bot.press(501, shown["message_id"], "src:ministry")
    assert said == f"Following {MINISTRY}."
    assert bot.following(501) == {"", "agency", "ministry"}
    redrawn = bot.tg.message(501, shown["message_id"])
    assert buttons(redrawn) == [f"✅ {EMBASSY}", f"✅ {MINISTRY}", f"✅ {AGENCY}"]

    said = await bot.press(501, shown["message_id"], "src:embassy-uk")
    assert said == f"You left {EMBASSY}."
    assert bot.following(501) == {"agency", "ministry"}
    assert buttons(bot.tg.message(501, shown["message_id"]))[0] == f"➕ {EMBASSY}"
    # /start again keeps what the chat chose.
    assert "already subscribed" in await bot.command(501, "/start")
    assert bot.following(501) == {"agency", "ministry"}


async def test_a_button_subscribes_a_chat_that_was_not_and_odd_presses_are_answered(
    bot: Bot,
) -> None:
    assert "not subscribed" in await bot.command(502, "/sources")
    shown = bot.tg.bot_messages(502)[-1]
    assert await bot.press(502, shown["message_id"], "src:ministry") == f"Following {MINISTRY}."
    sub = bot.ctx.bot_store.subscriber(502)
    assert sub is not None and sub.active
    assert bot.following(502) == {"ministry"}  # what was pressed, not the defaults
    assert "not subscribed" not in bot.tg.message(502, shown["message_id"])["text"]
    # A button of a source the settings no longer have.
    assert await bot.press(502, shown["message_id"], "src:gone") == (
        "That source is no longer offered."
    )
    assert bot.following(502) == {"ministry"}


async def test_a_statement_reaches_only_its_sources_followers_named(bot: Bot) -> None:
    store = bot.ctx.bot_store
    for chat in (601, 602, 603, 604):
        await bot.command(chat, "/start")
        store.set_counters(chat, enabled=False)
    store.set_following(601, "agency", False)  # 601: the embassy alone
    store.set_following(602, "", False)
    store.set_following(602, "agency", False)
    store.set_following(602, "ministry", True)  # 602: the ministry alone
    store.set_following(603, "ministry", True)  # 603: all three
    store.set_following(604, "ministry", True)  # 604: all three, with a filter
    assert "sanctions" in await bot.command(604, "/filter add sanctions")

    ministry_id = await bot.publish("ministry", 8101, "Ministry statement on sanctions")
    await bot.until(lambda: all(pushed(bot.tg, c, "Ministry statement") for c in (602, 603, 604)))
    embassy_id = await bot.publish("embassy-uk", 8102, "Embassy statement")
    await bot.until(lambda: all(pushed(bot.tg, c, "Embassy statement") for c in (601, 603)))
    await asyncio.sleep(1.2)  # time for anything wrongly queued to arrive
    assert pushed(bot.tg, 601, "Ministry statement") == []
    assert pushed(bot.tg, 602, "Embassy statement") == []
    assert pushed(bot.tg, 604, "Embassy statement") == []  # its filter
    for chat in (602, 603, 604):
        [text] = pushed(bot.tg, chat, "Ministry statement")
        assert text.startswith(f"<i>{MINISTRY}</i>\n<b>Ministry statement on sanctions</b>")
    for chat in (601, 603):
        [text] = pushed(bot.tg, chat, "Embassy statement")
        assert text.startswith(f"<i>{EMBASSY}</i>\n<b>Embassy statement</b>\n<i>7 July 2020</i>")
    # The same page under two sources: separate statements, each queued once a chat.
    assert ministry_id != embassy_id and ministry_id.endswith("#ministry")
    assert {i.chat_id for i in store.deliveries("statement", ministry_id)} == {602, 603, 604}
    assert {i.chat_id for i in store.deliveries("statement", embassy_id)} == {601, 603}


async def test_latest_counters_and_feed_read_the_chats_sources(bot: Bot) -> None:
    store = bot.ctx.bot_store
    await bot.command(701, "/start")
    store.set_following(701, "", False)
    store.set_following(701, "agency", False)
    store.set_following(701, "ministry", True)
    await bot.publish("ministry", 8201, "Only for ministry readers")
    await bot.publish("embassy-uk", 8202, "Only for embassy readers")
    await bot.until(lambda: bool(pushed(bot.tg, 701, "Only for ministry readers")))
    await asyncio.sleep(1.1)  # one message a second to a chat

    latest = await bot.command(701, "/latest 3")
    assert "Only for ministry readers" in latest and "Only for embassy readers" not in latest
    assert f"7 July 2020 · {MINISTRY}</i>" in latest and EMBASSY not in latest

    counters = await bot.command(701, "/counters")
    today = dt.datetime.now(LONDON).date()
    salisbury = f"<b>{(today - dt.date(2018, 3, 4)).days}</b> days have passed since"
    assert f"<i>{MINISTRY}</i>\n\n{salisbury}" in counters and EMBASSY not in counters

    feed = await bot.command(701, "/feed")
    assert f"{MINISTRY}: http://feeds.test/feeds/ministry/statements.atom" in feed
    assert "embassy-uk" not in feed and "agency" not in feed.split("All sources")[0]
    assert "http://feeds.test/feeds.opml" in feed

    store.set_following(701, "", True)
    await asyncio.sleep(1.1)  # one message a second to a chat
    # Newest first across both (the page's undated statements count as seen today).
    latest = await bot.command(701, "/latest 4")
    assert "Only for ministry readers" in latest and "Only for embassy readers" in latest
    assert latest.count(f"undated · {MINISTRY}") == latest.count(f"undated · {EMBASSY}") == 1
    await asyncio.sleep(1.1)
    counters = await bot.command(701, "/counters")
    assert counters.index(f"<i>{EMBASSY}</i>") < counters.index(f"<i>{MINISTRY}</i>")


async def test_stats_tell_the_operators_each_sources_last_poll(bot: Bot) -> None:
    bot.source.misbehave("/ministry/", "status", status=503, times=5)
    outcome = await asyncio.to_thread(bot.pipelines["ministry"].poll)
    assert outcome.result == "failed"
    stats = await bot.command(ADMIN, "/stats")
    lines = {line.split(":")[0]: line for line in stats.splitlines() if line.startswith("• ")}
    assert set(lines) == {f"• {EMBASSY}", f"• {MINISTRY}", f"• {AGENCY}"}
    assert "UTC, ok" in lines[f"• {EMBASSY}"] and lines[f"• {EMBASSY}"].endswith("in a row: 0")
    assert "UTC, failed (" in lines[f"• {MINISTRY}"] and "HTTP 503" in lines[f"• {MINISTRY}"]
    assert lines[f"• {MINISTRY}"].endswith("failed in a row: 1")
    assert f"Statements stored: {3 * FIRST_FILL}" in stats  # every source's


async def test_daily_counters_go_to_followers_of_sources_with_counters(
    make_config: Callable[..., Path], source: FakeSource, tg: FakeTelegram
) -> None:
    for path in ("/ministry/", "/agency/"):
        source.set_body(path, HOME)
    config = make_config(source.url + "/", source={"name": EMBASSY})
    text = config.read_text("utf-8") + more_sources(source, agency={"counters": False})
    config.write_text(text, "utf-8")
    async with running_bot(config, source, tg) as bot:
        store = bot.ctx.bot_store
        for chat in (801, 802):
            await bot.command(chat, "/start")
        store.set_following(801, "", False)  # 801: the agency alone, which has no counters
        sources = bot.ctx.settings.feeds.sources
        now = dt.datetime(2026, 6, 1, 9, 30, tzinfo=LONDON)
        assert enqueue_daily_counters(bot.ctx.store, store, now, sources) == 1
        assert store.delivery("counters", "2026-06-01", 801) is None
        assert store.delivery("counters", "2026-06-01", 802) is not None


async def test_one_source_deployment_messages_are_unchanged(
    make_config: Callable[..., Path], source: FakeSource, tg: FakeTelegram
) -> None:
    async with running_bot(make_config(source.url + "/"), source, tg) as bot:
        await bot.command(901, "/start")
        assert bot.following(901) == {""}
        await bot.publish("embassy-uk", 8301, "Alone")
        await bot.until(lambda: bool(pushed(tg, 901, "Alone")))
        [text] = pushed(tg, 901, "Alone")
        assert text.startswith("<b>Alone</b>\n<i>7 July 2020</i>")
        await asyncio.sleep(1.1)
        feed = await bot.command(901, "/feed")
        assert feed.startswith("Feeds for a feed reader:\nAtom: http://feeds.test/feeds/statements")
        await asyncio.sleep(1.1)
        assert (await bot.command(901, "/help")).startswith(
            f"I post every new statement from {source.url}/ as soon as it appears"
        )
        await asyncio.sleep(1.1)
        counters = await bot.command(901, "/counters")
        assert counters.startswith("<b>Counters on") and "<i>" not in counters


def upgrade(database_url: str, bot_revision: str) -> None:
    """The feeds tables at their newest, the bot's at ``bot_revision``."""
    store = Store(database_url)
    store.migrate()
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "bot:migrations")
    with store.engine.begin() as conn:
        serialise(conn, "feedbot:migrations")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, bot_revision)
    store.close()


async def test_subscribers_of_an_older_database_follow_the_primary_and_keep_receiving(
    make_config: Callable[..., Path], source: FakeSource, tg: FakeTelegram, database_url: str
) -> None:
    upgrade(database_url, "bot0003")  # the schema before several sources
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for chat, active in ((1001, True), (1002, True), (1003, False)):
            conn.execute(
                subscribers.insert().values(
                    chat_id=chat,
                    chat_type="private",
                    active=active,
                    subscribed_at=utcnow() - dt.timedelta(days=30),
                    counters_enabled=False,
                    counters_time="09:00",
                    origin="command",
                )
            )
    engine.dispose()
    async with running_bot(make_config(source.url + "/"), source, tg) as bot:
        assert {c: bot.following(c) for c in (1001, 1002, 1003)} == {
            1001: {""},
            1002: {""},
            1003: {""},
        }
        await bot.publish("embassy-uk", 8401, "After the upgrade")
        await bot.until(lambda: all(pushed(tg, c, "After the upgrade") for c in (1001, 1002)))
        assert pushed(tg, 1003, "After the upgrade") == []
        # The inactive chat comes back to the source it had.
        await bot.command(1003, "/start")
        assert bot.following(1003) == {""}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(presses=st.lists(st.tuples(st.sampled_from(["", "ministry", "agency"]), st.booleans())))
def test_following_is_what_the_presses_left_and_start_refills_only_an_empty_choice(
    database_url: str, presses: list[tuple[str, bool]]
) -> None:
    store = Store(database_url)
    store.migrate()
    bot_store = BotStore(store.engine)
    bot_store.migrate()
    chat = next(CHATS)
    try:
        bot_store.subscribe(chat, "private", utcnow(), follow=("", "agency"))
        expected = {"", "agency"}
        for key, on in presses:
            changed = bot_store.set_following(chat, key, on)
            assert changed == ((key not in expected) if on else (key in expected))
            expected = expected | {key} if on else expected - {key}
        assert bot_store.following(chat) == expected
        bot_store.subscribe(chat, "private", utcnow(), follow=("", "agency"))
        assert bot_store.following(chat) == (expected or {"", "agency"})
    finally:
        store.close()
