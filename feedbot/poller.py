"""Polling on APScheduler: each poll schedules the next one, and hands what it
stored to the Telegram outbox (``poll_and_queue``).

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

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.outbox import queue_changes
from bot.store import BotStore
from feeds.backoff import next_delay
from feeds.clock import LONDON, utcnow
from feeds.pipeline import Pipeline, PollOutcome

log = logging.getLogger(__name__)
POLL_JOB = "poll"

PollListener = Callable[[PollOutcome], Awaitable[None]]


def poll_and_queue(
    pipeline: Pipeline,
    bot_store: BotStore,
    follow_edits: bool,
    now: dt.datetime,
    accept_retitles: bool = False,
) -> PollOutcome:
    """One poll cycle as the process runs it: the pipeline stores the page, and in
    that same transaction every new statement (and edit) is queued for the chats."""
    return pipeline.poll(
        now,
        on_stored=lambda conn, changes: queue_changes(bot_store, changes, now, conn, follow_edits),
        accept_retitles=accept_retitles,
    )


class Poller:
    def __init__(
        self,
        pipeline: Pipeline,
        bot_store: BotStore,
        follow_edits: bool,
        scheduler: AsyncIOScheduler,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.pipeline = pipeline
        self.bot_store = bot_store
        self.follow_edits = follow_edits
        self.scheduler = scheduler
        self.clock = clock
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
        run_at = utcnow() + dt.timedelta(seconds=delay)
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
            outcome = await asyncio.to_thread(
                poll_and_queue, self.pipeline, self.bot_store, self.follow_edits, self.clock()
            )
        except asyncio.CancelledError:
            # The process is stopping (the fetch in flight ends with it): not a crash,
            # and nobody awaits this job to hear of it.
            log.info("poll stopped: the service is shutting down")
            return None
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
