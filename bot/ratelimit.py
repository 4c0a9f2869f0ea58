"""Keeping within Telegram's flood limits for every request the bot makes.

Telegram allows about 30 messages a second overall, one a second to a private
chat and 20 a minute to a group or channel. PTB's ``AIORateLimiter`` lets a
burst of 30 through and then refills at 30/s, so one second can see nearly 60,
and it has no per-private-chat limit. This limiter spaces requests evenly
instead: each message takes the next global slot (1/30 s apart) and the chat's
next slot (1 s, or 3 s for groups and channels), so no window of any length
ever holds more than the limit, and a long broadcast runs at the full rate.

A ``429`` is still possible (limits shared with other clients of the token);
it is retried after ``retry_after``, and everything else waits with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

# A few percent under Telegram's limits: a request delayed on its way (a busy
# CPU, the network) must not make two neighbours look closer than the limit.
MARGIN = 0.97
GLOBAL_PER_SECOND = 30.0 * MARGIN
PAID_PER_SECOND = 1000.0 * MARGIN
PRIVATE_INTERVAL = 1.0 / MARGIN
GROUP_INTERVAL = 60.0 / 20 / MARGIN
LIMITED = frozenset(
    {"sendMessage", "editMessageText", "sendPhoto", "copyMessage", "forwardMessage"}
)


def retry_seconds(exc: RetryAfter) -> float:
    value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class Pacer:
    """Even spacing: hands out start times, never more than ``rate`` per second."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.next_slot = 0.0
        self.blocked_until = 0.0

    def reserve(self) -> float:
        """Seconds to wait before the caller may go."""
        now = self.clock()
        slot = max(now, self.next_slot, self.blocked_until)
        self.next_slot = slot + self.interval
        return slot - now


class DepartureWindow:
    """At most ``limit`` requests leave in any ``span`` seconds, by their real
    departure times. Pacing hands out start times in advance; if the event loop
    stalls (a garbage collection, a slow query), several requests whose times
    passed during the stall would leave together — this holds them back."""

    def __init__(
        self, limit: int, span: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.span = span
        self.clock = clock
        self.departures: deque[float] = deque(maxlen=limit)

    def wait(self) -> float:
        """Seconds to wait before one more request may leave (0: go now, recorded)."""
        now = self.clock()
        if len(self.departures) == self.limit:
            earliest = self.departures[0] + self.span
            if earliest > now:
                return earliest - now
        self.departures.append(now)
        return 0.0


class ChatPacer:
    """Per-chat spacing: private chats 1 s apart, groups and channels 3 s.

    Reserving a slot spaces the chat's messages as they queue; but a message leaves
    later than its slot (it waits for the global pace too, and is claimed and
    rendered first), so the spacing is held again at departure, from the chat's
    last real departure: otherwise the next message, queued after this one left
    late, could follow it within the second and draw a 429."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.next_slot: dict[int, float] = {}
        self.departed: dict[int, float] = {}

    @staticmethod
    def interval(chat_id: int) -> float:
        return PRIVATE_INTERVAL if chat_id > 0 else GROUP_INTERVAL

    def ready_in(self, chat_id: int) -> float:
        return max(0.0, self.next_slot.get(chat_id, 0.0) - self.clock())

    def reserve(self, chat_id: int) -> float:
        now = self.clock()
        slot = max(now, self.next_slot.get(chat_id, 0.0))
        self.next_slot[chat_id] = slot + self.interval(chat_id)
        if len(self.next_slot) > 50_000:  # forget chats whose slot has long passed
            self.next_slot = {k: v for k, v in self.next_slot.items() if v > now}
        return slot - now

    def hold(self, chat_id: int) -> float:
        """Seconds until a message may leave for the chat, by its last departure."""
        last = self.departed.get(chat_id)
        return 0.0 if last is None else max(0.0, last + self.interval(chat_id) - self.clock())

    def leave(self, chat_id: int) -> None:
        """A message leaves for the chat now; the next one keeps its distance."""
        now = self.clock()
        self.departed[chat_id] = now
        self.next_slot[chat_id] = max(
            self.next_slot.get(chat_id, 0.0), now + self.interval(chat_id)
        )
        if len(self.departed) > 50_000:
            self.departed = {k: v for k, v in self.departed.items() if v + self.interval(k) > now}


class FloodLimiter(BaseRateLimiter[dict[str, Any]]):
    """The rate limiter handed to python-telegram-bot: applies to every request."""

    def __init__(self, max_retries: int = 5, paid_broadcast: bool = False) -> None:
        rate = PAID_PER_SECOND if paid_broadcast else GLOBAL_PER_SECOND
        self.pacer = Pacer(rate)
        # Answers to commands take their own slots, ahead of a broadcast's queue: one
        # user's /help never waits for a thousand statements. The departure window
        # below still holds both together to Telegram's count.
        self.replies = Pacer(rate)
        # Telegram's own count (30, or 1,000) over a window stretched by the margin.
        self.window = DepartureWindow(round(rate / MARGIN), 1.0 / MARGIN)
        self.chats = ChatPacer()
        self.max_retries = max_retries
        self.retries_after_429 = 0

    async def wait_turn(self, chat_id: int | None, reply: bool = False) -> None:
        """Wait until one more message (to ``chat_id``) keeps within every limit;
        ``reply``: an answer to a command, paced apart from broadcasts."""
        if chat_id is not None:
            await _sleep(self.chats.reserve(chat_id))
        pacer = self.replies if reply else self.pacer
        await _sleep(pacer.reserve())
        # A 429 that came back while this request waited for its slot holds it too.
        while pacer.blocked_until > time.monotonic():
            await _sleep(pacer.reserve())

    async def _depart(self, chat_id: int | None) -> None:
        """Wait until the chat's spacing (by its last departure) and the window both
        let one more message leave, then record it leaving; no await between the
        checks and the record, so two messages cannot pass together."""
        while True:
            hold = self.chats.hold(chat_id) if chat_id is not None else 0.0
            if hold <= 0:
                hold = self.window.wait()  # records the departure when it answers 0
                if hold <= 0:
                    if chat_id is not None:
                        self.chats.leave(chat_id)
                    return
            await asyncio.sleep(hold)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict[str, Any] | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        limited = endpoint in LIMITED
        chat_id = _chat_id(data.get("chat_id")) if limited else None
        # The sender takes its turn (wait_turn) before it marks a message in flight,
        # and says so: such a first attempt is not paced twice.
        paced = bool(rate_limit_args and rate_limit_args.get("paced"))
        for attempt in range(self.max_retries + 1):
            if limited and not (paced and attempt == 0):
                await self.wait_turn(chat_id, reply=not paced)
            if limited:
                await self._depart(chat_id)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                if attempt >= self.max_retries:
                    raise
                self.retries_after_429 += 1
                log.warning("Telegram asked to wait %.0fs (%s); waiting", wait, endpoint)
                # Everyone waits: the limit that was hit is probably the global one.
                self.pacer.blocked_until = self.replies.blocked_until = time.monotonic() + wait
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")


def _chat_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # a @channelusername: no per-chat pacing


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)
