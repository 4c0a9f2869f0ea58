"""Polling on APScheduler: one poller per source, each poll scheduling that
source's next one, and handing what it stored to the Telegram outbox
(``poll_and_queue``).

Sources never wait for one another: each has its own job, interval and back-off,
and polls run in threads of their own pool (``SourceThreads``). Sources on one
host take turns (``HostTurns``): one poll at a time there, politely spaced, and a
poll waiting for its turn holds no thread.

The next run is computed from the poll's outcome (interval with jitter, or
exponential back-off after failures), so APScheduler's interval jitter, which
only ever delays and accumulates, is not used: each source has one standing job
whose next run each poll sets (moving a job is cheap; adding one per poll made
APScheduler inspect the callable's signature every time, a fifth of an unchanged
poll's CPU). Its own interval, the back-off cap, only matters should a poll
never set it. Jobs run one at a time (``max_instances=1``) and a missed run fires
once, late (``coalesce``, no grace limit), never twice.

An unchanged page's poll record waits in memory (``feeds.pending``);
``PendingWrites`` writes what waits a second after the first of a burst, in one
transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.outbox import queue_changes
from bot.store import BotStore
from feeds.backoff import next_delay
from feeds.clock import LONDON, utcnow
from feeds.pipeline import Pipeline, PollOutcome
from feeds.politeness import host_of
from feeds.store import Store

log = logging.getLogger(__name__)
POLL_JOB = "poll"  # the primary source's job; another source's is "poll:<id>"
MAX_SOURCE_THREADS = 64
WRITE_DELAY = 1.0  # seconds an unchanged poll's record may wait in memory

PollListener = Callable[[PollOutcome], Awaitable[None]]
T = TypeVar("T")


def job_id(kind: str, pipeline: Pipeline) -> str:
    """The scheduler job of this kind for this source: ``poll``, ``poll:<id>``."""
    source = pipeline.source
    return kind if source.primary else f"{kind}:{source.id}"


class HostTurns:
    """One poll at a time per host, ``spacing`` seconds apart, in the event loop: a
    source waiting for its host's turn waits as a coroutine, never as a thread (the
    HostGate in the pipeline holds the request itself to the same rule)."""

    def __init__(self, spacing: float = 0.0) -> None:
        self.spacing = spacing
        self._locks: dict[str, asyncio.Lock] = {}
        self._free_at: dict[str, float] = {}

    @asynccontextmanager
    async def turn(self, url: str) -> AsyncIterator[None]:
        host = host_of(url)
        loop = asyncio.get_running_loop()
        async with self._locks.setdefault(host, asyncio.Lock()):  # first come, first served
            wait = self._free_at.get(host, 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._free_at[host] = loop.time() + self.spacing


class SourceThreads:
    """The threads polls and statement pages run in, apart from the event loop's
    default pool (the bot's store calls): enough for every host to have a poll and
    a statement page in flight, so a hanging host holds only its own."""

    def __init__(self, hosts: int) -> None:
        self.executor = ThreadPoolExecutor(
            max_workers=min(MAX_SOURCE_THREADS, 2 * max(hosts, 1) + 2),
            thread_name_prefix="source",
        )

    async def run(self, func: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(func, *args))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class PendingWrites:
    """Writes the unchanged polls waiting (feeds.pending) ``delay`` seconds after
    the first of them: a burst of polls reaches the database in one transaction."""

    def __init__(
        self, store: Store, threads: SourceThreads | None = None, delay: float = WRITE_DELAY
    ) -> None:
        self.store = store
        self.threads = threads
        self.delay = delay
        self._due: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Task[None]] = set()

    def soon(self) -> None:
        if self._due is None:
            self._due = asyncio.get_running_loop().call_later(self.delay, self._start)

    def _start(self) -> None:
        task = asyncio.create_task(self.now())
        self._writing.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._writing.discard)

    async def close(self) -> None:
        """No more writes from here: one in flight is waited for (the store writes
        what still waits when it closes)."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    async def now(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None
        try:
            await in_thread(self.threads, self.store.write_pending)
        except Exception as exc:  # the records wait on; the next write takes them
            log.warning("unchanged polls not written yet: %s", exc)


async def in_thread(threads: SourceThreads | None, func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` off the event loop (requests and the store block): in the
    sources' own threads when there are, else in the loop's default pool."""
    if threads is not None:
        return await threads.run(func, *args)
    return await asyncio.to_thread(func, *args)


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
        turns: HostTurns | None = None,
        threads: SourceThreads | None = None,
        writes: PendingWrites | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.bot_store = bot_store
        self.follow_edits = follow_edits
        self.scheduler = scheduler
        self.clock = clock
        self.turns = turns or HostTurns()
        self.threads = threads
        self.writes = writes
        self.listeners: list[PollListener] = []

    @property
    def source_id(self) -> str:
        return self.pipeline.source.id

    async def _in_thread(self, func: Callable[..., T], *args: object) -> T:
        return await in_thread(self.threads, func, *args)

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
            id=job_id("republish", self.pipeline),
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=None,
        )

    def _schedule(self, delay: float) -> None:
        run_at = utcnow() + dt.timedelta(seconds=delay)
        job = job_id(POLL_JOB, self.pipeline)
        try:
            self.scheduler.modify_job(job, next_run_time=run_at)
        except JobLookupError:  # the first poll's, or the job was removed
            source = self.pipeline.source
            self.scheduler.add_job(
                self.poll_once,
                IntervalTrigger(seconds=max(source.backoff_max_seconds, source.poll_seconds)),
                next_run_time=run_at,
                id=job,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )

    async def poll_once(self) -> PollOutcome | None:
        source = self.pipeline.source
        try:
            async with self.turns.turn(self.pipeline.source_url):
                outcome = await self._in_thread(
                    poll_and_queue, self.pipeline, self.bot_store, self.follow_edits, self.clock()
                )
        except asyncio.CancelledError:
            # The process is stopping (the fetch in flight ends with it): not a crash,
            # and nobody awaits this job to hear of it.
            log.info("poll stopped: the service is shutting down")
            return None
        except Exception:
            log.exception("poll of %s crashed; trying again after the usual interval", source.id)
            self._schedule(next_delay(1, source.poll_seconds, source.backoff_max_seconds))
            return None
        # An unchanged page (most polls) is routine: /healthz and /metrics tell it; the
        # log tells what changed or failed.
        level = logging.DEBUG if outcome.result == "not_modified" else logging.INFO
        log.log(
            level, "%s%s; next poll in %.0fs", self._named(), outcome.summary(), outcome.next_delay
        )
        self._schedule(outcome.next_delay)
        if self.writes is not None and outcome.result == "not_modified":
            self.writes.soon()
        for listener in self.listeners:
            try:
                await listener(outcome)
            except asyncio.CancelledError:
                # Stopping while a listener (alerts, deliveries) still ran: the poll's
                # results are stored, and the next start picks up what is queued.
                log.info("poll listeners stopped: the service is shutting down")
                return outcome
            except Exception:
                log.exception("a poll listener failed")
        return outcome

    def _named(self) -> str:
        """The source's id before a log line, when there are several."""
        return "" if len(self.pipeline.config.sources) == 1 else f"{self.source_id}: "

    async def republish(self) -> None:
        await self._in_thread(self.pipeline.publish)
