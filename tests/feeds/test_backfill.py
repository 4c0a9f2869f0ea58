"""`feedbot backfill` walks the archive pages: every statement once, resumable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from feeds.backfill import backfill
from feeds.config import FeedsConfig, load_feeds_file
from feeds.fetch import Fetcher
from feeds.store import Store
from tests.conftest import FIXTURES, ConfigFactory
from tests.support.fake_source import FakeSource

ARCHIVE_IDS = {f"/fnapr/{n}" for n in range(5001, 5021)}


@pytest.fixture
def archive() -> Iterator[FakeSource]:
    """The archive pages, under the fixture site's home page."""
    with FakeSource(root=FIXTURES / "archive") as src:
        src.set_body("/", (FIXTURES / "site" / "index.html").read_bytes())
        yield src


@pytest.fixture
def archive_settings(make_config: ConfigFactory, archive: FakeSource) -> FeedsConfig:
    return load_feeds_file(make_config(archive.url + "/"), env={})


def stored_paths(store: Store, base: str) -> set[str]:
    return {s.id.removeprefix(base) for s in store.statements()}


def test_walks_every_page_and_stores_each_statement_once(
    archive_settings: FeedsConfig, store: Store, archive: FakeSource
) -> None:
    fetcher = Fetcher(archive_settings.fetch)
    seen: list[str] = []
    result = backfill(
        archive_settings,
        store,
        fetcher,
        progress=lambda r, url: seen.append(url),
        sleep=lambda _s: None,
    )
    fetcher.close()
    assert result.finished and result.error is None
    assert result.pages == 4 and result.seen == 23 and result.new == 20  # 3 overlaps
    assert stored_paths(store, archive.url) == ARCHIVE_IDS
    assert seen == [archive.url + "/fnapr/", *(f"{archive.url}/fnapr/?page={k}" for k in (2, 3, 4))]
    # Dated history: the feed order follows publication dates, not the walk.
    newest = store.statements(limit=1)[0]
    assert newest.id.endswith("/fnapr/5020") and newest.published == dt.date(2020, 6, 30)


def test_a_broken_page_stops_the_walk_and_a_rerun_resumes_after_the_last_good_page(
    archive_settings: FeedsConfig, store: Store, archive: FakeSource
) -> None:
    archive.misbehave("/fnapr/?page=3", "status", status=500, times=10)
    fetcher = Fetcher(archive_settings.fetch, sleep=lambda _s: None)
    first = backfill(archive_settings, store, fetcher, sleep=lambda _s: None)
    assert not first.finished and first.error is not None and first.pages == 2
    assert len(stored_paths(store, archive.url)) == 11  # pages 1 and 2, one overlap
    archive.clear()
    before = archive.count("/fnapr/")
    second = backfill(archive_settings, store, fetcher, sleep=lambda _s: None)
    fetcher.close()
    assert second.finished and second.skipped == 2 and second.pages == 2
    assert archive.count("/fnapr/") == before  # walked pages are not fetched again
    assert stored_paths(store, archive.url) == ARCHIVE_IDS
    assert store.archive_progress() == {}  # a finished walk starts afresh next time


def test_bounds(archive_settings: FeedsConfig, store: Store, archive: FakeSource) -> None:
    fetcher = Fetcher(archive_settings.fetch)
    result = backfill(archive_settings, store, fetcher, max_pages=1, sleep=lambda _s: None)
    # A bounded walk stops where a rerun goes on from.
    assert result.bounded and not result.finished and result.pages == 1 and result.new == 6
    since = backfill(
        archive_settings, store, fetcher, since=dt.date(2020, 6, 1), sleep=lambda _s: None
    )
    fetcher.close()
    assert since.finished
    assert all(s.published and s.published >= dt.date(2020, 6, 1) for s in store.statements())
    # Page 1 is not read again; page 2 reaches older statements, so the walk ends there.
    assert (since.skipped, since.pages) == (1, 1)
    assert archive.count("/fnapr/") == 1
