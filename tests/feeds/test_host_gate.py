"""The host gate's turn for a caller that must not block (the event loop's poll):
taken when the host is free, refused at once when a statement page holds it, and
given back spaced like any other request."""

from __future__ import annotations

import threading

from feeds.politeness import HostGate
from tests.support.clocks import ManualClock


def test_a_free_host_is_taken_and_a_busy_one_refused_at_once() -> None:
    gate = HostGate(spacing=1.0, clock=ManualClock())
    with gate.poll_turn_if_free("http://a.example/") as free:
        assert free
        # Another caller finds the host busy, another host is free.
        with gate.poll_turn_if_free("http://A.example/other") as again:
            assert not again
        with gate.poll_turn_if_free("http://b.example/") as other:
            assert other


def test_a_statement_page_in_flight_holds_the_host() -> None:
    gate = HostGate(spacing=0.0)
    inside, leave = threading.Event(), threading.Event()

    def statement_page() -> None:
        with gate.turn("http://a.example/page/1"):
            inside.set()
            leave.wait(5)

    worker = threading.Thread(target=statement_page)
    worker.start()
    try:
        assert inside.wait(5)
        with gate.poll_turn_if_free("http://a.example/") as free:
            assert not free  # the fetcher's poll, which may wait, pre-empts it instead
    finally:
        leave.set()
        worker.join(5)
    with gate.poll_turn_if_free("http://a.example/") as free:
        assert free


def test_after_the_loops_poll_a_statement_page_waits_the_spacing() -> None:
    clock = ManualClock()
    gate = HostGate(spacing=2.0, clock=clock)
    with gate.poll_turn_if_free("http://a.example/") as free:
        assert free
    got = threading.Event()

    def statement_page() -> None:
        with gate.turn("http://a.example/page/1"):
            got.set()

    worker = threading.Thread(target=statement_page)
    worker.start()
    assert not got.wait(0.3)  # the spacing has not passed on the gate's clock
    clock.now += 2.0
    assert got.wait(5)
    worker.join(5)
