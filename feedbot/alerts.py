"""Operator alerts with hysteresis: one message when a problem starts, one when it
ends, never one per failed poll.

Watched after every poll:

* ``source_down`` — the source failed ``failures`` polls in a row;
* ``fallback``    — the selectors found nothing and the text-layout reader read
                    the page (the profile no longer fits the site);
* ``layout``      — the profile found no statement on a page that answered, or
                    far fewer than usual (under ``drop_ratio`` × the median of
                    recent polls): the site's layout probably changed;
* ``suspicious``  — a page that would retitle most known statements at once was
                    held (nothing stored, published or pushed);
* counter anomalies reported by the store (jump, reset, gone, new) — one
  message each, as they happen once.

Each source has its own watch and its own alert states (``source_down`` for the
primary source, as before several sources, ``source_down:<id>`` for another);
where there are several sources, every message starts with the source's name.

Alerts go to the admin chats through the outbox, and are listed on /healthz.
Each operator chat reads them in its language (set with /language, else
English); the details (errors, the anomaly's own words) stay in English.
"""

from __future__ import annotations

import datetime as dt
import html
import statistics

from bot.i18n import DEFAULT, language_for, translator
from bot.store import BotStore
from bot.texts import (
    COUNTER,
    FALLBACK,
    FALLBACK_BACK,
    FEWER,
    LAYOUT_BACK,
    LAYOUT_BACK_UNCHANGED,
    NO_STATEMENTS,
    SOURCE_BACK,
    SOURCE_DOWN,
    SUSPICIOUS,
    SUSPICIOUS_BACK,
)
from feedbot.settings import AlertSettings
from feeds.config import SourceSettings
from feeds.errors import ParseError, SuspiciousPage
from feeds.pipeline import PollOutcome
from feeds.store import Store

# The alerts an unchanged (304) page can end: it is the page last read correctly.
UNCHANGED_ENDS = ("suspicious", "source_down", "layout")


class AlertWatch:
    """The alerts of one source (the primary by default). ``store`` speaks for that
    source; ``named``: start every message with the source's name (several sources)."""

    def __init__(
        self,
        store: Store,
        bot_store: BotStore,
        admins: tuple[int, ...],
        settings: AlertSettings,
        source: SourceSettings | None = None,
        named: bool = False,
    ) -> None:
        self.store = store
        self.bot_store = bot_store
        self.admins = admins
        self.settings = settings
        self.source = source
        self.named = named and source is not None
        # The alert states that are on, read once: only the service's watches change
        # them, each its own, so an unchanged poll need not ask the database.
        self._on: set[str] | None = None

    def state_name(self, name: str) -> str:
        """The alert's state for this source: the primary's keep their old names."""
        if self.source is None or self.source.primary:
            return name
        return f"{name}:{self.source.id}"

    def idle_after(self, outcome: PollOutcome) -> bool:
        """Whether ``after_poll`` would neither look anything up nor change anything:
        a stopped poll, or an unchanged page while none of this source's alerts is on
        (most polls). Answered from memory, without the database."""
        if outcome.result == "cancelled":
            return True
        if outcome.result != "not_modified" or self._on is None:
            return False
        return not any(self.state_name(n) in self._on for n in UNCHANGED_ENDS)

    def after_poll(self, outcome: PollOutcome, now: dt.datetime) -> list[str]:
        """Raise or clear alerts for this poll; returns the messages queued."""
        sent: list[str] = []
        if outcome.result == "cancelled":  # the service is stopping: says nothing
            return sent
        error = html.escape(str(outcome.error)) if outcome.error else ""
        if outcome.result == "failed":
            if outcome.consecutive_failures >= self.settings.failures:
                sent += self._start(
                    "source_down",
                    now,
                    SOURCE_DOWN,
                    failures=outcome.consecutive_failures,
                    error=error,
                )
            if isinstance(outcome.error, SuspiciousPage):
                sent += self._start("suspicious", now, SUSPICIOUS, error=error)
            elif isinstance(outcome.error, ParseError):
                sent += self._start("layout", now, NO_STATEMENTS, error=error)
            return sent
        sent += self._end("suspicious", now, SUSPICIOUS_BACK)
        sent += self._end("source_down", now, SOURCE_BACK)
        if outcome.page is None:  # 304: the page is the one last read correctly
            sent += self._end("layout", now, LAYOUT_BACK_UNCHANGED)
        else:
            found = len(outcome.page.entries)
            usual = self._usual_count()
            if usual and found < usual * self.settings.drop_ratio:
                sent += self._start("layout", now, FEWER, found=found, usual=f"{usual:g}")
            else:
                sent += self._end("layout", now, LAYOUT_BACK, found=found)
            if outcome.page.reader == "text-layout":
                sent += self._start("fallback", now, FALLBACK, found=found)
            elif outcome.page.reader == "selectors":
                sent += self._end("fallback", now, FALLBACK_BACK)
        if outcome.changes is not None and not outcome.changes.first_fill:
            for anomaly in outcome.changes.counter_anomalies:
                sent.append(self._send("counter", now, COUNTER, anomaly=html.escape(anomaly)))
        return sent

    def _usual_count(self) -> float | None:
        # The current poll is already recorded: look at the ones before it.
        counts = [
            p.entries_on_page
            for p in self.store.recent_polls(21)[1:]
            if p.result == "ok" and p.entries_on_page
        ]
        return statistics.median(counts) if len(counts) >= 3 else None

    def _states_on(self) -> set[str]:
        if self._on is None:
            self._on = self.bot_store.active_alert_states()
        return self._on

    def _start(self, name: str, now: dt.datetime, message: str, **params: object) -> list[str]:
        state = self.state_name(name)
        if state in self._states_on():
            return []
        self.bot_store.set_alert_active(state, True, now)
        self._states_on().add(state)
        return [self._send(name, now, message, **params)]

    def _end(self, name: str, now: dt.datetime, message: str, **params: object) -> list[str]:
        state = self.state_name(name)
        if state not in self._states_on():
            return []
        self.bot_store.set_alert_active(state, False, now)
        self._states_on().discard(state)
        return [self._send(f"{name}_recovered", now, message, **params)]

    def _text(self, message: str, lang: str, params: dict[str, object]) -> str:
        text = (message if lang == DEFAULT else translator(lang)(message)).format(**params)
        if self.named and self.source is not None:
            # The source's own name, in no language: it says which source it is.
            return f"{html.escape(self.source.name)}: {text}"
        return text

    def _send(self, kind: str, now: dt.datetime, message: str, **params: object) -> str:
        """Record the alert and queue it for the operators, once per language among
        them (English first); returns the English text."""
        kind = self.state_name(kind)
        english = self._text(message, DEFAULT, params)
        chats_by_language: dict[str, list[int]] = {}
        for chat_id in self.admins:
            chats_by_language.setdefault(self._language(chat_id), []).append(chat_id)
        if not chats_by_language:
            self.bot_store.add_alert(kind, english, (), now)
        for lang in sorted(chats_by_language, key=lambda lang: lang != DEFAULT):
            text = self._text(message, lang, params)
            self.bot_store.add_alert(kind, text, chats_by_language[lang], now)
        return english

    def _language(self, chat_id: int) -> str:
        sub = self.bot_store.subscriber(chat_id)
        return language_for(sub.language) if sub is not None else DEFAULT
