"""Polls of an unchanged page, asked on the event loop (feeds.recheck) by the
service's pollers: what the source sees, and what still gets written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feedbot.app import open_context
from feedbot.poller import Poller
from feedbot.service import ROLES, run_service
from feedbot.settings import load_settings
from feeds.clock import utcnow
from feeds.fetch import Fetcher
from feeds.recheck import Recheck
from feeds.store import Store
from tests.support.fake_source import FakeSource
from tests.support.harness import Harness, Running


@pytest.fixture
async def poller(harness: Harness) -> AsyncIterator[Poller]:
    ctx = harness.ctx
    recheck = Recheck(ctx.settings.feeds.fetch)
    polling = Poller(
        ctx.pipeline, ctx.bot_store, False, AsyncIOScheduler(), harness.clock, recheck=recheck
    )
    yield polling
    await polling.stop()
    await recheck.close()


def page_fetches(harness: Harness) -> int:
    return harness.source.count("/")


def fetcher_requests(harness: Harness) -> int:
    """Requests the pipeline's fetcher (requests, urllib3's pools) has sent."""
    fetcher = harness.ctx.pipeline.fetcher
    assert isinstance(fetcher, Fetcher)
    pools = fetcher.session.get_adapter("http://").poolmanager.pools  # type: ignore[attr-defined]
    # urllib3 refuses to iterate its pool container itself; keys() is a copy.
    return sum(pools[key].num_requests for key in pools.keys())  # noqa: SIM118


async def test_the_first_poll_of_a_london_day_still_republishes(
    harness: Harness, poller: Poller
) -> None:
    """The day counters move on at London midnight: the first poll of a day rewrites
    the feeds even when the page is unchanged and was asked on the event loop, with
    the one request it made."""
    for _ in range(2):  # the fill was stored by the harness; now two unchanged polls
        outcome = await poller.poll_once()
        assert outcome is not None and outcome.result == "not_modified"
    harness.clock.advance(24 * 3600)  # tomorrow
    before, by_fetcher = page_fetches(harness), fetcher_requests(harness)
    outcome = await poller.poll_once()
    assert outcome is not None and outcome.result == "not_modified"
    assert "counters.atom" in outcome.feeds_written
    assert page_fetches(harness) == before + 1
    assert fetcher_requests(harness) == by_fetcher  # the one request was the loop's
    # The next one that day writes nothing more.
    outcome = await poller.poll_once()
    assert outcome is not None and outcome.feeds_written == []


async def test_a_poll_under_way_ends_with_the_pollers_stop(
    harness: Harness, poller: Poller
) -> None:
    await poller.poll_once()
    harness.source.misbehave("/", "slow", seconds=30)
    poller.schedule(0)
    await asyncio.sleep(0.3)  # asked, and waiting for an answer that does not come
    started = asyncio.get_running_loop().time()
    await poller.stop(grace=0.5)
    assert asyncio.get_running_loop().time() - started < 2
    harness.source.clear()
    stopped_at = page_fetches(harness)
    await asyncio.sleep(1.5)  # poll_seconds = 1: no poll follows a stop
    assert page_fetches(harness) == stopped_at


async def test_unchanged_polls_cost_the_source_one_request_each(running: Running) -> None:
    """In the service (poll_seconds = 1): each unchanged poll is one request, every
    one of them the same, and each is recorded."""
    source, ctx = running.source, running.ctx
    since, mark = utcnow(), len(source.requests)
    await asyncio.sleep(4.5)
    asked = [r for r in source.requests[mark:] if r.path == "/"]
    elsewhere = Store(ctx.settings.feeds.database_url)
    try:
        await running.until(
            lambda: (
                len([p for p in elsewhere.recent_polls(20) if p.started_at >= since])
                >= len(asked) - 1
            ),
            5,
        )
        polls = [p for p in elsewhere.recent_polls(20) if p.started_at >= since]
    finally:
        elsewhere.close()
    assert len(asked) >= 3
    assert {p.result for p in polls} == {"not_modified"}
    assert len(asked) - 1 <= len(polls) <= len(asked)  # the newest may be under way
    # Asked through the fetcher or on the event loop, the source sees one request.
    assert all(r.headers == asked[0].headers for r in asked)
    assert all("If-None-Match" in r.headers for r in asked)


async def test_the_service_stops_at_once_while_a_poll_waits_on_the_event_loop(
    make_config: Callable[..., Path], source: FakeSource
) -> None:
    settings = load_settings(make_config(source.url + "/"), env={})
    ctx = open_context(settings)
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(ctx, ROLES["run"], stop=stop))
    try:
        deadline = time.monotonic() + 10
        while source.count("/") < 3:  # the fill, then unchanged polls on the loop
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        source.misbehave("/", "slow", seconds=30)
        asked = source.count("/")
        while source.count("/") == asked:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # asked, and waiting for an answer that does not come
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(service, 15)
        assert time.monotonic() - started < 1.5
    finally:
        stop.set()
        source.clear()
        ctx.close()


async def test_a_poll_that_outlasts_its_interval_is_followed_by_the_next(
    harness: Harness, poller: Poller
) -> None:
    """poll_seconds = 1, and the poll's listeners take 1.5 s: the next poll starts
    as soon as this one ends — never two at once, and never none."""
    ended: list[float] = []

    async def slow_listener(outcome: object) -> None:
        await asyncio.sleep(1.5)
        ended.append(time.monotonic())

    poller.listeners.append(slow_listener)
    poller.schedule(0)
    await asyncio.sleep(5)
    assert len(ended) >= 3
    assert harness.source.most_in_flight == 1
