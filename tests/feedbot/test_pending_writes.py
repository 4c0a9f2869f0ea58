"""The service's writes of unchanged polls' records (feeds.pending), a second after
a burst: how they end when the service stops."""

from __future__ import annotations

import asyncio

from feedbot.poller import PendingWrites
from feedbot.settings import Settings
from feeds.pipeline import Pipeline
from feeds.store import Store


async def test_stopping_waits_for_a_write_in_flight(
    pipeline: Pipeline, store: Store, settings: Settings
) -> None:
    """The service's stop waits for a write of unchanged polls already under way,
    rather than leave it running in a thread past the service's end."""
    pipeline.poll()
    assert pipeline.poll().result == "not_modified"
    writes = PendingWrites(store, delay=0)
    blocker = Store(settings.feeds.database_url).engine.connect()
    try:
        # Another connection holds the polls table: the write waits for it.
        if blocker.dialect.name == "sqlite":
            blocker.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            blocker.begin()
            blocker.exec_driver_sql("LOCK TABLE polls IN ACCESS EXCLUSIVE MODE")
        writes.soon()
        await asyncio.sleep(0.3)  # the write has started, and waits
        stopping = asyncio.create_task(writes.close())
        await asyncio.sleep(0.3)
        assert not stopping.done()
        blocker.rollback()
        await asyncio.wait_for(stopping, 10)
    finally:
        blocker.close()
    elsewhere = Store(settings.feeds.database_url)
    try:
        assert [p.result for p in elsewhere.recent_polls()] == ["not_modified", "ok"]
    finally:
        elsewhere.close()
