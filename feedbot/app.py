"""The composition root: the one place that builds feedbot's objects from the settings.

``open_context`` opens what every command shares (stores, fetcher, pipeline);
``build_worker`` adds the polling, alerts and Telegram parts of a worker;
``build_web`` the HTTP server, given the worker's state as small callables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.delivery import Sender
from bot.handlers import BotDeps
from bot.store import BotStore
from bot.telegram import TelegramBot
from feedbot.alerts import AlertWatch
from feedbot.poller import Poller
from feedbot.settings import Settings
from feedbot.web import DatabaseFeeds, WebApp, WorkerView
from feedbot.worker import Worker
from feeds.clock import utcnow
from feeds.fetch import Fetcher
from feeds.pipeline import Pipeline, feed_context
from feeds.render import FeedContext
from feeds.store import Store


@dataclass
class Context:
    """What one feedbot process shares, opened once from the settings."""

    settings: Settings
    store: Store
    bot_store: BotStore
    fetcher: Fetcher
    pipeline: Pipeline
    feed_ctx: FeedContext = field(init=False)

    def __post_init__(self) -> None:
        self.feed_ctx = feed_context(self.settings.feeds)

    def close(self) -> None:
        self.fetcher.close()
        self.store.close()


def open_context(settings: Settings, migrate: bool = True) -> Context:
    store = Store(settings.feeds.database_url)
    bot_store = BotStore(store.engine)
    if migrate:
        store.migrate()
        bot_store.migrate()
    fetcher = Fetcher(settings.feeds.fetch)
    return Context(settings, store, bot_store, fetcher, Pipeline(settings.feeds, store, fetcher))


def build_telegram(ctx: Context) -> tuple[TelegramBot, Sender] | None:
    """The bot and its outbox sender, when a token is set (nothing is contacted yet)."""
    tg = ctx.settings.telegram
    if not tg.token:
        return None
    deps = BotDeps(
        store=ctx.store,
        bot_store=ctx.bot_store,
        public_url=ctx.settings.feeds.publish.public_url,
        source_url=ctx.settings.feeds.source.url,
        admin_chat_ids=tg.admin_chat_ids,
        preview=ctx.pipeline.preview,
    )
    telegram = TelegramBot(tg, deps)
    sender = Sender(
        telegram.bot,
        ctx.store,
        ctx.bot_store,
        paid_broadcast=tg.paid_broadcast,
        limiter=telegram.limiter,
    )
    return telegram, sender


def build_worker(ctx: Context, clock: Callable[[], dt.datetime] = utcnow) -> Worker:
    scheduler = AsyncIOScheduler(timezone="UTC")
    poller = Poller(
        ctx.pipeline, ctx.bot_store, ctx.settings.telegram.follow_edits, scheduler, clock
    )
    alerts = AlertWatch(
        ctx.store, ctx.bot_store, ctx.settings.telegram.admin_chat_ids, ctx.settings.alerts
    )
    telegram, sender = build_telegram(ctx) or (None, None)
    return Worker(
        ctx.settings,
        ctx.store,
        ctx.bot_store,
        scheduler,
        poller,
        alerts,
        telegram=telegram,
        sender=sender,
        clock=clock,
    )


def worker_view(worker: Worker | None) -> WorkerView:
    """What the web server may know of the worker: its state, the bot's name, the
    webhook route — each read when asked, as the worker starts and stops."""
    if worker is None:
        return WorkerView()
    return WorkerView(
        state=worker.state,
        bot_username=lambda: worker.telegram.username if worker.telegram else None,
        webhook_route=lambda: (
            worker.telegram.webhook_route()
            if worker.telegram is not None and worker.active.is_set()
            else None
        ),
    )


def build_web(
    ctx: Context, worker: Worker | None = None, feeds_from_database: bool = False
) -> tuple[WebApp, DatabaseFeeds | None]:
    feeds = DatabaseFeeds(ctx.store) if feeds_from_database else None
    return WebApp(ctx.settings, ctx.store, ctx.bot_store, worker_view(worker), feeds), feeds
