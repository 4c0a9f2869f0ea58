"""The flood limiter's arithmetic, on a fake clock: even spacing, and no burst
after a stall (requests whose start times passed while the loop was busy)."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from bot.ratelimit import (
    MARGIN,
    PRIVATE_INTERVAL,
    ChatPacer,
    Flight,
    FloodLimiter,
    Pacer,
    SendWindow,
)
from tests.support.clocks import ManualClock


def test_pacer_spaces_evenly_under_the_limit() -> None:
    clock = ManualClock()
    pacer = Pacer(30 * MARGIN, clock)
    starts = []
    for _ in range(90):
        clock.now += pacer.reserve()
        starts.append(clock.now)
    gaps = {round(b - a, 6) for a, b in pairwise(starts)}
    assert gaps == {round(1 / (30 * MARGIN), 6)}
    assert 89 / (starts[-1] - starts[0]) < 30


def test_chat_pacer_keeps_private_chats_a_second_apart_and_groups_three() -> None:
    clock = ManualClock()
    chats = ChatPacer(clock)
    assert chats.reserve(5) == 0 and chats.reserve(-7) == 0
    assert chats.reserve(5) >= 1.0 and chats.reserve(-7) >= 3.0


# Thirty leave at once and are slow on their way; the thirty-first is not.
@example([(0.0, 0.3, 0.0)] * 30 + [(0.0, 0.0, 0.0)])
@given(
    st.lists(
        st.tuples(st.floats(0, 0.5), st.floats(0, 0.3), st.floats(0, 0.3)),
        min_size=1,
        max_size=200,
    )
)
def test_telegram_never_handles_more_than_the_limit_in_a_second(
    requests: list[tuple[float, float, float]],
) -> None:
    """Requests leave after arbitrary stalls, are handled after an arbitrary delay on
    their way and answered after another: at most 30 are handled in any second."""
    clock = ManualClock()
    window = SendWindow(30, 1 / MARGIN, clock)
    on_their_way: list[tuple[float, Flight]] = []  # (answer time, flight)
    handled = []

    def answers_until(now: float) -> None:
        for answer_at, flight in sorted(on_their_way, key=lambda a: a[0]):
            if answer_at <= now and flight.answered is None:
                clock.now, saved = answer_at, clock.now
                window.landed(flight)
                clock.now = saved

    for pause, transit, answer in requests:
        clock.now += pause
        answers_until(clock.now)
        while (hold := window.hold()) > 0:
            clock.now += hold
            answers_until(clock.now)
        flight = window.leave()
        handled.append(clock.now + transit)
        on_their_way.append((clock.now + transit + answer, flight))
    handled.sort()
    for i, start in enumerate(handled):
        inside = [t for t in handled[i:] if t < start + 1.0]
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
