"""The parts one feedbot process shares, opened once from the settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from bot.settings import Settings
from bot.store import BotStore
from feeds.fetch import Fetcher
from feeds.model import Changes
from feeds.pipeline import Pipeline, feed_context
from feeds.render import FeedContext
from feeds.store import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    bot_store: BotStore
    fetcher: Fetcher
    pipeline: Pipeline
    feed_ctx: FeedContext = field(init=False)

    def __post_init__(self) -> None:
        self.feed_ctx = feed_context(self.settings.feeds)
        self.pipeline.on_changes = self.enqueue_new_statements

    def enqueue_new_statements(self, conn: Connection, changes: Changes) -> None:
        """Runs inside the poll's transaction: statements and deliveries commit together.
        The first fill of an empty store is a record of the past: nobody is notified."""
        if changes.first_fill:
            return
        now = dt.datetime.now(dt.UTC)
        if changes.new:
            # Oldest first, so each chat receives them in publication order.
            self.bot_store.enqueue_statements(list(reversed(changes.new)), now, conn)
        if changes.edited and self.settings.telegram.follow_edits:
            self.bot_store.enqueue_edits(changes.edited, now, conn)

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
