"""A Sender driven by hand against the fake Bot API server: the real Application
(flood limiter, request timeout from the settings) initialised but not polling,
a store holding the first fill of the fixture page, and a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot

from bot.delivery import Sender
from bot.handlers import BotDeps
from bot.store import BotStore, OutboxItem
from bot.telegram import TelegramBot
from feedbot.app import Context, open_context
from feedbot.poller import poll_and_queue
from feedbot.service import ROLES, run_service
from feedbot.settings import load_settings
from feeds.clock import utcnow
from feeds.pipeline import PollOutcome
from tests.support.fake_source import FakeSource
from tests.support.fake_telegram import FakeTelegram

FIRST_FILL = 11  # statements on the fixture home page
HOME = (Path(__file__).resolve().parents[1] / "fixtures" / "site" / "index.html").read_text("utf-8")


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def with_new_statement(n: int, title: str, lead: str = "A lead.") -> str:
    """The fixture home page with one more statement on top."""
    item = f"""<ul class="news-list">
      <li class="news-item"><span class="news-date">07.07.2020</span> - <a class="news-title" href="/fnapr/{n}">{title}</a>
        <p class="news-lead">{lead}</p></li>"""
    return HOME.replace('<ul class="news-list">', item, 1)


def received(tg: FakeTelegram, marker: str) -> Counter[int]:
    """How many messages containing ``marker`` each chat was sent (successful calls)."""
    return Counter(
        c.chat_id
        for c in tg.calls_of("sendMessage")
        if c.status == 200 and c.chat_id is not None and marker in str(c.params.get("text"))
    )


def subscribe(bot_store: BotStore, chats: list[int], chat_type: str = "private") -> None:
    """Subscribe chats with daily counters off, so only statements go out."""
    now = utcnow()
    for chat in chats:
        bot_store.subscribe(chat, chat_type, now)
        bot_store.set_counters(chat, enabled=False)


def by_chat(items: list[OutboxItem]) -> dict[int, OutboxItem]:
    return {item.chat_id: item for item in items}


class Clock:
    """Real time, plus whatever the test skipped ahead (back-off waits)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


@dataclass
class Harness:
    ctx: Context
    tg: FakeTelegram
    source: FakeSource
    bot: Bot
    clock: Clock = field(default_factory=Clock)

    def sender(self, **kw: Any) -> Sender:
        return Sender(self.bot, self.ctx.store, self.ctx.bot_store, clock=self.clock, **kw)

    async def poll(self) -> PollOutcome:
        """One poll as the worker runs it: stored, and queued for the chats."""
        return await asyncio.to_thread(
            poll_and_queue,
            self.ctx.pipeline,
            self.ctx.bot_store,
            self.ctx.settings.telegram.follow_edits,
            self.clock(),
        )

    async def publish(self, n: int, title: str) -> str:
        """Put a statement on the page and poll: it is stored and queued for every subscriber."""
        self.source.set_body("/", with_new_statement(n, title))
        outcome = await self.poll()
        assert outcome.changes is not None
        assert [s.title for s in outcome.changes.new] == [title]
        return outcome.changes.new[0].id

    def rows(self, statement_id: str) -> dict[int, OutboxItem]:
        return by_chat(self.ctx.bot_store.deliveries("statement", statement_id))


async def drain(sender: Sender) -> None:
    """Deliver everything due now (by the sender's clock) and wait for it to finish."""
    while await sender.dispatch_due():
        pass
    await sender.drain_tasks()


@pytest.fixture
async def harness(
    make_config: Callable[..., Path], source: FakeSource, tg: FakeTelegram
) -> AsyncIterator[Harness]:
    """The real Application (flood limiter, request timeout of 1 s from the settings),
    initialised but not polling; the store holds the first fill of the page."""
    settings = load_settings(
        make_config(source.url + "/", telegram={"request_timeout": 1}),
        env={"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url},
    )
    ctx = open_context(settings)
    telegram: TelegramBot | None = None
    try:
        await asyncio.to_thread(ctx.pipeline.poll)
        assert ctx.store.count_statements() == FIRST_FILL
        deps = BotDeps(ctx.store, ctx.bot_store, "http://feeds.test", source.url + "/", ())
        telegram = TelegramBot(settings.telegram, deps)
        await telegram.app.initialize()
        yield Harness(ctx, tg, source, telegram.bot)
    finally:
        if telegram is not None:
            await telegram.app.shutdown()
        ctx.close()


@dataclass
class Running:
    """`feedbot run`'s service in the test's event loop: HTTP, worker and the real
    Application talking to the fake Bot API server; the first poll is done."""

    ctx: Context
    tg: FakeTelegram
    source: FakeSource

    async def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    async def command(self, chat_id: int, text: str, **kw: Any) -> str:
        """Type a command in a chat; the bot's reply."""
        before = len(self.tg.sent(chat_id))
        self.tg.send_command(chat_id, text, **kw)
        await self.until(lambda: len(self.tg.sent(chat_id)) > before)
        return str(self.tg.sent(chat_id)[-1]["text"])


@pytest.fixture
async def running(
    make_config: Callable[..., Path], source: FakeSource, tg: FakeTelegram
) -> AsyncIterator[Running]:
    path = make_config(source.url + "/", telegram={"admin_chat_ids": [900]})
    settings = load_settings(
        path, env={"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url}
    )
    ctx = open_context(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(ctx, ROLES["run"], stop=stop))
    run = Running(ctx, tg, source)
    try:
        await run.until(lambda: ctx.store.count_statements() == FIRST_FILL)
        yield run
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        ctx.close()
