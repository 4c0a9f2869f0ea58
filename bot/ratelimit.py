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


class Flight:
    """One request on its way: when it left, and when its answer came (None: not yet)."""

    __slots__ = ("answered", "left")

    def __init__(self, left: float) -> None:
        self.left = left
        self.answered: float | None = None


class SendWindow:
    """At most ``limit`` requests counted by Telegram in any ``span`` seconds.

    Telegram counts a request when it handles it, somewhere between its leaving and
    its answer coming back; a request delayed on its way (a busy event loop, the
    network) can be handled next to a later one. So a request counts against the
    window from its departure until ``span`` after its answer: a new one leaves only
    while fewer than ``limit`` are on their way or were answered within ``span``.
    Any ``span``-long stretch of Telegram's clock then holds at most ``limit``:
    every request handled in it was answered after the stretch began, so each was
    counted when the last of them left. Pacing hands out start times in advance;
    if the event loop stalls, the requests whose times passed meanwhile are held
    here too instead of leaving together."""

    IN_FLIGHT_LOOK = 0.02  # seconds between looks while the window is all in flight

    def __init__(
        self, limit: int, span: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.span = span
        self.clock = clock
        self.flights: list[Flight] = []

    def hold(self) -> float:
        """Seconds to wait before one more request may leave (0: it may go now)."""
        cutoff = self.clock() - self.span
        self.flights = [f for f in self.flights if f.answered is None or f.answered > cutoff]
        if len(self.flights) < self.limit:
            return 0.0
        answered = [f.answered for f in self.flights if f.answered is not None]
        if not answered:
            return self.IN_FLIGHT_LOOK
        return min(answered) - cutoff

    def leave(self) -> Flight:
        """A request leaves now; ``landed`` it once its answer (any answer) is back."""
        flight = Flight(self.clock())
        self.flights.append(flight)
        return flight

    def landed(self, flight: Flight) -> None:
        flight.answered = self.clock()


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
        self.window = SendWindow(round(rate / MARGIN), 1.0 / MARGIN)
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

    async def _depart(self, chat_id: int | None) -> Flight:
        """Wait until the chat's spacing (by its last departure) and the send window
        both let one more message leave, then record it leaving; no await between
        the checks and the record, so two messages cannot pass together."""
        while True:
            hold = self.chats.hold(chat_id) if chat_id is not None else 0.0
            if hold <= 0:
                hold = self.window.hold()
                if hold <= 0:
                    if chat_id is not None:
                        self.chats.leave(chat_id)
                    return self.window.leave()
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
            flight = await self._depart(chat_id) if limited else None
            try:
                try:
                    return await callback(*args, **kwargs)
                finally:
                    if flight is not None:  # answered, refused or failed: it landed
                        self.window.landed(flight)
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
