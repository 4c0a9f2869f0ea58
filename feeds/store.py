"""The store: the only module of the source side that speaks SQL.

SQLite (a file under ``data/``, WAL mode) by default, PostgreSQL when the
database URL says so. The schema is versioned with Alembic; ``migrate()``
brings any older database up to date.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from feeds.clock import london_today
from feeds.model import (
    Article,
    Changes,
    Page,
    PollRecord,
    SourceState,
    Statement,
    StoredCounter,
    Version,
)
from feeds.pending import PendingPolls, Poll, State
from feeds.schema import (
    archive_progress,
    counters,
    feed_documents,
    polls,
    source_state,
    statement_versions,
    statements,
)
from feeds.urls import without_credentials

log = logging.getLogger(__name__)


def normalise_database_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` use psycopg 3, the driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str) -> Engine:
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # 1 MB of page cache per connection (SQLite's default is 2 MB): the
            # working set is small, and a pooled connection per thread adds up.
            cursor.execute("PRAGMA cache_size=-1024")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def serialise(conn: Connection, name: str) -> None:
    """Hold the database's lock ``name`` until this transaction ends; a second process
    asking for it waits. Must be the transaction's first statement.

    PostgreSQL: a transaction-level advisory lock. SQLite: ``BEGIN IMMEDIATE``, the
    write lock taken at once (its busy timeout makes the other process wait)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade_schema(engine: Engine, script_location: str) -> None:
    """Run one Alembic migration history (``package:folder``) up to its newest revision.
    Processes starting together on an empty database take turns."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", script_location)
    with engine.begin() as conn:
        serialise(conn, "feedbot:migrations")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def within(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    """The caller's transaction when it has one, else a new one committed at the end."""
    if conn is not None:
        yield conn
    else:
        with engine.begin() as c:
            yield c


def stored_id(source: str, entry_id: str) -> str:
    """A statement's id in the store and its feeds: the entry's own id for the primary
    source (so nothing stored before several sources changes), else the entry's id
    marked with its source, so two sources publishing one URL keep separate entries."""
    return entry_id if not source else f"{entry_id}#{source}"


def _statement(row: sa.Row[Any]) -> Statement:
    m = row._mapping
    return Statement(
        seq=m["seq"],
        id=m["id"],
        url=m["url"],
        title=m["title"],
        summary=m["summary"],
        content=m["content"],
        published=m["published"],
        featured=bool(m["featured"]),
        first_seen=m["first_seen"],
        last_seen=m["last_seen"],
        edited_at=m["edited_at"],
        source=m["source"],
    )


def _counter(row: sa.Row[Any]) -> StoredCounter:
    m = row._mapping
    return StoredCounter(
        key=m["key"],
        subject=m["subject"],
        note=m["note"],
        since=m["since"],
        page_days=m["page_days"],
        page_as_of=m["page_as_of"],
        active=bool(m["active"]),
        first_seen=m["first_seen"],
    )


class StatementKey(NamedTuple):
    """A statement's place in the store and a projection that changes whenever how
    it renders changes (its text columns change only together with these)."""

    seq: int
    published: dt.date | None
    version: tuple[object, ...]


_READ_STATE = sa.select(source_state).where(source_state.c.url == sa.bindparam("state_url"))
_SAVE_STATE = source_state.update().where(source_state.c.url == sa.bindparam("state_url"))
# An unchanged poll's state, written later with others: it never moves "last
# success" back (on PostgreSQL two transactions may write one source's state).
_SAVE_SUCCESS = _SAVE_STATE.where(
    sa.or_(
        source_state.c.last_success_at.is_(None),
        source_state.c.last_success_at
        <= sa.bindparam("success_at", type_=source_state.c.last_success_at.type),
    )
)


def _success(etag: str | None, last_modified: str | None, at: dt.datetime) -> State:
    """A source's state after a page fetched and stored: its validators, failures
    and any Retry-After cleared."""
    return {
        "etag": etag,
        "last_modified": last_modified,
        "consecutive_failures": 0,
        "last_success_at": at,
        "retry_after_until": None,
    }


class Store:
    """The source side's SQL. A store speaks for one source (``source``: its key, ""
    for the primary) or, read-only, for all of them (``None``: the combined feeds);
    ``view`` gives another source's store on the same engine."""

    def __init__(
        self,
        database_url: str,
        engine: Engine | None = None,
        source: str | None = "",
        writing: AbstractContextManager[object] | None = None,
        pending: PendingPolls | None = None,
    ) -> None:
        self.url = database_url
        self.engine = engine or create_engine(database_url)
        self.source = source
        # SQLite lets one writer in at a time and busy-waits the others, each holding
        # a pooled connection (more than the pool keeps: opened and closed again). So
        # this process's writing transactions queue here, shared by every view.
        # PostgreSQL's writers run side by side.
        self._writing = writing or (
            threading.RLock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )
        self._pending = pending if pending is not None else PendingPolls()

    def view(self, source: str | None) -> Store:
        """The same database, speaking for another source (None: all of them)."""
        return Store(self.url, self.engine, source, self._writing, self._pending)

    def _mine(self, table: sa.Table) -> Any:
        """The rows of this store's source (every row for the all-sources view)."""
        return sa.true() if self.source is None else table.c.source == self.source

    @property
    def _writer(self) -> str:
        if self.source is None:
            raise ValueError("the all-sources view of the store is read-only")
        return self.source

    def close(self) -> None:
        try:
            self.write_pending()
        except sa.exc.SQLAlchemyError as exc:  # the database went away: say so, end cleanly
            log.warning("unchanged polls' records not written at exit: %s", exc)
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A writing transaction, committed at the end; the unchanged polls waiting
        (feeds.pending) go in first."""
        with self._writing, self._pending.writing():
            waiting = self._pending.take()
            try:
                with self.engine.begin() as conn:
                    self._write_unchanged(conn, *waiting)
                    yield conn
            except BaseException:
                self._pending.give_back(*waiting)
                raise

    def write_pending(self) -> bool:
        """Write the unchanged polls waiting, if any; whether there were."""
        if not self._pending:
            return False
        with self.begin():
            pass
        return True

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision."""
        upgrade_schema(self.engine, "feeds:migrations")

    # -- statements -------------------------------------------------------

    def is_empty(self, conn: Connection | None = None) -> bool:
        with self._conn(conn) as c:
            query = sa.select(statements.c.seq).where(self._mine(statements)).limit(1)
            return c.execute(query).first() is None

    def last_reader(self) -> str | None:
        """The reader of the newest poll that read the page (None before any)."""
        with self._conn() as c:
            value: str | None = c.execute(
                sa.select(polls.c.reader)
                .where(polls.c.reader.is_not(None), self._mine(polls))
                .order_by(polls.c.id.desc())
                .limit(1)
            ).scalar()
            return value

    def title_changes(self, page: Page) -> tuple[int, int]:
        """(statements on the page already stored, how many of them the page retitles)."""
        ids = {stored_id(self._writer, e.id): e for e in page.entries}
        with self._conn() as c:
            stored = dict(
                c.execute(
                    sa.select(statements.c.id, statements.c.title).where(
                        statements.c.id.in_(list(ids))
                    )
                ).all()
            )
        known = {i: e.title for i, e in ids.items() if i in stored}
        return len(known), sum(1 for i, title in known.items() if stored[i] != title)

    def apply_page(
        self, page: Page, seen_at: dt.datetime, conn: Connection | None = None
    ) -> Changes:
        """Store what the page shows. New ids are inserted once; a changed title or
        lead is recorded as a new version; nothing missing from the page is deleted."""
        source = self._writer
        # The entries as this source stores them (ids marked with a non-primary source).
        page = replace(page, entries=[replace(e, id=stored_id(source, e.id)) for e in page.entries])
        with self._conn(conn) as c:
            first_fill = self.is_empty(c)
            ids = [e.id for e in page.entries]
            existing: dict[str, Any] = {
                row.id: row
                for row in c.execute(sa.select(statements).where(statements.c.id.in_(ids)))
            }
            new_ids, edited_ids = [], []
            # Oldest first, so that seq grows with newness within a page.
            for entry in reversed(page.entries):
                old = existing.get(entry.id)
                if old is None:
                    c.execute(
                        statements.insert().values(
                            id=entry.id,
                            url=entry.url,
                            title=entry.title,
                            summary=entry.summary,
                            content=entry.content,
                            published=entry.published,
                            sort_date=entry.published or london_today(seen_at),
                            featured=entry.featured,
                            first_seen=seen_at,
                            last_seen=seen_at,
                            content_attempts=0,
                            source=source,
                        )
                    )
                    c.execute(
                        statement_versions.insert().values(
                            statement_id=entry.id,
                            seen_at=seen_at,
                            title=entry.title,
                            summary=entry.summary,
                        )
                    )
                    existing[entry.id] = None  # a page listing one id twice inserts it once
                    new_ids.append(entry.id)
                    continue
                values: dict[str, Any] = {"last_seen": seen_at, "featured": entry.featured}
                if entry.published and old.published is None:
                    values.update(published=entry.published, sort_date=entry.published)
                if entry.content and not old.content:
                    values["content"] = entry.content
                # A featured block's summary is made by us from its text; only a
                # change of the page's own title or lead is an edit.
                changed = entry.title != old.title or (
                    entry.summary != old.summary and not entry.featured and not old.featured
                )
                if changed:
                    values.update(title=entry.title, summary=entry.summary, edited_at=seen_at)
                    c.execute(
                        statement_versions.insert().values(
                            statement_id=entry.id,
                            seen_at=seen_at,
                            title=entry.title,
                            summary=entry.summary,
                        )
                    )
                    edited_ids.append(entry.id)
                c.execute(statements.update().where(statements.c.id == entry.id).values(**values))
            anomalies: list[str] = []
            new_counters = self._apply_counters(c, page, seen_at, anomalies)
            return Changes(
                new=self._by_ids(c, list(reversed(new_ids))),
                edited=self._by_ids(c, edited_ids),
                new_counters=new_counters,
                first_fill=first_fill,
                counter_anomalies=anomalies,
            )

    def _by_ids(self, c: Connection, ids: Sequence[str]) -> list[Statement]:
        if not ids:
            return []
        rows = {
            r.id: _statement(r)
            for r in c.execute(sa.select(statements).where(statements.c.id.in_(ids)))
        }
        return [rows[i] for i in ids]

    def statements(self, limit: int | None = None, offset: int = 0) -> list[Statement]:
        """Newest first: published date (else day first seen), then page order."""
        query = (
            sa.select(statements)
            .where(self._mine(statements))
            .order_by(statements.c.sort_date.desc(), statements.c.seq.desc())
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._conn() as c:
            return [_statement(r) for r in c.execute(query)]

    def statements_oldest_first(self, limit: int, offset: int) -> list[Statement]:
        """A stable slice for archive documents."""
        query = (
            sa.select(statements)
            .where(self._mine(statements))
            .order_by(statements.c.sort_date, statements.c.seq)
            .offset(offset)
            .limit(limit)
        )
        with self._conn() as c:
            return [_statement(r) for r in c.execute(query)]

    def statement_versions_oldest_first(self) -> list[tuple[object, ...]]:
        """For every statement, in archive order, the columns whose change alters how
        it renders (the text columns change only together with these)."""
        c_ = statements.c
        query = (
            sa.select(
                c_.seq,
                c_.id,
                c_.url,
                c_.published,
                c_.edited_at,
                c_.content_fetched_at,
                c_.content_attempts,
            )
            .where(self._mine(statements))
            .order_by(c_.sort_date, c_.seq)
        )
        with self._conn() as c:
            return [tuple(r) for r in c.execute(query)]

    def statement_keys_in_store_order(self) -> list[StatementKey]:
        """Every statement in the order feedbot stored it (seq), narrowly: what the
        feed documents need to place each statement and to notice it changed."""
        c_ = statements.c
        query = (
            sa.select(
                c_.seq,
                c_.published,
                c_.id,
                c_.url,
                c_.first_seen,
                c_.edited_at,
                c_.content_fetched_at,
                c_.content_attempts,
                # A featured block fills in content without touching the columns above.
                sa.func.length(c_.content),
            )
            .where(self._mine(statements))
            .order_by(c_.seq)
        )
        with self._conn() as c:
            return [StatementKey(r[0], r[1], tuple(r[2:])) for r in c.execute(query)]

    def statements_in_store_order(self, offset: int, limit: int | None = None) -> list[Statement]:
        """A slice of the statements in the order feedbot stored them (seq): the
        order of the feeds' history, in which a backfill only ever appends."""
        query = (
            sa.select(statements)
            .where(self._mine(statements))
            .order_by(statements.c.seq)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._conn() as c:
            return [_statement(r) for r in c.execute(query)]

    def statement(self, statement_id: str) -> Statement | None:
        with self._conn() as c:
            row = c.execute(sa.select(statements).where(statements.c.id == statement_id)).first()
            return _statement(row) if row else None

    def statement_by_seq(self, seq: int) -> Statement | None:
        with self._conn() as c:
            row = c.execute(sa.select(statements).where(statements.c.seq == seq)).first()
            return _statement(row) if row else None

    def versions(self, statement_id: str) -> list[Version]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(statement_versions)
                .where(statement_versions.c.statement_id == statement_id)
                .order_by(statement_versions.c.seq)
            )
            return [Version(r.seen_at, r.title, r.summary) for r in rows]

    def count_statements(self) -> int:
        with self._conn() as c:
            query = sa.select(sa.func.count()).select_from(statements).where(self._mine(statements))
            return int(c.execute(query).scalar_one())

    def latest_change(self) -> dt.datetime | None:
        """When the stored statements last changed (a new one or an edit)."""
        with self._conn() as c:
            row = c.execute(
                sa.select(
                    sa.func.max(statements.c.first_seen), sa.func.max(statements.c.edited_at)
                ).where(self._mine(statements))
            ).one()
            values = [v for v in row if v is not None]
            return max(values) if values else None

    def _full_text_missing(self) -> Any:
        c_ = statements.c
        return sa.and_(
            self._mine(statements),
            c_.url.is_not(None),
            sa.or_(c_.content_fetched_at.is_(None), c_.published.is_(None)),
        )

    def full_texts_due(self, now: dt.datetime, limit: int, max_attempts: int) -> list[Statement]:
        """Statements whose own page is still to be read and may be tried now, newest first."""
        c_ = statements.c
        query = (
            sa.select(statements)
            .where(
                self._full_text_missing(),
                c_.content_skipped.is_(None),
                c_.content_attempts < max_attempts,
                sa.or_(c_.content_next_at.is_(None), c_.content_next_at <= now),
            )
            .order_by(c_.seq.desc())
            .limit(limit)
        )
        with self._conn() as c:
            return [_statement(r) for r in c.execute(query)]

    def next_full_text_at(self, max_attempts: int) -> dt.datetime | None:
        """When the earliest waiting full text may be tried (None: nothing waits)."""
        c_ = statements.c
        query = sa.select(sa.func.min(c_.content_next_at)).where(
            self._full_text_missing(),
            c_.content_skipped.is_(None),
            c_.content_attempts < max_attempts,
        )
        with self._conn() as c:
            value: dt.datetime | None = c.execute(query).scalar()
            return value

    def full_text_counts(self, max_attempts: int) -> dict[str, int]:
        """Full-text fetching at a glance: ``pending`` (never tried), ``failing``
        (tried, will be tried again), ``skipped`` (a permanent answer, or out of tries)."""
        c_ = statements.c
        skipped = sa.or_(c_.content_skipped.is_not(None), c_.content_attempts >= max_attempts)
        state = sa.case(
            (skipped, "skipped"),
            (c_.content_attempts > 0, "failing"),
            else_="pending",
        )
        query = (
            sa.select(state.label("state"), sa.func.count())
            .where(self._full_text_missing())
            .group_by(state)
        )
        counts = {"pending": 0, "failing": 0, "skipped": 0}
        with self._conn() as c:
            for name, n in c.execute(query):
                counts[name] = n
        return counts

    def save_article(self, statement_id: str, article: Article, at: dt.datetime) -> None:
        """A statement's full text arrived: stored as part of it, never as an edit."""
        with self.begin() as c:
            old = c.execute(sa.select(statements).where(statements.c.id == statement_id)).one()
            values: dict[str, Any] = {
                "content": article.content,
                "content_fetched_at": at,
                "content_error": None,
                "content_next_at": None,
                "content_attempts": old.content_attempts + 1,
            }
            if old.published is None and article.published is not None:
                values.update(published=article.published, sort_date=article.published)
            c.execute(statements.update().where(statements.c.id == statement_id).values(**values))

    def full_text_attempts(self, statement_id: str) -> int:
        with self._conn() as c:
            value = c.execute(
                sa.select(statements.c.content_attempts).where(statements.c.id == statement_id)
            ).scalar()
            return int(value or 0)

    def full_text_failed(self, statement_id: str, error: str, retry_at: dt.datetime | None) -> None:
        """A failed try: again at ``retry_at``, or never (``None``: a permanent answer)."""
        with self.begin() as c:
            c.execute(
                statements.update()
                .where(statements.c.id == statement_id)
                .values(
                    content_error=error[:500],
                    content_attempts=statements.c.content_attempts + 1,
                    content_next_at=retry_at,
                    content_skipped=None if retry_at is not None else error[:500],
                )
            )

    # -- counters ---------------------------------------------------------

    def _apply_counters(
        self, c: Connection, page: Page, seen_at: dt.datetime, anomalies: list[str]
    ) -> list[StoredCounter]:
        if not page.counters:
            return []  # a page without counters says nothing about them
        as_of = page.as_of or london_today(seen_at)
        source = self._writer
        known = {r.key: r for r in c.execute(sa.select(counters).where(self._mine(counters)))}
        on_page = {stored_id(source, counter.key) for counter in page.counters}
        anomalies += [
            f"the counter {row.subject!r} is no longer on the page"
            for key, row in known.items()
            if row.active and key not in on_page
        ]
        new_keys = []
        c.execute(counters.update().where(self._mine(counters)).values(active=False))
        for position, counter in enumerate(page.counters):
            key = stored_id(source, counter.key)
            since = counter.since or (as_of - dt.timedelta(days=counter.days))
            values = {
                "subject": counter.subject,
                "note": counter.note,
                "since": since,
                "page_days": counter.days,
                "page_as_of": as_of,
                "position": position,
                "active": True,
                "last_seen": seen_at,
            }
            old = known.get(key)
            if old is None:
                c.execute(
                    counters.insert().values(key=key, first_seen=seen_at, source=source, **values)
                )
                new_keys.append(key)
                if known:
                    anomalies.append(
                        f"a new counter on the page: {counter.days} days since {counter.subject}"
                    )
                continue
            if old.since != since:
                expected = (as_of - old.since).days
                change = "was reset" if counter.days < expected else "jumped"
                anomalies.append(
                    f"the counter {counter.subject!r} {change}: the page says {counter.days} "
                    f"on {as_of}, one a day since {old.since} makes {expected}"
                )
                log.warning(
                    "counter %r: the page says %d days on %s, %d by the stored start %s; "
                    "taking the page's start date %s",
                    counter.subject,
                    counter.days,
                    as_of,
                    (as_of - old.since).days,
                    old.since,
                    since,
                )
            c.execute(counters.update().where(counters.c.key == key).values(**values))
        rows = c.execute(sa.select(counters).where(counters.c.key.in_(new_keys)))
        return [_counter(r) for r in rows]

    def counters(self, include_inactive: bool = False) -> list[StoredCounter]:
        query = (
            sa.select(counters)
            .where(self._mine(counters))
            .order_by(counters.c.active.desc(), counters.c.position)
        )
        if not include_inactive:
            query = query.where(counters.c.active.is_(True))
        with self._conn() as c:
            return [_counter(r) for r in c.execute(query)]

    # -- polls and source state ------------------------------------------

    def source_state(self, url: str, conn: Connection | None = None) -> SourceState:
        url = without_credentials(url)  # keyed without a fetch password
        with self._conn(conn) as c:
            row = c.execute(_READ_STATE, {"state_url": url}).first()
        if row is None:
            return SourceState(url=url)
        m = row._mapping
        return SourceState(**{k: m[k] for k in SourceState.__dataclass_fields__})

    def save_source_state(self, state: SourceState, conn: Connection | None = None) -> None:
        values = {k: getattr(state, k) for k in SourceState.__dataclass_fields__}
        values["url"] = without_credentials(state.url)
        with self._conn(conn) as c:
            # Prepared statements (values bound at execution): a poll that changed
            # nothing is mostly these writes, and building a statement per call cost
            # more than running it.
            changed = {k: v for k, v in values.items() if k != "url"}
            updated = c.execute(_SAVE_STATE, {**changed, "state_url": values["url"]})
            if updated.rowcount == 0:
                c.execute(source_state.insert(), values)

    def record_success(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        at: dt.datetime,
        conn: Connection | None = None,
    ) -> None:
        """The page was fetched and stored: its validators, and the failure count and
        any Retry-After cleared, in one write (an unchanged poll is mostly this)."""
        url = without_credentials(url)
        values = _success(etag, last_modified, at)
        with self._conn(conn) as c:
            if c.execute(_SAVE_STATE, {**values, "state_url": url}).rowcount == 0:
                c.execute(source_state.insert(), {"url": url, **values})

    def note_unchanged(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        at: dt.datetime,
        record: PollRecord,
    ) -> None:
        """``record_success`` and ``record_poll`` for an unchanged page, written later
        with the others waiting (feeds.pending)."""
        state = _success(etag, last_modified, at)
        self._pending.add(without_credentials(url), state, self._poll_row(record))

    def _write_unchanged(self, c: Connection, states: dict[str, State], polls_: list[Poll]) -> None:
        if not polls_:
            return
        urls = list(states)
        stored = {
            r[0]
            for r in c.execute(sa.select(source_state.c.url).where(source_state.c.url.in_(urls)))
        }
        new = [{"url": url, **states[url]} for url in urls if url not in stored]
        if new:
            c.execute(source_state.insert(), new)
        known = [
            {**states[url], "state_url": url, "success_at": states[url]["last_success_at"]}
            for url in urls
            if url in stored
        ]
        if known:
            c.execute(_SAVE_SUCCESS, known)
        c.execute(polls.insert(), polls_)

    def record_poll(self, record: PollRecord, conn: Connection | None = None) -> None:
        with self._conn(conn) as c:
            c.execute(polls.insert(), self._poll_row(record))

    def _poll_row(self, record: PollRecord) -> Poll:
        values = {k: getattr(record, k) for k in PollRecord.__dataclass_fields__}
        return {"source": self._writer, **values}

    def last_poll(self) -> PollRecord | None:
        polls_ = self.recent_polls(1)
        return polls_[0] if polls_ else None

    def recent_polls(self, limit: int = 20) -> list[PollRecord]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(polls).where(self._mine(polls)).order_by(polls.c.id.desc()).limit(limit)
            )
            return [
                PollRecord(**{k: r._mapping[k] for k in PollRecord.__dataclass_fields__})
                for r in rows
            ]

    def poll_counts(self) -> dict[str, int]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(polls.c.result, sa.func.count())
                .where(self._mine(polls))
                .group_by(polls.c.result)
            )
            return {r[0]: int(r[1]) for r in rows}

    # -- published feed documents ------------------------------------------

    def document_etags(self) -> dict[str, str]:
        with self._conn() as c:
            return {
                r[0]: r[1]
                for r in c.execute(sa.select(feed_documents.c.name, feed_documents.c.etag))
            }

    def document_versions(self) -> dict[str, tuple[str, dt.datetime]]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(feed_documents.c.name, feed_documents.c.etag, feed_documents.c.changed_at)
            )
            return {r[0]: (r[1], r[2]) for r in rows}

    def document(self, name: str) -> tuple[bytes, str, dt.datetime] | None:
        with self._conn() as c:
            row = c.execute(
                sa.select(
                    feed_documents.c.body, feed_documents.c.etag, feed_documents.c.changed_at
                ).where(feed_documents.c.name == name)
            ).first()
            return (bytes(row[0]), row[1], row[2]) if row else None

    def save_documents(self, docs: list[tuple[str, bytes, str]], at: dt.datetime) -> None:
        """Insert or replace (name, body, etag) documents in one transaction."""
        with self.begin() as c:
            # An upsert: two processes publishing the same document at once (a
            # `feedbot poll` beside the service) both succeed; the last one wins.
            upsert = sqlite_insert if c.dialect.name == "sqlite" else postgresql_insert
            for name, body, etag in docs:
                values = {"name": name, "body": body, "etag": etag, "changed_at": at}
                statement = upsert(feed_documents).values(**values)
                c.execute(
                    statement.on_conflict_do_update(
                        index_elements=[feed_documents.c.name],
                        set_={"body": body, "etag": etag, "changed_at": at},
                    )
                )

    def delete_documents(self, names: Sequence[str]) -> None:
        """Forget published documents that are no longer part of the feeds."""
        if names:
            with self.begin() as c:
                c.execute(feed_documents.delete().where(feed_documents.c.name.in_(list(names))))

    # -- archive walking --------------------------------------------------

    def archive_progress(self) -> dict[str, str | None]:
        """Archive pages walked by an unfinished backfill: page URL -> its next page."""
        with self._conn() as c:
            rows = c.execute(sa.select(archive_progress.c.url, archive_progress.c.next_url))
            return {r[0]: r[1] for r in rows}

    def mark_archive_walked(
        self, url: str, next_url: str | None, count: int, at: dt.datetime, conn: Connection
    ) -> None:
        conn.execute(archive_progress.delete().where(archive_progress.c.url == url))
        conn.execute(
            archive_progress.insert().values(
                url=url, next_url=next_url, walked_at=at, statements=count
            )
        )

    def forget_archive_progress(self) -> None:
        with self.begin() as c:
            c.execute(archive_progress.delete())

    def _conn(self, conn: Connection | None = None) -> AbstractContextManager[Connection]:
        if conn is None and self._pending and not self._pending.writing_here():
            self.write_pending()  # what this process wrote is what it reads
        return within(self.engine, conn)
