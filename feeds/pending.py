"""Unchanged polls waiting to be written together.

An unchanged page (a 304) changes nothing but its source's state (validators,
"last success") and adds a poll record. Written one transaction per poll, that
was half an unchanged poll's CPU with 200 sources: SQLite lets one writer in at a
time, so a burst of polls queued for it. Here they wait in memory instead, and go
in one transaction: the store writes them before anything else it writes (so a
later failure lands after them), before it reads (so this process reads what it
wrote), at close, and the service within a second of the first one waiting.
A crash loses at most that second of unchanged polls' records, nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

State = dict[str, Any]  # a source_state row's columns, without its url
Poll = dict[str, Any]  # a polls row


class PendingPolls:
    """Shared by every store view of one database; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, State] = {}  # by source url: the newest wins
        self._polls: list[Poll] = []
        # How deep this thread is in writing transactions: a read made inside one
        # must not start a second (SQLite would make it wait for the first).
        self._here = threading.local()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """This thread is in a writing transaction while inside."""
        self._here.depth = self._depth() + 1
        try:
            yield
        finally:
            self._here.depth -= 1

    def writing_here(self) -> bool:
        return self._depth() > 0

    def _depth(self) -> int:
        depth: int = getattr(self._here, "depth", 0)
        return depth

    def __bool__(self) -> bool:
        return bool(self._polls)  # every state comes with its poll

    def add(self, url: str, state: State, poll: Poll) -> None:
        with self._lock:
            self._states[url] = state
            self._polls.append(poll)

    def take(self) -> tuple[dict[str, State], list[Poll]]:
        """Everything waiting, to be written now (or given back)."""
        with self._lock:
            states, polls = self._states, self._polls
            self._states, self._polls = {}, []
        return states, polls

    def give_back(self, states: dict[str, State], polls: list[Poll]) -> None:
        """What a failed transaction took: it waits again, behind nothing newer."""
        with self._lock:
            self._states = {**states, **self._states}
            self._polls = polls + self._polls
