"""The sender: drains the outbox into Telegram, exactly once per (thing, chat).

Each item is marked "sending" and committed before its request leaves, and
marked "sent" (with the message id) when Telegram answers. A crash in between
leaves it "sending": on restart it is retried once, so at most the message in
flight at the crash can arrive twice. Telegram's answers become state
(``bot/answers.py`` decides what each one means; the sender applies it).

One chat is served at a time per message (keeps its messages in order), many
chats at once; a chat that keeps failing only delays its own items.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot import metrics
from bot.answers import Action, action_for
from bot.i18n import DEFAULT, N_, language_for, translator
from bot.messages import (
    bundle_message,
    button_url,
    sources_counters_message,
    statement_message,
)
from bot.outbox import FLOOD, read_flood_ref
from bot.ratelimit import FloodLimiter
from bot.sources import BotSources
from bot.store import BotStore, OutboxItem
from feeds.clock import utcnow
from feeds.config import SourceSettings
from feeds.model import StoredCounter
from feeds.store import Store

log = logging.getLogger(__name__)
ERROR_PAUSE = 5.0  # seconds between tries while the database fails
BUNDLE_BACKLOG = 5  # this many statements due at once for one chat go out as one message
READ_BUTTON = N_("Read the statement")


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
        sources: Sequence[SourceSettings] | BotSources = (),
    ) -> None:
        self.bot = bot
        # The deployment's sources: messages name theirs when there are several.
        self.sources = BotSources.of(sources)
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
        busy = set(self._busy_chats)
        due = await asyncio.to_thread(self.bot_store.next_due, self.clock(), 256, sorted(busy))
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
        if not started and not busy <= self._busy_chats:
            # A chat's delivery ended while the query ran, and the query left out
            # its next items: ask again rather than report nothing due.
            return 1
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

    def _language(self, chat_id: int) -> str:
        """Pushed messages speak the subscriber's language (chosen with /language, or
        Telegram's at /start); English when it is unknown."""
        sub = self.bot_store.subscriber(chat_id)
        return language_for(sub.language) if sub is not None else DEFAULT

    def _render(self, item: OutboxItem) -> tuple[list[str], InlineKeyboardMarkup | None] | None:
        if item.kind == "statement":
            statement = self.store.statement(item.ref)
            if statement is None:
                return None
            lang = self._language(item.chat_id)
            url = button_url(statement)  # only http(s): Telegram refuses anything else
            button = (
                InlineKeyboardMarkup(
                    [[InlineKeyboardButton(translator(lang)(READ_BUTTON), url=url)]]
                )
                if url
                else None
            )
            return statement_message(statement, lang, self.sources.name(statement.source)), button
        if item.kind == FLOOD:
            count, ids = read_flood_ref(item.ref)
            statements = [s for i in ids if (s := self.store.statement(i)) is not None]
            lang = self._language(item.chat_id)
            names = self.sources.names()
            return bundle_message(statements, lang, total=count, names=names), None
        if item.kind == "counters":
            day = dt.date.fromisoformat(item.ref)
            lang = self._language(item.chat_id)
            return sources_counters_message(self._counters(item.chat_id), day, lang), None
        if item.kind == "alert":
            text = self.bot_store.alert_text(int(item.ref))
            return ([text], None) if text else None
        return None

    def _counters(self, chat_id: int) -> list[tuple[str | None, list[StoredCounter]]]:
        """The counters of the sources the chat follows, each under its source's name
        when there are several sources."""
        keys = self.sources.chosen(self.bot_store.following(chat_id))
        with_counters = set(self.sources.with_counters())
        return [
            (self.sources.name(key), self.store.view(key).counters())
            for key in keys
            if key in with_counters
        ]

    def _bundle(self, item: OutboxItem) -> list[OutboxItem] | None:
        """Several statements due for one chat at once (a digest, the end of quiet
        hours, a backlog after an outage) go out as one message, not a flood."""
        sub = self.bot_store.subscriber(item.chat_id)
        gathering = sub is not None and (sub.delivery_mode == "digest" or bool(sub.quiet_start))
        due = self.bot_store.due_for_chat(item.chat_id, "statement", self.clock())
        return due if len(due) >= (2 if gathering else BUNDLE_BACKLOG) else None

    async def _deliver_bundle(self, items: list[OutboxItem]) -> None:
        claimed = [
            c for c in [await asyncio.to_thread(self.bot_store.claim, i.id) for i in items] if c
        ]
        if not claimed:
            return
        statements = await asyncio.to_thread(
            lambda: [s for s in (self.store.statement(c.ref) for c in claimed) if s is not None]
        )
        lang = await asyncio.to_thread(self._language, claimed[0].chat_id)
        parts = bundle_message(statements, lang, names=self.sources.names())
        lead = claimed[0]
        for index, part in enumerate(parts):
            outcome = await self._send_part(lead, part, None, paced=index == 0)
            if outcome is None:
                # The lead item was rescheduled or ended; the others wait with it.
                for other in claimed[1:]:
                    await asyncio.to_thread(
                        self.bot_store.retry_later, other.id, "bundled", self.clock()
                    )
                return
        await asyncio.to_thread(self.bot_store.bundle_sent, [c.id for c in claimed], self.clock())
        metrics.MESSAGES.labels("bundle", "sent").inc()

    async def _deliver_edit(self, item: OutboxItem) -> None:
        claimed = await asyncio.to_thread(self.bot_store.claim, item.id)
        if claimed is None:
            return
        statement_id = claimed.ref.rsplit("#", 1)[0]
        original = await asyncio.to_thread(
            self.bot_store.delivery, "statement", statement_id, claimed.chat_id
        )
        rendered = await asyncio.to_thread(
            self._render,
            OutboxItem(
                claimed.id, "statement", statement_id, claimed.chat_id, "sending", 0, 0, 0, []
            ),
        )
        if original is None or not original.message_ids or rendered is None:
            await asyncio.to_thread(self.bot_store.finish, claimed.id, "dropped", "nothing to edit")
            return
        parts, button = rendered
        count = min(len(parts), len(original.message_ids))
        for index in range(claimed.parts_sent, count):
            markup = button if index == len(original.message_ids) - 1 else None
            outcome = await self._send_part(
                claimed,
                parts[index],
                markup,
                paced=index == claimed.parts_sent,
                edit_message_id=original.message_ids[index],
            )
            if outcome is None:
                return
            await self._record_sent(claimed, outcome, index == count - 1)
        metrics.MESSAGES.labels("edit", "sent").inc()

    async def deliver(self, item: OutboxItem) -> None:
        # Take the flood-control turn first, then mark the item in flight: after a
        # crash only what really left can be "in flight", not a queue of waiters.
        if self.limiter is not None:
            await self.limiter.wait_turn(item.chat_id)
        if item.kind == "statement":
            bundle = await asyncio.to_thread(self._bundle, item)
            if bundle:
                await self._deliver_bundle(bundle)
                return
        if item.kind == "edit":
            await self._deliver_edit(item)
            return
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
        self,
        item: OutboxItem,
        text: str,
        button: InlineKeyboardMarkup | None,
        paced: bool,
        edit_message_id: int | None = None,
    ) -> int | None:
        """Send (or, with ``edit_message_id``, edit) one message. Its id, or None when
        the item was rescheduled or ended."""
        now = self.clock()
        extra: dict[str, Any] = {}
        if self.limiter is not None:
            extra["rate_limit_args"] = {"paced": paced}
        common: dict[str, Any] = {
            "chat_id": item.chat_id,
            "text": text,
            "parse_mode": ParseMode.HTML,
            "link_preview_options": LinkPreviewOptions(is_disabled=True),
            "reply_markup": button,
        }
        try:
            if edit_message_id is None:
                if self.paid_broadcast:
                    extra["allow_paid_broadcast"] = True
                message = await self.bot.send_message(**common, **extra)
                return message.message_id
            edited = await self.bot.edit_message_text(message_id=edit_message_id, **common, **extra)
            return edited.message_id if isinstance(edited, Message) else edit_message_id
        except TelegramError as exc:
            action = action_for(
                exc,
                editing=edit_message_id is not None,
                attempts=item.attempts,
                unknown_outcomes=item.unknown_outcomes,
                max_attempts=self.max_attempts,
            )
        await self._apply(item, action, now)
        return edit_message_id if action.verdict == "done" else None

    async def _apply(self, item: OutboxItem, action: Action, now: dt.datetime) -> None:
        """Make the outbox (and the subscription) say what Telegram's answer meant."""
        store = self.bot_store
        if action.verdict == "done":
            return
        if action.verdict == "dropped":
            await asyncio.to_thread(store.finish, item.id, "dropped", action.detail)
            return
        if action.verdict == "unsubscribe":
            log.info("chat %d unsubscribed (%s)", item.chat_id, action.detail)
            await asyncio.to_thread(store.unsubscribe, item.chat_id, action.detail, now)
        elif action.verdict == "move":
            assert action.new_chat_id is not None
            log.info(
                "chat %d moved to %d; its subscription follows", item.chat_id, action.new_chat_id
            )
            await asyncio.to_thread(store.move_chat, item.chat_id, action.new_chat_id, now)
        elif action.verdict == "retry":
            await asyncio.to_thread(
                store.retry_later,
                item.id,
                action.detail,
                now + dt.timedelta(seconds=action.retry_in),
                action.unknown_outcome,
            )
        else:
            if action.detail.startswith("bad request"):
                log.error("Telegram refused a message to %d: %s", item.chat_id, action.detail)
            await asyncio.to_thread(store.finish, item.id, "failed", action.detail)
        metrics.MESSAGES.labels(item.kind, action.metric).inc()
