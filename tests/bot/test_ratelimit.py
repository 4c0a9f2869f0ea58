"""The flood limiter's arithmetic, on a fake clock: even spacing, and no burst
after a stall (requests whose start times passed while the loop was busy)."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.ratelimit import MARGIN, PRIVATE_INTERVAL, ChatPacer, DepartureWindow, FloodLimiter, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_spaces_evenly_under_the_limit() -> None:
    clock = Clock()
    pacer = Pacer(30 * MARGIN, clock)
    starts = []
    for _ in range(90):
        clock.now += pacer.reserve()
        starts.append(clock.now)
    gaps = {round(b - a, 6) for a, b in pairwise(starts)}
    assert gaps == {round(1 / (30 * MARGIN), 6)}
    assert 89 / (starts[-1] - starts[0]) < 30


def test_chat_pacer_keeps_private_chats_a_second_apart_and_groups_three() -> None:
    clock = Clock()
    chats = ChatPacer(clock)
    assert chats.reserve(5) == 0 and chats.reserve(-7) == 0
    assert chats.reserve(5) >= 1.0 and chats.reserve(-7) >= 3.0


@given(st.lists(st.floats(0, 0.5), min_size=1, max_size=200))
def test_no_window_ever_holds_more_than_the_limit(pauses: list[float]) -> None:
    """Requests arriving after arbitrary stalls still leave at most 30 per window."""
    clock = Clock()
    window = DepartureWindow(30, 1 / MARGIN, clock)
    departures = []
    for pause in pauses:
        clock.now += pause
        while (hold := window.wait()) > 0:
            clock.now += hold
        departures.append(clock.now)
    for i, start in enumerate(departures):
        inside = [t for t in departures[i:] if t < start + 1 / MARGIN]
        assert len(inside) <= 30


async def test_a_chat_hears_at_most_once_a_second_even_when_a_message_leaves_late() -> None:
    """The sender takes a chat's turn, then claims and renders the message (and may
    wait behind a broadcast) before it leaves: a message that left late must still
    be followed no sooner than a second later, by when it really left."""
    limiter = FloodLimiter()
    departures: list[float] = []

    async def send() -> bool:
        departures.append(time.monotonic())
        return True

    async def deliver(late_by: float) -> None:
        await limiter.wait_turn(42)  # the sender's turn, as Sender.deliver takes it
        await asyncio.sleep(late_by)  # claimed, rendered, behind other chats
        args: dict[str, Any] = {"chat_id": 42}
        await limiter.process_request(send, (), {}, "sendMessage", args, {"paced": True})

    for late_by in (0.9, 0.0, 0.0):  # one chat's messages go one after another
        await deliver(late_by)
    gaps = [b - a for a, b in pairwise(departures)]
    assert min(gaps) >= PRIVATE_INTERVAL - 0.01, gaps
