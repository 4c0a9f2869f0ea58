"""The poll cycle and the full-text job, and the only module that knows their order.

The poll's path ends when the page is stored:

    fetch → not modified? → parse → store (new statements, edits, counters, and
    whatever ``on_stored`` adds in the same transaction: the Telegram outbox) →
    render and publish feeds → ping the WebSub hub → record the poll.

Full texts are a job of their own (``fetch_full_text``), one statement page at a
time: a slow, failing or refused statement page never delays a poll or a message.
Each page keeps its own state — exponential back-off with a cap, and permanent
answers (404/410, other 4xx but 429, a refused address, a page the profile cannot
read) never tried again. A full text that arrives later updates the stored copy
and the feeds; it is never pushed as news.

A failure at any step before the store leaves the store and the feeds as they
were; the failure is recorded, counted, and feeds the back-off.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from sqlalchemy.engine import Connection

from feeds import metrics, websub
from feeds.backoff import next_delay
from feeds.clock import london_today, utcnow
from feeds.config import FeedsConfig, SourceSettings
from feeds.errors import (
    AddressNotAllowed,
    FeedbotError,
    FetchCancelled,
    ParseError,
    SourceError,
    SourceHTTPError,
    SuspiciousPage,
    error_label,
)
from feeds.fetch import Fetcher, Response
from feeds.fetch_factory import AnyFetcher
from feeds.model import Changes, Page, PollRecord, Statement
from feeds.parse import parse_article, parse_page
from feeds.politeness import HostGate
from feeds.publish import FeedBuilder, publish
from feeds.render import FeedContext, SourceLabel
from feeds.store import Store, serialise
from feeds.urls import masked_in_text, page_base, with_credentials_of

log = logging.getLogger(__name__)

# Called inside the transaction that stores a page's changes, so whatever the
# Telegram side enqueues commits (or rolls back) together with the statements.
ChangesHook = Callable[[Connection, Changes], None]

# More than this share of the known statements retitled in one poll is suspicious.
SUSPICIOUS_SHARE = 0.5
SUSPICIOUS_MIN_KNOWN = 4
FULL_TEXT_RETRY_SECONDS = 60.0  # first wait after a statement page failed; doubles
FULL_TEXT_RETRY_MAX_SECONDS = 6 * 3600.0


def permanent(exc: SourceError) -> bool:
    """An answer that will not change by asking again: never retried."""
    if isinstance(exc, SourceHTTPError):
        return 400 <= exc.status < 500 and exc.status not in (408, 425, 429)
    return isinstance(exc, AddressNotAllowed | ParseError)


def full_text_retry_delay(attempts: int) -> float:
    """Seconds before the next try of a statement page that failed ``attempts`` times."""
    delay: float = FULL_TEXT_RETRY_SECONDS * 2.0 ** max(attempts - 1, 0)
    return min(FULL_TEXT_RETRY_MAX_SECONDS, delay)


@dataclass(frozen=True)
class FullTextResult:
    statement: Statement
    result: str  # ok | retry | skipped | cancelled
    error: SourceError | None = None


@dataclass
class PollOutcome:
    result: str  # ok | not_modified | failed | cancelled (the process is stopping)
    changes: Changes | None = None
    error: FeedbotError | None = None
    feeds_written: list[str] = field(default_factory=list)
    page: Page | None = None
    consecutive_failures: int = 0
    next_delay: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result in ("ok", "not_modified")

    def summary(self) -> str:
        if self.result == "failed":
            return f"poll failed ({error_label(self.error or FeedbotError())}): {self.error}"
        if self.result == "not_modified":
            return "source not modified"
        if self.result == "cancelled":
            return "poll stopped: the service is shutting down"
        assert self.changes is not None
        c = self.changes
        parts = [
            f"{len(self.page.entries) if self.page else 0} statements on the page"
            + (f" (read by {self.page.reader})" if self.page else ""),
            f"{len(c.new)} new"
            + (" (first fill: nobody notified)" if c.first_fill and c.new else ""),
            f"{len(c.edited)} edited",
            f"{len(self.page.counters) if self.page else 0} counters",
        ]
        if self.feeds_written:
            parts.append(f"feeds written: {', '.join(self.feeds_written)}")
        return "; ".join(parts)


def feed_context(config: FeedsConfig, source: SourceSettings | None = None) -> FeedContext:
    """The feeds' context: of the combined documents at the top level (no ``source``),
    or of one source's own documents (titled with the source's name)."""
    f = config.publish
    if source is None:
        return FeedContext(
            public_url=f.public_url,
            source_url=config.source.url,
            title=f.title,
            subtitle=f.subtitle,
            author=f.author,
            hub=f.websub_hub,
        )
    return FeedContext(
        public_url=f.public_url,
        source_url=source.url,
        title=source.name,
        subtitle=f.subtitle if source.primary else "",
        author=f.author,
        hub=f.websub_hub,
    )


def source_labels(config: FeedsConfig) -> dict[str, SourceLabel]:
    """Every configured source's label by its store key."""
    return {s.key: SourceLabel(s.id, s.name) for s in config.sources}


def combined_builder(config: FeedsConfig, store: Store) -> FeedBuilder:
    """The top-level documents: every source's statements (entries name their
    source when there are several), the counters of every source that has them."""
    several = len(config.sources) > 1
    return FeedBuilder(
        store.view(None),
        feed_context(config),
        config.publish.entries,
        config.publish.counter_days,
        labels=source_labels(config) if several else None,
        counter_sources={s.key: s.counters for s in config.sources},
    )


def source_builder(config: FeedsConfig, store: Store, source: SourceSettings) -> FeedBuilder:
    """One source's own documents, under ``<id>/``."""
    return FeedBuilder(
        store.view(source.key),
        feed_context(config, source),
        config.publish.entries,
        config.publish.counter_days,
        prefix=f"{source.id}/",
        counters=source.counters,
    )


class Pipeline:
    def __init__(
        self,
        config: FeedsConfig,
        store: Store,
        fetcher: AnyFetcher | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        source: SourceSettings | None = None,
        gate: HostGate | None = None,
        combined: FeedBuilder | None = None,
    ) -> None:
        self.config = config
        # The source this pipeline polls (the primary by default), and its rows.
        self.source = source or config.source
        self.store = store.view(self.source.key)
        self.fetcher = fetcher or Fetcher(config.fetch)
        self.clock = clock
        self.sleep = sleep
        # The combined documents (top level: what `feedbot feed` prints) and this
        # source's own (under <id>/); a publish after a poll rewrites both. The
        # sources of one process share the combined builder.
        self.builder = combined or combined_builder(config, store)
        self.source_builder = source_builder(config, store, self.source)
        self._published_day: dt.date | None = None
        # The conditional-GET validators this pipeline stored last (read from the store
        # before its first poll); another process's newer ones only cost a full fetch.
        self._validators: tuple[str | None, str | None] | None = None
        # One request at a time to a host, the poll first (full texts give way); the
        # pipelines of sources on one host share one gate.
        self.gate = gate or HostGate(spacing=config.fetch.article_delay)

    @property
    def source_url(self) -> str:
        return self.source.url

    def article_hosts(self) -> list[str]:
        host = urlsplit(self.source_url).hostname or ""
        return [host, *self.source.profile.allowed_hosts]

    def read(self, body: bytes, url: str, content_type: str | None) -> Page:
        """The source's page as a Page: a feed read as a feed, a page by its profile."""
        base = page_base(url, self.source_url)
        if self.source.kind == "feed":
            from feeds.feedpage import parse_feed

            return parse_feed(body, base, content_type)
        return parse_page(body, base, self.source.profile, content_type)

    @property
    def known_validators(self) -> tuple[str | None, str | None] | None:
        """The validators the next poll sends, when known without the database (after
        this pipeline's first poll)."""
        return self._validators

    def poll(
        self,
        now: dt.datetime | None = None,
        on_stored: ChangesHook | None = None,
        accept_retitles: bool = False,
        answer: Response | None = None,
    ) -> PollOutcome:
        """One poll cycle. ``on_stored`` runs inside the transaction that stores the
        page's changes (the process queues Telegram deliveries there).
        ``accept_retitles``: store a page that retitles most statements (the operator
        checked it) instead of holding it as suspicious. ``answer``: the source's
        ``304`` to the known validators, already asked for (``feeds.recheck``)."""
        started = now or self.clock()
        tick = time.monotonic()
        etag, last_modified = self._validators or self._stored_validators()
        try:
            if answer is not None:
                response = answer
            else:
                with self.gate.turn(self.source_url, poll=True):
                    response = self.fetcher.get(
                        self.source_url, etag, last_modified, source_url=self.source_url
                    )
            metrics.FETCH_SECONDS.observe(response.elapsed)
            page = None
            if not response.not_modified:
                page = self.read(response.body, response.url, response.content_type)
                if not accept_retitles:
                    self._check_titles(page)
                if page.kind != "list":
                    title = page.entries[0].title
                    raise ParseError(
                        f"the source page reads as one statement's page ({title!r}), not a"
                        " list of statements: is source.url the right page?"
                    )
        except FetchCancelled as exc:
            # The process is stopping: not a failure of the source, nothing recorded.
            return PollOutcome(result="cancelled", error=exc)
        except SourceError as exc:
            return self._failed(exc, started, tick)

        if page is None:
            unchanged = self._unchanged(response, started, tick)
            if unchanged is not None:
                return unchanged
            # A 304 answers the validators sent: they stay (or the new ones).
            etag, last_modified = etag or response.etag, last_modified or response.last_modified
        else:
            etag, last_modified = response.etag, response.last_modified
        outcome = PollOutcome(result="not_modified" if page is None else "ok", page=page)
        # "Last success": the page fetched and stored.
        succeeded = max(started, self.clock())
        publishing = self._published_day != london_today(started)
        self._store_page(
            outcome, (etag, last_modified), started, succeeded, tick, on_stored, publishing
        )
        return self._next(outcome)

    def unchanged(
        self, response: Response, started: dt.datetime, tick: float
    ) -> PollOutcome | None:
        """The end of a poll started at ``started`` (``tick`` on the monotonic clock)
        that the source answered ``304`` to the known validators, with nothing
        written yet: the state and record wait in memory (feeds.pending) to be
        written with others, so this is safe on the event loop. None when the poll
        must write (the first of a London day publishes: the counters' day moved on),
        or the validators are not known yet: ``poll(answer=response)`` ends it then."""
        unchanged = self._unchanged(response, started, tick)
        if unchanged is not None:
            metrics.FETCH_SECONDS.observe(response.elapsed)
        return unchanged

    def _unchanged(
        self, response: Response, started: dt.datetime, tick: float
    ) -> PollOutcome | None:
        if self._validators is None or self._published_day != london_today(started):
            return None
        etag, last_modified = self._validators
        etag, last_modified = etag or response.etag, last_modified or response.last_modified
        outcome = PollOutcome(result="not_modified")
        self.store.note_unchanged(
            self.source_url,
            etag,
            last_modified,
            max(started, self.clock()),
            self._poll_record(outcome, started, tick),
        )
        self._count(outcome)
        self._validators = (etag, last_modified)
        return self._next(outcome)

    def _next(self, outcome: PollOutcome) -> PollOutcome:
        outcome.next_delay = next_delay(
            0, self.source.poll_seconds, self.source.backoff_max_seconds
        )
        return outcome

    def _store_page(
        self,
        outcome: PollOutcome,
        validators: tuple[str | None, str | None],
        started: dt.datetime,
        succeeded: dt.datetime,
        tick: float,
        on_stored: ChangesHook | None,
        publishing: bool,
    ) -> None:
        """A page read (or the first poll of a London day): stored in one transaction
        with the deliveries it queues; the feeds written when anything changed."""
        page = outcome.page
        etag, last_modified = validators
        with self.store.begin() as conn:
            if page is not None:
                # Two pollers of one source (a `feedbot poll` beside `feedbot run`) take
                # turns here: the second sees the first one's statements, not a conflict.
                serialise(conn, f"feedbot:poll:{self.source.id}")
                outcome.changes = self.store.apply_page(page, started, conn)
                if on_stored is not None:
                    on_stored(conn, outcome.changes)
            self.store.record_success(self.source_url, etag, last_modified, succeeded, conn)
            changes = outcome.changes
            publishing |= bool(changes and (changes.new or changes.edited or changes.new_counters))
            if not publishing:
                # Nothing to publish: the poll's record joins the same transaction, one
                # commit in all.
                self._record(outcome, started, tick, conn)
        self._validators = (etag, last_modified)
        if publishing:
            outcome.feeds_written = self.publish(started)
            self._record(outcome, started, tick)

    def _stored_validators(self) -> tuple[str | None, str | None]:
        state = self.store.source_state(self.source_url)
        return state.etag, state.last_modified

    def _check_titles(self, page: Page) -> None:
        """A page that retitles most known statements at once is held, not stored: one
        bad byte read in the wrong charset would otherwise edit every sent message."""
        known, changed = self.store.title_changes(page)
        if known >= SUSPICIOUS_MIN_KNOWN and changed > known * SUSPICIOUS_SHARE:
            raise SuspiciousPage(
                f"the page would change the titles of {changed} of {known} known statements"
                " at once: held as suspicious (a charset or markup problem?), nothing stored"
            )

    def preview(self) -> Page:
        """Read the live page now with the profile, storing nothing (operators' check)."""
        response = self.fetcher.get(self.source_url, source_url=self.source_url)
        return self.read(response.body, response.url, response.content_type)

    def publish(self, now: dt.datetime | None = None) -> list[str]:
        """Rewrite the combined documents and this source's own (each only where its
        bytes changed); returns the names written, the combined ones first."""
        today = london_today(now or self.clock())
        folder = self.config.publish.folder
        combined = publish(folder, self.builder, today)
        own = publish(folder, self.source_builder, today)
        self._published_day = today
        written = [*combined, *own]
        metrics.FEEDS_WRITTEN.inc(len(written))
        metrics.STATEMENTS_STORED.set(self.builder.store.count_statements())
        self._announce(combined, own)
        return written

    def _announce(self, combined: list[str], own: list[str]) -> None:
        """Ping the WebSub hub for every topic document rewritten, of either set."""
        hub = self.builder.ctx.hub
        prefix = self.source_builder.prefix
        topics = websub.changed_topics(self.builder.ctx, combined) + [
            self.source_builder.feed_url(name) for name in websub.TOPICS if f"{prefix}{name}" in own
        ]
        if hub and topics:
            websub.ping_hub(self.fetcher.session, hub, topics, self.config.fetch)

    def fetch_full_text(self, stop: threading.Event | None = None) -> FullTextResult | None:
        """Read the next statement page that is due (one request), or None when none is.

        ``stop`` (the process's stop event) ends a running request at once."""
        fs = self.config.fetch
        if self.source.kind == "feed":
            return None  # a feed carries what it has to say; its pages are not scraped
        due = self.store.full_texts_due(self.clock(), 1, fs.article_attempts)
        if not due:
            return None
        statement = due[0]
        assert statement.url is not None
        with self.gate.turn(statement.url, stop=stop) as cancel:
            try:
                response = self.fetcher.get(
                    with_credentials_of(statement.url, self.source_url),
                    allowed_hosts=self.article_hosts(),
                    source_url=self.source_url,
                    cancel=cancel,
                )
                article = parse_article(
                    response.body,
                    page_base(response.url, self.source_url),
                    self.source.profile,
                    response.content_type,
                )
            except FetchCancelled as exc:
                if stop is not None and stop.is_set():
                    return FullTextResult(statement, "cancelled")  # stopping: not a try
                # The poll took the host: a try like any other, so that the job moves on
                # to other pages and a page slower than the poll interval ends skipped.
                return self._full_text_failed(statement, exc)
            except SourceError as exc:
                return self._full_text_failed(statement, exc)
        self.store.save_article(statement.id, article, self.clock())
        metrics.ARTICLES.labels("ok").inc()
        return FullTextResult(statement, "ok")

    def fetch_full_texts(self, limit: int, stop: threading.Event | None = None) -> int:
        """Up to ``limit`` due statement pages now (``feedbot poll``: a one-shot run has no
        job to leave them to); the feeds are rewritten when any arrived."""
        fetched = 0
        for _ in range(limit):
            result = self.fetch_full_text(stop)
            if result is None or result.result == "cancelled":
                break
            fetched += result.result == "ok"
        if fetched:
            self.publish()
        return fetched

    def _full_text_failed(self, statement: Statement, exc: SourceError) -> FullTextResult:
        attempts = self.store.full_text_attempts(statement.id) + 1
        give_up = permanent(exc) or attempts >= self.config.fetch.article_attempts
        retry_at = (
            None
            if give_up
            else self.clock() + dt.timedelta(seconds=full_text_retry_delay(attempts))
        )
        self.store.full_text_failed(statement.id, masked_in_text(str(exc)), retry_at)
        metrics.ARTICLES.labels(error_label(exc)).inc()
        if give_up:
            log.warning("full text of %s skipped for good: %s", statement.url, exc)
            return FullTextResult(statement, "skipped", exc)
        log.info("full text of %s not fetched (try %d): %s", statement.url, attempts, exc)
        return FullTextResult(statement, "retry", exc)

    def _failed(self, exc: SourceError, started: dt.datetime, tick: float) -> PollOutcome:
        state = self.store.source_state(self.source_url)
        failures = state.consecutive_failures + 1
        retry_after = exc.retry_after if isinstance(exc, SourceHTTPError) else None
        if retry_after is not None:
            # The source's header, held to our own back-off cap: a huge value must not
            # overflow the datetime below and crash the poll.
            retry_after = min(retry_after, float(self.source.backoff_max_seconds))
        delay = next_delay(
            failures,
            self.source.poll_seconds,
            self.source.backoff_max_seconds,
            retry_after,
        )
        outcome = PollOutcome(
            result="failed", error=exc, consecutive_failures=failures, next_delay=delay
        )
        with self.store.begin() as conn:
            self.store.save_source_state(
                replace(
                    state,
                    consecutive_failures=failures,
                    last_failure_at=started,
                    retry_after_until=started + dt.timedelta(seconds=retry_after)
                    if retry_after
                    else None,
                ),
                conn,
            )
            self._record(outcome, started, tick, conn)
        log.warning(
            "poll of %s failed (%s, %d in a row; next try in %.0fs): %s",
            self.source_url,
            error_label(exc),
            failures,
            delay,
            exc,
        )
        metrics.POLL_ERRORS.labels(error_label(exc)).inc()
        return outcome

    def _record(
        self,
        outcome: PollOutcome,
        started: dt.datetime,
        tick: float,
        conn: Connection | None = None,
    ) -> None:
        self.store.record_poll(self._poll_record(outcome, started, tick), conn)
        self._count(outcome)

    def _poll_record(self, outcome: PollOutcome, started: dt.datetime, tick: float) -> PollRecord:
        changes = outcome.changes
        return PollRecord(
            started_at=started,
            finished_at=self.clock(),
            result=outcome.result,
            error_kind=error_label(outcome.error) if outcome.error else None,
            error=masked_in_text(str(outcome.error))[:1000] if outcome.error else None,
            entries_on_page=len(outcome.page.entries) if outcome.page else 0,
            new_statements=len(changes.new) if changes else 0,
            edited_statements=len(changes.edited) if changes else 0,
            duration_ms=int((time.monotonic() - tick) * 1000),
            reader=outcome.page.reader if outcome.page else None,
        )

    def _count(self, outcome: PollOutcome) -> None:
        """The poll in the metrics."""
        changes = outcome.changes
        metrics.POLLS.labels(outcome.result).inc()
        if outcome.page is not None:
            metrics.PAGES_READ.labels(outcome.page.reader).inc()
            for reader in ("selectors", "text-layout", "plain-text"):
                metrics.LAST_READER.labels(reader).set(reader == outcome.page.reader)
        metrics.CONSECUTIVE_FAILURES.set(outcome.consecutive_failures)
        if changes:
            metrics.NEW_STATEMENTS.inc(len(changes.new))
            metrics.EDITED_STATEMENTS.inc(len(changes.edited))
