"""The parts one feedbot process shares, opened once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.settings import Settings
from feeds.fetch import Fetcher
from feeds.pipeline import Pipeline, feed_context
from feeds.render import FeedContext
from feeds.store import Store


@dataclass
class Context:
    settings: Settings
    store: Store
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
    if migrate:
        store.migrate()
    fetcher = Fetcher(settings.feeds.fetch)
    return Context(settings, store, fetcher, Pipeline(settings.feeds, store, fetcher))
