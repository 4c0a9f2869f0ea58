"""The composition root: the one place that builds feedbot's objects from the settings.

``open_context`` opens what every command shares (stores, fetchers, one pipeline
per source, all behind one host gate); ``build_worker`` adds the polling, alerts
and Telegram parts of a worker (a poller and an alert watch per source);
``build_web`` the HTTP server, given the worker's state as small callables.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.delivery import Sender
from bot.handlers import BotDeps
from bot.store import BotStore
from bot.telegram import TelegramBot
from feedbot.alerts import AlertWatch
from feedbot.poller import HostTurns, PendingWrites, Poller, SourceThreads
from feedbot.settings import Settings
from feedbot.web import DatabaseFeeds, WebApp, WorkerView
from feedbot.worker import Worker
from feeds.clock import utcnow
from feeds.errors import ConfigError, FeedbotError
from feeds.fetch_factory import AnyFetcher, make_fetcher
from feeds.pipeline import Pipeline, combined_builder, feed_context
from feeds.politeness import HostGate, host_of
from feeds.recheck import Recheck
from feeds.render import FeedContext
from feeds.store import Store
from feeds.urls import masked


@dataclass
class Context:
    """What one feedbot process shares, opened once from the settings."""

    settings: Settings
    store: Store
    bot_store: BotStore
    fetcher: AnyFetcher
    pipeline: Pipeline  # the primary source's
    # Set when the process stops: a fetch in flight (poll or statement page) ends at once.
    stopping: threading.Event = field(default_factory=threading.Event)
    # Every source's pipeline by source id, the primary's first (just it when not given).
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    # Fetchers besides ``fetcher`` (a browser source's own), closed with it.
    more_fetchers: list[AnyFetcher] = field(default_factory=list)
    feed_ctx: FeedContext = field(init=False)

    def __post_init__(self) -> None:
        self.feed_ctx = feed_context(self.settings.feeds)
        if not self.pipelines:
            self.pipelines = {self.pipeline.source.id: self.pipeline}

    def pipeline_for(self, source_id: str | None) -> Pipeline:
        """The pipeline of the source with this id (None: the primary's); ConfigError
        naming the known ids if there is none (``--source ID``)."""
        if source_id is None:
            return self.pipeline
        self.settings.feeds.source_by_id(source_id)  # the one-line error
        return self.pipelines[source_id]

    def close(self) -> None:
        for fetcher in (self.fetcher, *self.more_fetchers):
            fetcher.close()
        self.store.close()


class DatabaseUnavailable(FeedbotError):
    """The database could not be opened or brought up to date (exit code 1: the
    URL reads fine, the world may change — a server starting, a permission fixed)."""

    kind = "database"


def open_stores(database_url: str, migrate: bool = True) -> tuple[Store, BotStore]:
    """Both stores on one engine, migrated; what goes wrong is one line naming the
    database URL (password masked) and the cause, never a driver's traceback."""
    shown = f"DATABASE_URL {masked(database_url)}"
    try:
        store = Store(database_url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise ConfigError(f"{shown}: not a database URL ({_first_line(exc)})") from None
    except ImportError as exc:
        raise ConfigError(f"{shown}: its database driver is not installed ({exc})") from None
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(_unavailable(shown, database_url, exc)) from None
    bot_store = BotStore(store.engine)
    if migrate:
        try:
            store.migrate()
            bot_store.migrate()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            store.close()
            raise DatabaseUnavailable(_unavailable(shown, database_url, exc)) from None
    return store, bot_store


def _unavailable(shown: str, database_url: str, exc: BaseException) -> str:
    cause = _cause(exc)
    hint = ""
    if database_url.startswith("sqlite") and ("readonly" in cause or "unable to open" in cause):
        hint = " (the file and its folder must be writable by this user)"
    return f"{shown}: cannot open the database: {cause}{hint}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(exc).__name__


def _cause(exc: BaseException) -> str:
    """The driver's own words (SQLAlchemy wraps them with the SQL and a help link)."""
    orig = getattr(exc, "orig", None)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = " ".join(str(orig if orig is not None else exc).split())
    return text or type(exc).__name__


def open_context(settings: Settings, migrate: bool = True) -> Context:
    store, bot_store = open_stores(settings.feeds.database_url, migrate)
    stopping = threading.Event()
    config = settings.feeds
    made: list[AnyFetcher] = []
    try:
        fetcher = make_fetcher(config, stopping)
        made.append(fetcher)
        # Plain HTTP sources share one fetcher (its connection pools); a browser source
        # renders with a browser of its own.
        http = (
            fetcher
            if config.source.fetch != "browser"
            else make_fetcher(config, stopping, replace(config.source, fetch="http"))
        )
        more = [] if http is fetcher else [http]
        made += more
        # One gate for every source: sources on one host take turns there, however many.
        gate = HostGate(spacing=config.fetch.article_delay)
        combined = combined_builder(config, store)
        pipelines: dict[str, Pipeline] = {}
        for source in config.sources:
            own = http
            if source.primary:
                own = fetcher
            elif source.fetch == "browser":
                own = make_fetcher(config, stopping, source)
                more.append(own)
                made.append(own)
            pipelines[source.id] = Pipeline(
                config, store, own, source=source, gate=gate, combined=combined
            )
    except BaseException:
        for made_fetcher in made:
            made_fetcher.close()
        store.close()
        raise
    return Context(
        settings,
        store,
        bot_store,
        fetcher,
        pipelines[config.source.id],
        stopping,
        pipelines=pipelines,
        more_fetchers=more,
    )


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
        sources=ctx.settings.feeds.sources,
    )
    telegram = TelegramBot(tg, deps)
    sender = Sender(
        telegram.bot,
        ctx.store,
        ctx.bot_store,
        paid_broadcast=tg.paid_broadcast,
        limiter=telegram.limiter,
        sources=ctx.settings.feeds.sources,
    )
    return telegram, sender


def build_worker(ctx: Context, clock: Callable[[], dt.datetime] = utcnow) -> Worker:
    scheduler = AsyncIOScheduler(timezone="UTC")
    config = ctx.settings.feeds
    pipelines = list(ctx.pipelines.values())
    # Sources on one host take turns there, politely spaced; each source polls in a
    # thread of the sources' own pool, so a hanging host holds only its own.
    turns = HostTurns(spacing=config.fetch.article_delay)
    threads = SourceThreads(len({host_of(p.source_url) for p in pipelines}))
    writes = PendingWrites(ctx.store, threads)
    # Unchanged pages are asked again on the event loop (feeds.recheck).
    recheck = Recheck(config.fetch)
    pollers = [
        Poller(
            pipeline,
            ctx.bot_store,
            ctx.settings.telegram.follow_edits,
            scheduler,
            clock,
            turns=turns,
            threads=threads,
            writes=writes,
            recheck=recheck,
        )
        for pipeline in pipelines
    ]
    alerts = {
        pipeline.source.id: AlertWatch(
            pipeline.store,
            ctx.bot_store,
            ctx.settings.telegram.admin_chat_ids,
            ctx.settings.alerts,
            source=pipeline.source,
            named=len(pipelines) > 1,
        )
        for pipeline in pipelines
    }
    telegram, sender = build_telegram(ctx) or (None, None)
    return Worker(
        ctx.stopping,
        ctx.settings,
        ctx.store,
        ctx.bot_store,
        scheduler,
        pollers,
        alerts,
        telegram=telegram,
        sender=sender,
        clock=clock,
        threads=threads,
    )


def worker_view(worker: Worker | None) -> WorkerView:
    """What the web server may know of the worker: its state, the bot's name, the
    webhook route — each read when asked, as the worker starts and stops."""
    if worker is None:
        return WorkerView()
    return WorkerView(
        state=worker.state,
        bot=worker.bot_state,
        bot_username=lambda: worker.telegram.username if worker.telegram else None,
        webhook=lambda: (
            (worker.telegram.webhook_path, worker.telegram.take_update)
            if worker.telegram is not None and worker.active.is_set()
            else None
        ),
    )


def build_web(
    ctx: Context, worker: Worker | None = None, feeds_from_database: bool = False
) -> tuple[WebApp, DatabaseFeeds | None]:
    feeds = DatabaseFeeds(ctx.store) if feeds_from_database else None
    return WebApp(ctx.settings, ctx.store, ctx.bot_store, worker_view(worker), feeds), feeds
