"""Polling on APScheduler: each poll schedules the next one.

The next run is computed from the poll's outcome (interval with jitter, or
exponential back-off after failures), so APScheduler's interval jitter, which
only ever delays and accumulates, is not used. Jobs run one at a time
(``max_instances=1``) and a missed run fires once, late (``coalesce``, no
grace limit), never twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feeds.backoff import next_delay
from feeds.pipeline import Pipeline, PollOutcome

log = logging.getLogger(__name__)
LONDON = ZoneInfo("Europe/London")
POLL_JOB = "poll"

PollListener = Callable[[PollOutcome], Awaitable[None]]


class Poller:
    def __init__(self, pipeline: Pipeline, scheduler: AsyncIOScheduler) -> None:
        self.pipeline = pipeline
        self.scheduler = scheduler
        self.listeners: list[PollListener] = []
        self.last: PollOutcome | None = None

    def start(self, first_delay: float = 0.0) -> None:
        self._schedule(first_delay)
        # Counters change at midnight even when the source is silent or down.
        self.scheduler.add_job(
            self.republish,
            "cron",
            hour=0,
            minute=0,
            second=30,
            timezone=LONDON,
            id="republish",
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=None,
        )

    def _schedule(self, delay: float) -> None:
        run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
        self.scheduler.add_job(
            self.poll_once,
            "date",
            run_date=run_at,
            id=POLL_JOB,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    async def poll_once(self) -> PollOutcome | None:
        source = self.pipeline.config.source
        try:
            # requests and the store are blocking: keep them off the event loop.
            outcome = await asyncio.to_thread(self.pipeline.poll)
        except Exception:
            log.exception("poll crashed; trying again after the usual interval")
            self._schedule(next_delay(1, source.poll_seconds, source.backoff_max_seconds))
            return None
        self.last = outcome
        log.info("%s; next poll in %.0fs", outcome.summary(), outcome.next_delay)
        self._schedule(outcome.next_delay)
        for listener in self.listeners:
            try:
                await listener(outcome)
            except Exception:
                log.exception("a poll listener failed")
        return outcome

    async def republish(self) -> None:
        await asyncio.to_thread(self.pipeline.publish)
