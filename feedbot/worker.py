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
import logging
import os
import socket
import uuid
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram.error import InvalidToken

from bot.delivery import Sender
from bot.outbox import enqueue_daily_counters
from bot.store import BotStore
from bot.telegram import TelegramBot
from feedbot.alerts import AlertWatch
from feedbot.poller import Poller
from feedbot.settings import Settings
from feeds.clock import utcnow
from feeds.errors import ConfigError
from feeds.pipeline import PollOutcome
from feeds.store import Store

log = logging.getLogger(__name__)
LEASE = "worker"
COUNTERS_CHECK_SECONDS = 30.0


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
    """Built by the composition root (``feedbot.app.build_worker``) from its parts."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bot_store: BotStore,
        scheduler: AsyncIOScheduler,
        poller: Poller,
        alerts: AlertWatch,
        telegram: TelegramBot | None = None,
        sender: Sender | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bot_store = bot_store
        self.scheduler = scheduler
        self.poller = poller
        self.alerts = alerts
        self.telegram = telegram
        self.sender = sender
        self.clock = clock
        self.holder = holder_id()
        self.active = asyncio.Event()

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
            await self._start_telegram()
            await asyncio.to_thread(self._subscribe_channels)
            self.poller.listeners.append(self._after_poll)
            self.poller.start()
            self.scheduler.add_job(
                self.enqueue_daily_counters,
                "interval",
                seconds=COUNTERS_CHECK_SECONDS,
                next_run_time=dt.datetime.now(dt.UTC),
                id="counters",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
            self.scheduler.start()
            if self.sender is not None:
                tasks.append(asyncio.create_task(self.sender.run(stop)))
            await stop.wait()
        finally:
            # However the work ended (stop, a lost lease, an error), the lease keeper and
            # the sender end with it: a failed start must not wait on them, then time out.
            stop.set()
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            if self.telegram is not None:
                await self.telegram.stop()
            await asyncio.to_thread(self.bot_store.release_lease, LEASE, self.holder)
        return not lost.is_set()

    async def _start_telegram(self) -> None:
        if self.telegram is None:
            log.info("no TELEGRAM_BOT_TOKEN: feeds only, the bot stays off")
            return
        try:
            await self.telegram.start()
        except InvalidToken:
            # PTB's own message quotes the token, and would end up on stderr.
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN (environment): Telegram rejected the bot token"
            ) from None

    def _subscribe_channels(self) -> None:
        for chat_id in self.settings.telegram.channel_ids:
            self.bot_store.subscribe(chat_id, "channel", self.clock(), origin="config")

    async def _after_poll(self, outcome: PollOutcome) -> None:
        alerted = await asyncio.to_thread(self.alerts.after_poll, outcome, self.clock())
        for text in alerted:
            log.warning("operator alert: %s", text)
        if self.sender is not None and (
            alerted or (outcome.changes and (outcome.changes.new or outcome.changes.edited))
        ):
            self.sender.wake()

    async def enqueue_daily_counters(self) -> int:
        """Queue today's counters for every chat whose time has come (once a day each)."""
        queued = await asyncio.to_thread(
            enqueue_daily_counters, self.store, self.bot_store, self.clock()
        )
        if queued and self.sender is not None:
            self.sender.wake()
        return queued
