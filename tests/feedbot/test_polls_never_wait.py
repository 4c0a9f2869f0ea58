"""A new statement reaches Telegram within two seconds of the page fetch that sees
it, whatever its statement page does: answers, hangs, fails or is refused."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feedbot.poller import Poller
from feeds.clock import utcnow
from feeds.model import PollRecord
from feeds.store import Store
from tests.support.fake_source import FakeSource
from tests.support.harness import Harness, Running, with_new_statement

NEW = 7001
FIRST_FILL_PAGES = [f"/fnapr/{n}" for n in range(6931, 6942)]


def page_fetches_after(source: FakeSource, since: float) -> list[float]:
    return [r.time for r in source.requests if r.path == "/" and r.time >= since]


@pytest.mark.parametrize("statement_pages", ["answer", "hang", "fail", "refused"])
async def test_a_new_statement_is_sent_within_two_seconds_of_the_page_fetch(
    running: Running, statement_pages: str
) -> None:
    run, source = running, running.source
    await run.command(101, "/start")
    link = f"/fnapr/{NEW}"
    for path in [*FIRST_FILL_PAGES, link]:
        if statement_pages == "hang":
            source.misbehave(path, "slow", seconds=30)
        elif statement_pages == "fail":
            source.misbehave(path, "status", status=500)
    if statement_pages == "refused":
        # Another host, which the profile does not allow: refused before any request.
        link = f"http://localhost:1/fnapr/{NEW}"
    # A statement page may be in flight (hanging) while the page changes.
    await asyncio.sleep(0.5)
    changed = time.monotonic()
    body = with_new_statement(NEW, "A statement nobody has read yet")
    source.set_body("/", body.replace(f'href="/fnapr/{NEW}"', f'href="{link}"'))
    await run.until(lambda: any("nobody has read" in m["text"] for m in run.tg.sent(101)), 8)
    sent_at = next(
        c.at
        for c in run.tg.calls_of("sendMessage")
        if c.chat_id == 101 and "nobody has read" in c.params["text"]
    )
    # The first fetch after the change is the poll that sees it.
    seen_at = page_fetches_after(source, changed)[0]
    assert sent_at - seen_at <= 2.0, f"{sent_at - seen_at:.2f}s from the page fetch"
    # The service keeps polling on schedule meanwhile (poll_seconds = 1).
    await asyncio.sleep(2.5)
    assert len(page_fetches_after(source, sent_at)) >= 2


async def test_healthz_last_success_is_the_page_stored_not_the_full_texts(
    running: Running,
) -> None:
    source = running.source
    for path in FIRST_FILL_PAGES:
        source.misbehave(path, "slow", seconds=30)
    hanging_since = utcnow()
    await asyncio.sleep(2.5)  # poll_seconds = 1: polls go on while the pages hang
    state = running.ctx.store.source_state(running.ctx.settings.feeds.source.url)
    # "Last success" moved on with the polls, though no statement page has answered.
    assert state.last_success_at is not None and state.last_success_at > hanging_since
    assert state.consecutive_failures == 0
    counts = running.ctx.store.full_text_counts(5)
    assert counts["pending"] + counts["failing"] >= 1  # the hanging pages wait, visibly


async def test_stopping_while_a_poll_listener_runs_is_no_crash(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The service may stop (a rejected bot token, SIGTERM) while a poll's alerts
    still run: the operator sees a calm line, not a traceback of a 'crash'."""
    ctx = harness.ctx
    scheduler = AsyncIOScheduler()
    poller = Poller(ctx.pipeline, ctx.bot_store, False, scheduler)
    listening = asyncio.Event()

    async def slow_listener(outcome: object) -> None:
        listening.set()
        await asyncio.sleep(60)

    poller.listeners.append(slow_listener)
    with caplog.at_level(logging.INFO):
        poll = asyncio.create_task(poller.poll_once())
        await asyncio.wait_for(listening.wait(), 10)
        poll.cancel()
        outcome = await asyncio.wait_for(poll, 5)
    assert outcome is not None  # the poll itself was done and stored
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "shutting down" in caplog.text


async def test_another_process_sees_an_unchanged_poll_within_about_a_second(
    running: Running,
) -> None:
    """Unchanged polls' records wait in memory (written together): the web role or
    `feedbot sources`, in other processes, see each within about a second."""
    elsewhere = Store(running.ctx.settings.feeds.database_url)
    try:
        since = utcnow()

        def newest_unchanged() -> PollRecord | None:
            polls = [p for p in elsewhere.recent_polls(3) if p.result == "not_modified"]
            return polls[0] if polls and polls[0].finished_at > since else None

        await running.until(lambda: newest_unchanged() is not None, 5)
        seen = utcnow()
        poll = newest_unchanged()
        assert poll is not None
        assert (seen - poll.finished_at).total_seconds() <= 1.0 + 0.5  # the delay, slack
        state = elsewhere.source_state(running.ctx.settings.feeds.source.url)
        assert state.last_success_at is not None and state.last_success_at >= poll.started_at
    finally:
        elsewhere.close()
