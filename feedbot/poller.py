"""Polling: one poller per source, each poll planning that source's next one,
and handing what it stored to the Telegram outbox (``poll_and_queue``).

Sources never wait for one another: each has its own timer, interval and
back-off, and polls run in threads of their own pool (``SourceThreads``), or on
the event loop while the page is unchanged (``feeds.recheck``). Sources on one
host take turns (``HostTurns``): one poll at a time there, politely spaced, and
a poll waiting for its turn holds no thread.

The next poll is planned from the poll's outcome (interval with jitter, or
exponential back-off after failures) on an event-loop timer (monotonic, so a
change of the wall clock moves nothing). APScheduler, which runs the daily
jobs, ran polls first: moving a source's standing job made it look over every
job each time, and running one went through its executor and events, a fifth of
an unchanged poll's CPU with 200 sources. One poll of a source runs at a time;
a timer that fires late fires once.

An unchanged page's poll record waits in memory (``feeds.pending``);
``PendingWrites`` writes what waits a second after the first of a burst, in one
transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.outbox import queue_changes
from bot.store import BotStore
from feeds.backoff import next_delay
from feeds.clock import LONDON, utcnow
from feeds.fetch import Fetcher, Response
from feeds.pipeline import Pipeline, PollOutcome
from feeds.politeness import host_of
from feeds.recheck import Recheck
from feeds.store import Store

log = logging.getLogger(__name__)
MAX_SOURCE_THREADS = 64
WRITE_DELAY = 1.0  # seconds an unchanged poll's record may wait in memory

PollListener = Callable[[PollOutcome], Awaitable[None]]
T = TypeVar("T")


def job_id(kind: str, pipeline: Pipeline) -> str:
    """The scheduler job of this kind for this source: ``republish`` for the
    primary source, ``republish:<id>`` for another."""
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
    answer: Response | None = None,
) -> PollOutcome:
    """One poll cycle as the process runs it: the pipeline stores the page, and in
    that same transaction every new statement (and edit) is queued for the chats.
    ``answer``: the source's 304, already asked for on the event loop."""
    return pipeline.poll(
        now,
        on_stored=lambda conn, changes: queue_changes(bot_store, changes, now, conn, follow_edits),
        accept_retitles=accept_retitles,
        answer=answer,
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
        recheck: Recheck | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.bot_store = bot_store
        self.follow_edits = follow_edits
        self.scheduler = scheduler
        self.clock = clock
        self.turns = turns or HostTurns()
        self.threads = threads
        self.writes = writes
        self.recheck = recheck
        self.listeners: list[PollListener] = []
        self._last_result: str | None = None  # of the last poll that ended
        self._timer: asyncio.TimerHandle | None = None  # the next poll's
        self._polling: asyncio.Task[PollOutcome | None] | None = None  # the poll under way
        self._overdue = False  # the timer fired while a poll was under way

    @property
    def source_id(self) -> str:
        return self.pipeline.source.id

    async def _in_thread(self, func: Callable[..., T], *args: object) -> T:
        return await in_thread(self.threads, func, *args)

    def start(self, first_delay: float = 0.0) -> None:
        self.schedule(first_delay)
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

    def schedule(self, delay: float) -> None:
        """The next poll in ``delay`` seconds, instead of the one planned."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._due)

    def _due(self) -> None:
        self._timer = None
        if self._polling is not None:  # one at a time: the next starts when this ends
            self._overdue = True
            return
        self._polling = asyncio.create_task(self.poll_once())
        self._polling.add_done_callback(self._polled)

    def _polled(self, task: asyncio.Task[PollOutcome | None]) -> None:
        if self._polling is not task:  # stopped
            return
        # Let the task go with its outcome (the page read, the statements stored).
        self._polling = None
        if self._overdue:  # the next poll fell due while this one ran (slow listeners)
            self._overdue = False
            self.schedule(0)

    async def stop(self, grace: float = 10.0) -> None:
        """No more polls; one under way is given ``grace`` seconds to end (its fetch
        ends at once with the process's stop event), then cancelled."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        polling, self._polling = self._polling, None
        if polling is not None and not polling.done():
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(polling), grace)
            polling.cancel()  # poll_once ends calmly when cancelled
            await asyncio.gather(polling, return_exceptions=True)

    async def poll_once(self) -> PollOutcome | None:
        source = self.pipeline.source
        try:
            async with self.turns.turn(self.pipeline.source_url):
                outcome = await self._poll()
        except asyncio.CancelledError:
            # The process is stopping (the fetch in flight ends with it): not a crash,
            # and nobody awaits this job to hear of it.
            log.info("poll stopped: the service is shutting down")
            return None
        except Exception:
            log.exception("poll of %s crashed; trying again after the usual interval", source.id)
            self.schedule(next_delay(1, source.poll_seconds, source.backoff_max_seconds))
            return None
        self._last_result = outcome.result
        # An unchanged page (most polls) is routine: /healthz and /metrics tell it; the
        # log tells what changed or failed.
        level = logging.DEBUG if outcome.result == "not_modified" else logging.INFO
        log.log(
            level, "%s%s; next poll in %.0fs", self._named(), outcome.summary(), outcome.next_delay
        )
        self.schedule(outcome.next_delay)
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

    async def _poll(self) -> PollOutcome:
        """While the page was unchanged last time, the source is asked on the event
        loop whether it still is (feeds.recheck): a 304 then ends the poll there,
        holding no thread. Anything else, or a first poll, goes through the fetcher
        in a thread."""
        started, tick = self.clock(), time.monotonic()
        answer = None
        if self.recheck is not None and self._last_result == "not_modified":
            answer = await self._ask(self.recheck)
            if answer is not None:
                outcome = self.pipeline.unchanged(answer, started, tick)
                if outcome is not None:
                    return outcome
        poll = functools.partial(poll_and_queue, answer=answer)
        return await self._in_thread(
            poll, self.pipeline, self.bot_store, self.follow_edits, started
        )

    async def _ask(self, recheck: Recheck) -> Response | None:
        pipeline = self.pipeline
        validators = pipeline.known_validators
        if validators is None or not isinstance(pipeline.fetcher, Fetcher):
            return None
        # A statement page in flight on the host: the fetcher's poll pre-empts it.
        with pipeline.gate.poll_turn_if_free(pipeline.source_url) as free:
            if not free:
                return None
            return await recheck.unchanged(pipeline.fetcher, pipeline.source_url, *validators)

    def _named(self) -> str:
        """The source's id before a log line, when there are several."""
        return "" if len(self.pipeline.config.sources) == 1 else f"{self.source_id}: "

    async def republish(self) -> None:
        await self._in_thread(self.pipeline.publish)
