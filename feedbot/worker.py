"""The worker: polling, daily counters and Telegram, run by one process per database.

A lease row in the database names the process doing this work. Another
``feedbot run`` on the same database finds the lease held, says so, and waits
as a stand-by while serving HTTP; it takes over when the lease expires (the
holder died) — within ``worker.lease_seconds`` — or at once when the holder was a
process on this host that no longer exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram.error import InvalidToken, TelegramError

from bot.delivery import Sender
from bot.outbox import enqueue_daily_counters
from bot.sources import BotSources
from bot.store import BotStore
from bot.telegram import TelegramBot
from feedbot.alerts import AlertWatch
from feedbot.memory import return_freed_memory
from feedbot.poller import HostTurns, Poller, SourceThreads, in_thread
from feedbot.settings import Settings
from feeds.clock import utcnow
from feeds.errors import ConfigError
from feeds.pipeline import Pipeline, PollOutcome
from feeds.store import Store

log = logging.getLogger(__name__)
LEASE = "worker"
COUNTERS_CHECK_SECONDS = 30.0
RETURN_MEMORY_SECONDS = 60.0  # how often freed memory is handed back, after feeds were rewritten
BOT_RETRY_SECONDS = 2.0  # first wait after Telegram could not be reached at start; doubles
BOT_RETRY_MAX_SECONDS = 300.0
FULL_TEXT_IDLE_SECONDS = 30.0  # the full-text job looks again at least this often
T = TypeVar("T")


def _pid_namespace() -> str:
    """Which process table our pids belong to. Two containers can share a hostname
    but not their pids, so a pid is only compared within one namespace."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "unknown"


def holder_id() -> str:
    """``host:pid:pid-namespace:random`` — enough to tell a dead local holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{_pid_namespace()}:{uuid.uuid4().hex[:8]}"


def _dead_local_holder(holder: str) -> bool:
    """True for a lease held by a process of this host, in our pid namespace, that
    has exited. Anything else (another host, another container, an old holder id
    format) is left to the lease's expiry."""
    parts = holder.split(":")
    if len(parts) != 4:
        return False
    host, pid_text, namespace, _ = parts
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if namespace == "unknown" or namespace != _pid_namespace():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Worker:
    """Built by the composition root (``feedbot.app.build_worker``) from its parts:
    a poller and an alert watch per source (the primary's first)."""

    def __init__(
        self,
        stopping: threading.Event,
        settings: Settings,
        store: Store,
        bot_store: BotStore,
        scheduler: AsyncIOScheduler,
        pollers: list[Poller],
        alerts: dict[str, AlertWatch],
        telegram: TelegramBot | None = None,
        sender: Sender | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        threads: SourceThreads | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bot_store = bot_store
        self.scheduler = scheduler
        self.pollers = {p.source_id: p for p in pollers}
        self.poller = pollers[0]  # the primary source's
        self.alerts = alerts
        self.threads = threads
        # One statement page at a time per host among the full-text jobs (the host
        # gate spaces them): a job waiting for its host holds no thread.
        self._full_text_turns = HostTurns()
        self.telegram = telegram
        self.sender = sender
        self.clock = clock
        self.holder = holder_id()
        self.active = asyncio.Event()
        self.bot_connected = asyncio.Event()
        # Set with ``stop``: ends a request in flight (poll or statement page) at once.
        self.stopping = stopping
        # Each source's full-text job sleeps on its own event; its polls wake it.
        self._full_text_wake = {source_id: asyncio.Event() for source_id in self.pollers}
        self._feeds_rewritten = False  # since freed memory was last returned

    def bot_state(self) -> str | None:
        """``connected``, ``connecting`` (Telegram not reached yet), or None without a bot."""
        if self.telegram is None:
            return None
        return "connected" if self.bot_connected.is_set() else "connecting"

    def state(self) -> str:
        """``active`` while this process holds the lease and works, else ``standby``."""
        return "active" if self.active.is_set() else "standby"

    # -- lease --------------------------------------------------------------

    def _try_lease(self) -> bool:
        steal: list[str] = []
        current = self.bot_store.lease_holder(LEASE)
        if current and _dead_local_holder(current[0]):
            steal.append(current[0])
        ws = self.settings.worker
        if not ws.same_host_takeover:
            steal = []
        return self.bot_store.take_lease(LEASE, self.holder, self.clock(), ws.lease_seconds, steal)

    async def wait_for_lease(self, stop: asyncio.Event) -> bool:
        announced = False
        while not stop.is_set():
            if await asyncio.to_thread(self._try_lease):
                return True
            if not announced:
                current = await asyncio.to_thread(self.bot_store.lease_holder, LEASE)
                log.warning(
                    "another feedbot (%s) is polling this database; standing by to take over",
                    current[0] if current else "?",
                )
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.worker.renew_seconds)
        return False

    async def _keep_lease(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.worker.renew_seconds)
            if stop.is_set():
                return
            try:
                kept = await asyncio.to_thread(self._try_lease)
            except Exception:
                log.exception("could not renew the worker lease")
                continue
            if not kept:
                log.error("the worker lease was taken over by another process; stopping work")
                lost.set()
                stop.set()
                return

    # -- work ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> bool:
        """Stand by until this process holds the lease, then work until ``stop``.
        Returns False if the lease was lost to another process."""
        if not await self.wait_for_lease(stop):
            return True
        lost = asyncio.Event()
        tasks = [asyncio.create_task(self._keep_lease(stop, lost))]
        self.active.set()
        try:
            await asyncio.to_thread(self._subscribe_channels)
            for poller in self.pollers.values():
                poller.listeners.append(functools.partial(self._after_poll, poller.source_id))
                poller.start()
            self.scheduler.add_job(
                self.enqueue_daily_counters,
                "interval",
                seconds=COUNTERS_CHECK_SECONDS,
                next_run_time=utcnow(),
                id="counters",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
            self.scheduler.add_job(
                self.return_freed_memory,
                "interval",
                seconds=RETURN_MEMORY_SECONDS,
                id="memory",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
            self.scheduler.start()
            for poller in self.pollers.values():
                if poller.pipeline.source.kind == "page":  # a feed has no pages to read
                    tasks.append(asyncio.create_task(self._full_texts(stop, poller.pipeline)))
            if self.telegram is not None:
                # Polling and the feeds go on while Telegram is out of reach.
                tasks.append(asyncio.create_task(self._run_bot(stop)))
            else:
                log.info("no TELEGRAM_BOT_TOKEN: feeds only, the bot stays off")
            await stop.wait()
        finally:
            # However the work ended (stop, a lost lease, an error), the lease keeper, the
            # sender and the full-text job end with it, a request in flight at once.
            stop.set()
            self.stopping.set()
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            # A poll asked on the event loop ends with its client (a poll in a thread
            # ends with the stop event), then the pollers stop.
            for recheck in {p.recheck for p in self.pollers.values() if p.recheck is not None}:
                await recheck.close()
            await asyncio.gather(*(poller.stop() for poller in self.pollers.values()))
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            if self.telegram is not None and self.bot_connected.is_set():
                await self.telegram.stop()
            await asyncio.to_thread(self.bot_store.release_lease, LEASE, self.holder)
            # A write of unchanged polls in flight ends before the store closes (it
            # would otherwise go on in a thread past the process's own end).
            for writes in {p.writes for p in self.pollers.values() if p.writes is not None}:
                await writes.close()
            if self.threads is not None:
                self.threads.shutdown()
        return not lost.is_set()

    async def _run_bot(self, stop: asyncio.Event) -> None:
        """Reach Telegram, retrying with back-off, then send until ``stop``. A rejected
        token stops the process (a configuration error); anything else is retried."""
        assert self.telegram is not None
        delay = BOT_RETRY_SECONDS
        while not stop.is_set():
            try:
                await self._start_telegram()
                break
            except ConfigError:
                stop.set()
                raise
            except (TelegramError, OSError) as exc:
                log.warning("Telegram not reachable (%s); trying again in %.0fs", exc, delay)
                with contextlib.suppress(Exception):
                    await self.telegram.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, BOT_RETRY_MAX_SECONDS)
        if stop.is_set():
            return
        self.bot_connected.set()
        if self.sender is not None:
            await self.sender.run(stop)

    async def _in_thread(self, func: Callable[..., T], *args: object) -> T:
        return await in_thread(self.threads, func, *args)

    async def _full_texts(self, stop: asyncio.Event, pipeline: Pipeline) -> None:
        """One source's full-text job: its statement pages one at a time, off the
        poll's path. It sleeps while nothing is due, and a poll with new statements
        wakes it."""
        source_id = pipeline.source.id
        while not stop.is_set():
            try:
                async with self._full_text_turns.turn(pipeline.source_url):
                    result = await self._in_thread(pipeline.fetch_full_text, self.stopping)
                if result is not None and result.result == "ok":
                    await self._in_thread(pipeline.publish)
            except Exception:
                log.exception("the full-text job of %s failed; trying again in a minute", source_id)
                result = None
                await self._sleep_full_texts(stop, source_id, 60.0)
                continue
            if result is None:
                idle = await self._next_full_text_in(pipeline)
                await self._sleep_full_texts(stop, source_id, idle)
            # A cancelled request (the poll took the host) is tried again at once:
            # the host gate holds it until the poll is done.

    async def _next_full_text_in(self, pipeline: Pipeline) -> float:
        at = await self._in_thread(
            pipeline.store.next_full_text_at, pipeline.config.fetch.article_attempts
        )
        if at is None:
            return FULL_TEXT_IDLE_SECONDS
        return min(FULL_TEXT_IDLE_SECONDS, max(0.5, (at - self.clock()).total_seconds()))

    async def _sleep_full_texts(self, stop: asyncio.Event, source_id: str, seconds: float) -> None:
        wake = self._full_text_wake[source_id]
        wake.clear()
        waits = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(wake.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _start_telegram(self) -> None:
        assert self.telegram is not None
        try:
            await self.telegram.start()
        except InvalidToken:
            # PTB's own message quotes the token, and would end up on stderr.
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN (environment): Telegram rejected the bot token"
            ) from None

    def _subscribe_channels(self) -> None:
        follow = BotSources.of(self.settings.feeds.sources).defaults()
        for chat_id in self.settings.telegram.channel_ids:
            self.bot_store.subscribe(
                chat_id, "channel", self.clock(), origin="config", follow=follow
            )

    async def _after_poll(self, source_id: str, outcome: PollOutcome) -> None:
        if outcome.feeds_written:
            self._feeds_rewritten = True
        news = bool(outcome.changes and (outcome.changes.new or outcome.changes.edited))
        if news:
            # The outbox was filled in the poll's own transaction: send before anything else.
            if self.sender is not None:
                self.sender.wake()
            self._full_text_wake[source_id].set()
        watch = self.alerts[source_id]
        if watch.idle_after(outcome):  # most polls: nothing to look up, no thread taken
            return
        alerted = await asyncio.to_thread(watch.after_poll, outcome, self.clock())
        for text in alerted:
            log.warning("operator alert: %s", text)
        if alerted and self.sender is not None:
            self.sender.wake()

    async def return_freed_memory(self) -> bool:
        """Once feeds were rewritten (rendering frees much of what it took), hand
        the freed heap back to the system; True when it did."""
        if not self._feeds_rewritten:
            return False
        self._feeds_rewritten = False
        await asyncio.to_thread(return_freed_memory)
        return True

    async def enqueue_daily_counters(self) -> int:
        """Queue today's counters for every chat whose time has come (once a day each)."""
        queued = await asyncio.to_thread(
            enqueue_daily_counters,
            self.store,
            self.bot_store,
            self.clock(),
            self.settings.feeds.sources,
        )
        if queued and self.sender is not None:
            self.sender.wake()
        return queued
