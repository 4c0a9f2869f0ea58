"""One request at a time to a host, politely spaced, and the poll goes first.

The poll of a source and the full-text fetches of its statement pages share the
source's host. ``HostGate.turn`` hands a host to one request at a time; a statement
page waits at least ``spacing`` seconds after the previous request ended there (the
poll's own schedule spaces the polls). A poll never waits for a statement page: it
pre-empts one in flight (its ``cancel`` event is set, the fetch ends within a tenth
of a second, and the page is tried again after its back-off).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@functools.lru_cache(maxsize=4096)  # pure, and asked of the same few URLs every poll
def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


@dataclass
class _Host:
    busy: bool = False
    cancel: threading.Event | None = None  # the pre-emptible holder's, while it holds
    polls_waiting: int = 0
    free_at: float = 0.0  # monotonic time from which the next request may start


@dataclass
class HostGate:
    spacing: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _hosts: dict[str, _Host] = field(default_factory=dict)

    @contextmanager
    def turn(
        self, url: str, poll: bool = False, stop: threading.Event | None = None
    ) -> Iterator[threading.Event]:
        """Hold ``url``'s host for one request; yields the event that cancels it.

        ``poll``: the source's own poll — it pre-empts a statement page in flight and
        goes before statement pages that wait. ``stop`` ends the wait (and the
        request, being the event yielded) when the process stops.
        """
        host = self._hosts.setdefault(host_of(url), _Host())
        cancel = threading.Event()
        with self._cond:
            if poll:
                host.polls_waiting += 1
            try:
                while True:
                    if stop is not None and stop.is_set():
                        cancel.set()
                        break
                    if host.busy and poll and host.cancel is not None:
                        host.cancel.set()  # a statement page gives way to the poll
                    wait = 0.0 if poll else host.free_at - self.clock()
                    if not host.busy and (poll or host.polls_waiting == 0) and wait <= 0:
                        break
                    self._cond.wait(timeout=min(max(wait, 0.05), 0.1) if not host.busy else 0.1)
            finally:
                if poll:
                    host.polls_waiting -= 1
            host.busy = True
            host.cancel = None if poll else cancel
        if stop is not None:
            watcher = threading.Thread(target=_forward, args=(stop, cancel), daemon=True)
            watcher.start()
        try:
            yield cancel
        finally:
            cancel.set()  # ends the stop watcher; the request is over anyway
            self._release(host)

    @contextmanager
    def poll_turn_if_free(self, url: str) -> Iterator[bool]:
        """Hold ``url``'s host for a poll if nothing is using it: yields True, else
        False at once, holding nothing. For a caller that must not block (the event
        loop); one that can wait takes ``turn``, which pre-empts a statement page."""
        host = self._hosts.setdefault(host_of(url), _Host())
        with self._cond:
            if host.busy:
                free = False
            else:
                free = host.busy = True
                host.cancel = None
        if not free:
            yield False
            return
        try:
            yield True
        finally:
            self._release(host)

    def _release(self, host: _Host) -> None:
        """The request is over: the host is free from ``spacing`` seconds on."""
        with self._cond:
            host.busy = False
            host.cancel = None
            host.free_at = self.clock() + self.spacing
            self._cond.notify_all()


def _forward(stop: threading.Event, cancel: threading.Event) -> None:
    """Set ``cancel`` when ``stop`` is set, until ``cancel`` is set for another reason."""
    while not cancel.is_set():
        if stop.wait(0.1):
            cancel.set()
            return
