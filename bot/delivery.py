"""The sender: drains the outbox into Telegram, exactly once per (thing, chat).

Each item is marked "sending" and committed before its request leaves, and
marked "sent" (with the message id) when Telegram answers. A crash in between
leaves it "sending": on restart it is retried once, so at most the message in
flight at the crash can arrive twice. Telegram's answers become state:

* 429 ``RetryAfter``   → wait (the limiter already retried) and keep it pending
* 403 ``Forbidden``    → the chat blocked or removed the bot: unsubscribed
* 400 chat not found   → unsubscribed
* 400 ``ChatMigrated`` → the subscription and its pending items move to the new id
* other 400            → failed (the message itself is wrong; visible in /stats)
* timeout              → outcome unknown: retried once, then failed
* other network errors → retried with back-off, failed after ``max_attempts``

One chat is served at a time per message (keeps its messages in order), many
chats at once; a chat that keeps failing only delays its own items.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot import metrics
from bot.messages import counters_message, statement_message
from bot.ratelimit import FloodLimiter, retry_seconds
from bot.store import BotStore, OutboxItem
from feeds.store import Store

log = logging.getLogger(__name__)
ERROR_PAUSE = 5.0  # seconds between tries while the database fails

GONE = (
    "chat not found",
    "user not found",
    "bot was kicked",
    "chat was deleted",
    "group chat was deactivated",
    "peer_id_invalid",
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Sender:
    def __init__(
        self,
        bot: Bot,
        store: Store,
        bot_store: BotStore,
        paid_broadcast: bool = False,
        limiter: FloodLimiter | None = None,
        max_in_flight: int = 32,
        max_attempts: int = 8,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.bot = bot
        self.store = store
        self.bot_store = bot_store
        self.paid_broadcast = paid_broadcast
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.clock = clock
        self._slots = asyncio.Semaphore(max_in_flight)
        self._busy_chats: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        recovering = True
        while not stop.is_set():
            try:
                if recovering:
                    await self._recover_in_flight()
                    recovering = False
                dispatched = await self.dispatch_due()
                if dispatched:
                    continue
                self._wake.clear()
                await self._sleep_until_due(stop)
            except Exception:
                # A database error must not end delivery for the life of the process.
                log.exception("could not read the outbox; trying again in %.0fs", ERROR_PAUSE)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=ERROR_PAUSE)
        await self.drain_tasks()

    async def _recover_in_flight(self) -> None:
        recovered = await asyncio.to_thread(self.bot_store.recover_in_flight, self.clock())
        if recovered:
            log.warning(
                "%d messages were in flight when feedbot last stopped; retrying each once",
                recovered,
            )

    async def drain_tasks(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sleep_until_due(self, stop: asyncio.Event) -> None:
        next_at = await asyncio.to_thread(self.bot_store.next_attempt_at)
        timeout = 5.0
        if next_at is not None:
            timeout = min(timeout, max(0.05, (next_at - self.clock()).total_seconds()))
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def dispatch_due(self) -> int:
        """Start delivering what is due now; returns how many items were started."""
        due = await asyncio.to_thread(
            self.bot_store.next_due, self.clock(), 256, sorted(self._busy_chats)
        )
        started = 0
        for item in due:
            if item.chat_id in self._busy_chats:
                continue
            await self._slots.acquire()
            self._busy_chats.add(item.chat_id)
            task = asyncio.create_task(self._deliver_guarded(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        if not started and self._tasks:
            # Everything due is for chats in flight: wait for one of them to finish,
            # or for news (a slow chat must not hold up newly queued messages).
            self._wake.clear()
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {*self._tasks, waker}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waker.cancel()
            return 1
        return started

    async def _deliver_guarded(self, item: OutboxItem) -> None:
        try:
            await self.deliver(item)
        except Exception:
            log.exception("delivery of outbox item %d failed unexpectedly", item.id)
            await asyncio.to_thread(
                self.bot_store.retry_later,
                item.id,
                "internal error",
                self.clock() + dt.timedelta(seconds=60),
            )
        finally:
            self._busy_chats.discard(item.chat_id)
            self._slots.release()

    def _render(self, item: OutboxItem) -> tuple[list[str], InlineKeyboardMarkup | None] | None:
        if item.kind == "statement":
            statement = self.store.statement(item.ref)
            if statement is None:
                return None
            button = (
                InlineKeyboardMarkup(
                    [[InlineKeyboardButton("Read the statement", url=statement.url)]]
                )
                if statement.url
                else None
            )
            return statement_message(statement), button
        if item.kind == "counters":
            return counters_message(self.store.counters(), dt.date.fromisoformat(item.ref)), None
        return None

    async def deliver(self, item: OutboxItem) -> None:
        # Take the flood-control turn first, then mark the item in flight: after a
        # crash only what really left can be "in flight", not a queue of waiters.
        if self.limiter is not None:
            await self.limiter.wait_turn(item.chat_id)
        claimed = await asyncio.to_thread(self.bot_store.claim, item.id)
        if claimed is None:
            return  # someone else took it, or it was dropped meanwhile
        rendered = await asyncio.to_thread(self._render, claimed)
        if rendered is None:
            await asyncio.to_thread(
                self.bot_store.finish,
                claimed.id,
                "failed",
                f"nothing to send for {claimed.kind} {claimed.ref}",
            )
            return
        parts, button = rendered
        for index in range(claimed.parts_sent, len(parts)):
            last = index == len(parts) - 1
            paced = index == claimed.parts_sent and self.limiter is not None
            outcome = await self._send_part(claimed, parts[index], button if last else None, paced)
            if outcome is None:
                return
            await self._record_sent(claimed, outcome, last)
        metrics.MESSAGES.labels(claimed.kind, "sent").inc()

    async def _record_sent(self, item: OutboxItem, message_id: int, last: bool) -> None:
        """The message is out: recording it must not fail lightly, or it goes out again."""
        for pause in (0.5, 1.0, 2.0, 4.0, None):
            try:
                await asyncio.to_thread(
                    self.bot_store.part_sent, item, message_id, self.clock(), last
                )
                return
            except Exception:
                if pause is None:
                    raise
                log.warning("could not record message %d as sent; retrying", message_id)
                await asyncio.sleep(pause)

    async def _send_part(
        self, item: OutboxItem, text: str, button: InlineKeyboardMarkup | None, paced: bool
    ) -> int | None:
        """The message id, or None when the item was rescheduled or ended."""
        store = self.bot_store
        now = self.clock()
        extra: dict[str, Any] = {"allow_paid_broadcast": True} if self.paid_broadcast else {}
        if self.limiter is not None:
            extra["rate_limit_args"] = {"paced": paced}
        try:
            message = await self.bot.send_message(
                chat_id=item.chat_id,
                text=text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=button,
                **extra,
            )
        except Forbidden as exc:
            await self._unsubscribe(item, "blocked", exc)
        except ChatMigrated as exc:
            log.info("chat %d moved to %d; its subscription follows", item.chat_id, exc.new_chat_id)
            await asyncio.to_thread(store.move_chat, item.chat_id, exc.new_chat_id, now)
            metrics.MESSAGES.labels(item.kind, "migrated").inc()
        except RetryAfter as exc:
            wait = retry_seconds(exc)
            await asyncio.to_thread(
                store.retry_later,
                item.id,
                f"flood control: retry after {wait:.0f}s",
                now + dt.timedelta(seconds=wait),
            )
            metrics.MESSAGES.labels(item.kind, "rate_limited").inc()
        except BadRequest as exc:
            if any(marker in exc.message.lower() for marker in GONE):
                await self._unsubscribe(item, "gone", exc)
            else:
                log.error("Telegram refused a message to %d: %s", item.chat_id, exc.message)
                await asyncio.to_thread(
                    store.finish, item.id, "failed", f"bad request: {exc.message}"
                )
                metrics.MESSAGES.labels(item.kind, "failed").inc()
        except TimedOut as exc:
            # The request may have arrived: one more try, never more.
            if item.unknown_outcomes >= 1:
                await asyncio.to_thread(
                    store.finish, item.id, "failed", f"outcome unknown twice: {exc.message}"
                )
                metrics.MESSAGES.labels(item.kind, "failed").inc()
            else:
                await asyncio.to_thread(
                    store.retry_later,
                    item.id,
                    f"timed out: {exc.message}",
                    now + dt.timedelta(seconds=5),
                    True,
                )
                metrics.MESSAGES.labels(item.kind, "timeout").inc()
        except (NetworkError, TelegramError) as exc:
            if item.attempts >= self.max_attempts:
                await asyncio.to_thread(
                    store.finish,
                    item.id,
                    "failed",
                    f"gave up after {item.attempts} attempts: {exc.message}",
                )
                metrics.MESSAGES.labels(item.kind, "failed").inc()
            else:
                delay = min(3600.0, 5.0 * 2 ** (item.attempts - 1))
                await asyncio.to_thread(
                    store.retry_later, item.id, exc.message, now + dt.timedelta(seconds=delay)
                )
                metrics.MESSAGES.labels(item.kind, "retry").inc()
        else:
            return message.message_id
        return None

    async def _unsubscribe(self, item: OutboxItem, reason: str, exc: TelegramError) -> None:
        log.info("chat %d unsubscribed (%s: %s)", item.chat_id, reason, exc.message)
        await asyncio.to_thread(self.bot_store.unsubscribe, item.chat_id, reason, self.clock())
        metrics.MESSAGES.labels(item.kind, reason).inc()
