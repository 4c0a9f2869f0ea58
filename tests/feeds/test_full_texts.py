"""Full texts off the poll's path: the poll never waits for a statement page, and each
page keeps its own state (back-off, permanent answers, pre-emption by the poll)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from feeds.config import load_feeds_file
from feeds.fetch import Fetcher
from feeds.pipeline import FULL_TEXT_RETRY_SECONDS, Pipeline, full_text_retry_delay
from feeds.store import Store
from tests.conftest import FIXTURES, ConfigFactory
from tests.support.fake_source import FakeSource

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")
ARTICLES = [f"/fnapr/{n}" for n in range(6931, 6942)]
START = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_pipeline(
    make_config: ConfigFactory,
    store: Store,
    source: FakeSource,
    clock: Clock,
    **fetch: object,
) -> Iterator[Pipeline]:
    # One request a try: the fetcher's own retries would blur the count.
    settings = load_feeds_file(make_config(source.url + "/", fetch={"retries": 0, **fetch}), env={})
    fetcher = Fetcher(settings.fetch, sleep=lambda _s: None)
    yield Pipeline(settings, store, fetcher, clock=clock)
    fetcher.close()


@pytest.fixture
def pipeline(
    make_config: ConfigFactory, store: Store, source: FakeSource, clock: Clock
) -> Iterator[Pipeline]:
    yield from make_pipeline(make_config, store, source, clock)


def statement_pages_fetched(source: FakeSource) -> int:
    return sum(source.count(path) for path in ARTICLES)


def test_the_poll_stores_the_page_without_fetching_any_statement_page(
    pipeline: Pipeline, source: FakeSource
) -> None:
    outcome = pipeline.poll()
    assert outcome.result == "ok" and outcome.changes is not None
    assert len(outcome.changes.new) == 11
    assert statement_pages_fetched(source) == 0
    assert pipeline.store.full_text_counts(5) == {"pending": 11, "failing": 0, "skipped": 0}


def test_full_texts_arrive_later_update_the_copy_and_feeds_and_are_no_edit(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    assert pipeline.fetch_full_texts(20) == 11
    done = store.statement(source.url + "/fnapr/6940")
    assert done is not None and done.content and done.content.startswith("People of Russia")
    assert done.edited_at is None and len(store.versions(done.id)) == 1
    featured = store.statement(source.url + "/fnapr/6941")
    assert featured is not None and featured.published == dt.date(2020, 6, 19)  # from its page
    atom = (pipeline.config.publish.folder / "statements.atom").read_text("utf-8")
    assert "People of Russia" in atom
    assert pipeline.fetch_full_text() is None  # nothing left to read
    again = pipeline.poll()  # the same page: nothing new, nothing edited
    assert again.changes is None or (not again.changes.new and not again.changes.edited)


def test_a_failing_statement_page_backs_off_and_is_retried_when_due(
    pipeline: Pipeline, store: Store, source: FakeSource, clock: Clock
) -> None:
    pipeline.poll()
    source.misbehave("/fnapr/6941", "status", status=500)
    first = pipeline.fetch_full_text()  # newest first: 6941
    assert first is not None and first.result == "retry"
    assert store.full_text_counts(5)["failing"] == 1
    pipeline.fetch_full_texts(20)  # the others; 6941 waits for its back-off
    assert source.count("/fnapr/6941") == 1
    source.clear()
    clock.advance(FULL_TEXT_RETRY_SECONDS - 1)
    assert pipeline.fetch_full_text() is None  # not due yet
    clock.advance(2)
    result = pipeline.fetch_full_text()
    assert result is not None and result.result == "ok"
    assert store.full_text_counts(5) == {"pending": 0, "failing": 0, "skipped": 0}


def test_back_off_doubles_up_to_its_cap() -> None:
    delays = [full_text_retry_delay(n) for n in range(1, 12)]
    assert delays[:3] == [60.0, 120.0, 240.0]
    assert max(delays) == 6 * 3600 and delays == sorted(delays)


@pytest.mark.parametrize(
    ("status", "permanent"), [(404, True), (410, True), (403, True), (429, False), (503, False)]
)
def test_permanent_answers_are_never_retried(
    pipeline: Pipeline,
    store: Store,
    source: FakeSource,
    clock: Clock,
    status: int,
    permanent: bool,
) -> None:
    pipeline.poll()
    source.misbehave("/fnapr/6941", "status", status=status)
    result = pipeline.fetch_full_text()
    assert result is not None and result.result == ("skipped" if permanent else "retry")
    clock.advance(7 * 3600)
    pipeline.fetch_full_texts(20)
    assert source.count("/fnapr/6941") == (1 if permanent else 2)
    assert store.full_text_counts(5)["skipped"] == (1 if permanent else 0)


def test_a_page_the_profile_cannot_read_is_skipped_for_good(
    pipeline: Pipeline, store: Store, source: FakeSource, clock: Clock
) -> None:
    pipeline.poll()
    source.set_body("/fnapr/6941", "<html><body><p>Nothing to see.</p></body></html>")
    result = pipeline.fetch_full_text()
    assert result is not None and result.result == "skipped"
    clock.advance(7 * 3600)
    pipeline.fetch_full_texts(20)
    assert source.count("/fnapr/6941") == 1


def test_links_on_the_source_host_are_trusted_other_private_hosts_are_not(
    make_config: ConfigFactory, store: Store, source: FakeSource, clock: Clock
) -> None:
    elsewhere = source.url.replace("127.0.0.1", "localhost") + "/fnapr/6940"
    source.set_body("/", HOME.replace('href="/fnapr/6940"', f'href="{elsewhere}"'))
    for pipeline in make_pipeline(make_config, store, source, clock, allow_private_addresses=False):
        pipeline.poll()
        pipeline.fetch_full_texts(20)
        trusted = store.statement(source.url + "/fnapr/6939")
        assert trusted is not None and trusted.content  # 127.0.0.1: the source's own host
        refused = store.statement(elsewhere)
        assert refused is not None and refused.content is None  # localhost: another host
        assert source.count("/fnapr/6940") == 0
        assert store.full_text_counts(5)["skipped"] == 1


def test_a_poll_preempts_a_hanging_statement_page(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    source.misbehave("/fnapr/6941", "slow", seconds=30)
    results = []
    job = threading.Thread(target=lambda: results.append(pipeline.fetch_full_text()))
    job.start()
    while source.count("/fnapr/6941") == 0:
        time.sleep(0.02)
    started = time.monotonic()
    outcome = pipeline.poll()
    took = time.monotonic() - started
    job.join(timeout=5)
    assert outcome.ok
    assert took < 2.0, f"the poll waited {took:.1f}s for a statement page"
    # The page gave way: it waits its back-off (the job moves on to other pages).
    assert results and results[0] is not None and results[0].result == "retry"
    assert store.full_text_counts(5)["failing"] == 1


def test_a_stop_ends_a_hanging_statement_page_at_once(
    pipeline: Pipeline, source: FakeSource
) -> None:
    pipeline.poll()
    source.misbehave("/fnapr/6941", "slow", seconds=30)
    stop = threading.Event()
    results = []
    job = threading.Thread(target=lambda: results.append(pipeline.fetch_full_text(stop)))
    job.start()
    while source.count("/fnapr/6941") == 0:
        time.sleep(0.02)
    started = time.monotonic()
    stop.set()
    job.join(timeout=5)
    assert time.monotonic() - started < 1.0
    assert results and results[0] is not None and results[0].result == "cancelled"


def test_statement_pages_are_spaced_and_one_at_a_time(
    make_config: ConfigFactory, store: Store, source: FakeSource, clock: Clock
) -> None:
    for pipeline in make_pipeline(make_config, store, source, clock, article_delay=0.2):
        pipeline.poll()
        assert pipeline.fetch_full_texts(3) == 3
        # As the site saw them: the poll, then each statement page 0.2 s after the
        # end of the request before it (whatever the poll's storing took meanwhile).
        # The site notes a request's end once it has written the answer, which can be
        # a little after the fetcher read it (a busy machine: 1.5 ms seen): 20 ms slack.
        spans = sorted(source.spans, key=lambda s: s.start)[-4:]
        assert spans[0].path == "/"
        for before, after in pairwise(spans):
            assert after.start - before.end >= 0.2 - 0.02, (before, after)


def test_full_text_state_survives_a_restart(
    pipeline: Pipeline, store: Store, source: FakeSource, tmp_path: Path
) -> None:
    pipeline.poll()
    source.misbehave("/fnapr/6941", "status", status=404)
    pipeline.fetch_full_text()
    reopened = Store(pipeline.config.database_url)
    try:
        assert reopened.full_text_counts(5) == {"pending": 10, "failing": 0, "skipped": 1}
    finally:
        reopened.close()


def test_a_stop_during_a_poll_is_not_a_failure_of_the_source(
    make_config: ConfigFactory, store: Store, source: FakeSource, clock: Clock
) -> None:
    settings = load_feeds_file(make_config(source.url + "/", fetch={"retries": 0}), env={})
    stop = threading.Event()
    fetcher = Fetcher(settings.fetch, cancel=stop)
    pipeline = Pipeline(settings, store, fetcher, clock=clock)
    source.misbehave("/", "slow", seconds=30)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    outcome = pipeline.poll()
    assert time.monotonic() - started < 1.5
    assert outcome.result == "cancelled" and not outcome.ok
    assert store.source_state(pipeline.source_url).consecutive_failures == 0
    assert store.recent_polls(1) == []  # nothing recorded
    fetcher.close()
