"""Daily counters: once per calendar day per chat, at the chat's London time,
across DST changes, restarts and downtime — driven by a fake clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from bot.outbox import enqueue_daily_counters
from feedbot.app import Context, open_context
from feedbot.settings import Settings
from feeds.clock import LONDON
from feeds.pipeline import Pipeline


def london(*args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LONDON, fold=fold).astimezone(dt.UTC)  # type: ignore[misc]


@pytest.fixture
def ctx(settings: Settings, pipeline: Pipeline) -> Iterator[Context]:
    pipeline.poll()  # the store knows the page's counters
    context = open_context(settings)
    yield context
    context.close()


def queued(ctx: Context, day: str) -> list[int]:
    return sorted(item.chat_id for item in ctx.bot_store.deliveries("counters", day))


def test_once_a_day_at_the_chosen_time(ctx: Context) -> None:
    store = ctx.bot_store
    store.subscribe(1, "private", london(2026, 6, 1, 8, 0))
    store.subscribe(2, "private", london(2026, 6, 1, 8, 0))
    store.set_counters(2, at="07:15")
    store.subscribe(3, "private", london(2026, 6, 1, 8, 0))
    store.set_counters(3, enabled=False)

    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 1, 7, 14)) == 0
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 1, 7, 15)) == 1
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 1, 8, 59)) == 0
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 1, 9, 0)) == 1
    for minute in range(0, 60, 5):  # checked every few minutes: nothing more today
        assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 1, 9, minute)) == 0
    assert queued(ctx, "2026-06-01") == [1, 2]
    # The next calendar day, again once each.
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 2, 9, 30)) == 2
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 2, 23, 59)) == 0
    assert queued(ctx, "2026-06-02") == [1, 2]


def test_clocks_going_back_do_not_send_twice(ctx: Context) -> None:
    # 25 October 2026: 01:00-02:00 happens twice in London.
    ctx.bot_store.subscribe(1, "private", london(2026, 10, 24, 12, 0))
    ctx.bot_store.set_counters(1, at="01:30")
    first = london(2026, 10, 25, 1, 30, fold=0)  # 00:30 UTC
    second = london(2026, 10, 25, 1, 30, fold=1)  # 01:30 UTC, an hour later
    assert second - first == dt.timedelta(hours=1)
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, first) == 1
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, second) == 0
    assert queued(ctx, "2026-10-25") == [1]


def test_a_time_skipped_by_clocks_going_forward_is_sent_once(ctx: Context) -> None:
    # 29 March 2026: London goes from 01:00 straight to 02:00; 01:30 never happens.
    ctx.bot_store.subscribe(1, "private", london(2026, 3, 28, 12, 0))
    ctx.bot_store.set_counters(1, at="01:30")
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 3, 29, 0, 59)) == 0
    just_after = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)  # 02:00 BST
    assert just_after.astimezone(LONDON).hour == 2
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, just_after) == 1
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, just_after + dt.timedelta(hours=5)) == 0


def test_restarts_and_downtime(ctx: Context, settings: Settings) -> None:
    ctx.bot_store.subscribe(1, "private", london(2026, 6, 1, 8, 0))
    # Down from 08:00 to 11:40: the 09:00 message goes out late, once.
    assert enqueue_daily_counters(ctx.store, ctx.bot_store, london(2026, 6, 1, 11, 40)) == 1
    restarted = open_context(settings)
    try:
        assert (
            enqueue_daily_counters(restarted.store, restarted.bot_store, london(2026, 6, 1, 11, 41))
            == 0
        )
        assert (
            enqueue_daily_counters(restarted.store, restarted.bot_store, london(2026, 6, 1, 18, 0))
            == 0
        )
    finally:
        restarted.close()
    assert queued(ctx, "2026-06-01") == [1]


def test_counters_are_computed_for_the_day_not_read_from_the_page(ctx: Context) -> None:
    from bot.messages import counters_message

    (message,) = counters_message(ctx.store.counters(), dt.date(2026, 6, 1))
    salisbury = (dt.date(2026, 6, 1) - dt.date(2018, 3, 4)).days
    glushkov = (dt.date(2026, 6, 1) - dt.date(2018, 3, 12)).days
    assert f"<b>{salisbury}</b> days have passed since the Salisbury incident" in message
    assert f"<b>{glushkov}</b> days have passed since the death of Nikolay Glushkov" in message
    (on_page_day,) = counters_message(ctx.store.counters(), dt.date(2020, 7, 6))
    assert "<b>855</b>" in on_page_day and "<b>847</b>" in on_page_day
