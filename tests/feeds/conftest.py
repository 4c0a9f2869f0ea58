"""The source side's tests use the source side's settings only: ``settings`` here is
a ``FeedsConfig`` read by ``feeds.config``, never the process's ``Settings``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from feeds.config import FeedsConfig, load_feeds_file
from feeds.fetch import Fetcher
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.conftest import ConfigFactory
from tests.support.fake_source import FakeSource


@pytest.fixture
def settings(make_config: ConfigFactory, source: FakeSource) -> FeedsConfig:
    return load_feeds_file(make_config(source.url + "/"), env={})


@pytest.fixture
def store(settings: FeedsConfig) -> Iterator[Store]:
    s = Store(settings.database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def pipeline(settings: FeedsConfig, store: Store) -> Iterator[Pipeline]:
    fetcher = Fetcher(settings.fetch, sleep=lambda _s: None)
    yield Pipeline(settings, store, fetcher, sleep=lambda _s: None)
    fetcher.close()
