"""Operator alerts with hysteresis: one message when a problem starts, one when it
ends, never one per failed poll.

Watched after every poll:

* ``source_down`` — the source failed ``failures`` polls in a row;
* ``layout``      — the profile found no statement on a page that answered, or
                    far fewer than usual (under ``drop_ratio`` × the median of
                    recent polls): the site's layout probably changed;
* counter anomalies reported by the store (jump, reset, gone, new) — one
  message each, as they happen once.

Alerts go to the admin chats through the outbox, and are listed on /healthz.
"""

from __future__ import annotations

import datetime as dt
import html
import statistics
from dataclasses import dataclass

from bot.store import BotStore
from feeds.errors import ParseError
from feeds.pipeline import PollOutcome
from feeds.store import Store


@dataclass(frozen=True)
class AlertSettings:
    failures: int = 3
    drop_ratio: float = 0.5


class AlertWatch:
    def __init__(
        self, store: Store, bot_store: BotStore, admins: tuple[int, ...], settings: AlertSettings
    ) -> None:
        self.store = store
        self.bot_store = bot_store
        self.admins = admins
        self.settings = settings

    def after_poll(self, outcome: PollOutcome, now: dt.datetime) -> list[str]:
        """Raise or clear alerts for this poll; returns the messages queued."""
        sent: list[str] = []
        error = html.escape(str(outcome.error)) if outcome.error else ""
        if outcome.result == "failed":
            if outcome.consecutive_failures >= self.settings.failures:
                sent += self._start(
                    "source_down",
                    f"⚠️ The source failed {outcome.consecutive_failures} polls in a row: {error}",
                    now,
                )
            if isinstance(outcome.error, ParseError):
                sent += self._start(
                    "layout", f"⚠️ The profile finds no statements on the page: {error}", now
                )
            return sent
        sent += self._end("source_down", "✅ The source answers again.", now)
        if outcome.page is None:  # 304: the page is the one last read correctly
            sent += self._end("layout", "✅ The profile reads the page again.", now)
        else:
            found = len(outcome.page.entries)
            usual = self._usual_count()
            if usual and found < usual * self.settings.drop_ratio:
                sent += self._start(
                    "layout",
                    f"⚠️ The profile finds {found} statements on the page, usually {usual:g}: "
                    "has the layout changed? /preview shows what it reads.",
                    now,
                )
            else:
                sent += self._end(
                    "layout", f"✅ The profile reads the page again ({found} statements).", now
                )
        if outcome.changes is not None and not outcome.changes.first_fill:
            for anomaly in outcome.changes.counter_anomalies:
                sent.append(self._send("counter", f"ℹ️ Counters: {html.escape(anomaly)}.", now))
        return sent

    def _usual_count(self) -> float | None:
        # The current poll is already recorded: look at the ones before it.
        counts = [
            p.entries_on_page
            for p in self.store.recent_polls(21)[1:]
            if p.result == "ok" and p.entries_on_page
        ]
        return statistics.median(counts) if len(counts) >= 3 else None

    def _start(self, name: str, text: str, now: dt.datetime) -> list[str]:
        if self.bot_store.alert_active(name):
            return []
        self.bot_store.set_alert_active(name, True, now)
        return [self._send(name, text, now)]

    def _end(self, name: str, text: str, now: dt.datetime) -> list[str]:
        if not self.bot_store.alert_active(name):
            return []
        self.bot_store.set_alert_active(name, False, now)
        return [self._send(f"{name}_recovered", text, now)]

    def _send(self, kind: str, text: str, now: dt.datetime) -> str:
        self.bot_store.add_alert(kind, text, self.admins, now)
        return text
