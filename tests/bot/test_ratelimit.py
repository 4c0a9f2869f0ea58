"""The flood limiter's arithmetic, on a fake clock: even spacing, and no burst
after a stall (requests whose start times passed while the loop was busy)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from bot.ratelimit import MARGIN, ChatPacer, DepartureWindow, Pacer


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
