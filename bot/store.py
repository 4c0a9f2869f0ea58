"""The Telegram side's store: subscribers and the sources they follow, the outbox,
the worker lease.

The only module of ``bot`` that speaks SQL. It shares the engine (and so the
database) with ``feeds.store.Store``; enqueueing happens inside the poll's own
transaction, so a statement and its deliveries commit together.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot import filters
from bot.delivery_times import deliver_at
from bot.filters import Term
from bot.schema import alert_state, alerts, follows, leases, outbox, subscribers
from feeds.clock import LONDON
from feeds.model import Statement
from feeds.store import upgrade_schema, within

log = logging.getLogger(__name__)
DEFAULT_COUNTERS_TIME = "09:00"
PRIMARY = ("",)  # the primary source's key: what a chat follows unless told otherwise


@dataclass(frozen=True)
class Subscriber:
    chat_id: int
    chat_type: str
    title: str | None
    language: str | None
    active: bool
    subscribed_at: dt.datetime
    counters_enabled: bool
    counters_time: str
    origin: str
    unsubscribe_reason: str | None = None
    filters: tuple[Term, ...] = ()
    delivery_mode: str = "instant"  # instant | digest
    quiet_start: str | None = None
    quiet_end: str | None = None
    language_chosen: bool = False  # set with /language (else as Telegram said at /start)

    @property
    def is_private(self) -> bool:
        return self.chat_type == "private"

    @property
    def plain(self) -> bool:
        """Gets every statement at once: no filters, no digest, no quiet hours."""
        return not self.filters and self.delivery_mode == "instant" and not self.quiet_start


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    ref: str
    chat_id: int
    status: str
    attempts: int
    unknown_outcomes: int
    parts_sent: int
    message_ids: list[int]


def _subscriber(row: sa.Row[Any]) -> Subscriber:
    m = row._mapping
    return Subscriber(
        chat_id=m["chat_id"],
        chat_type=m["chat_type"],
        title=m["title"],
        language=m["language"],
        language_chosen=bool(m["language_chosen"]),
        active=bool(m["active"]),
        subscribed_at=m["subscribed_at"],
        counters_enabled=bool(m["counters_enabled"]),
        counters_time=m["counters_time"],
        origin=m["origin"],
        unsubscribe_reason=m["unsubscribe_reason"],
        filters=tuple(filters.load(json.loads(m["filters"]))) if m["filters"] else (),
        delivery_mode=m["delivery_mode"],
        quiet_start=m["quiet_start"],
        quiet_end=m["quiet_end"],
    )


def _item(row: sa.Row[Any]) -> OutboxItem:
    m = row._mapping
    return OutboxItem(
        id=m["id"],
        kind=m["kind"],
        ref=m["ref"],
        chat_id=m["chat_id"],
        status=m["status"],
        attempts=m["attempts"],
        unknown_outcomes=m["unknown_outcomes"],
        parts_sent=m["parts_sent"],
        message_ids=json.loads(m["message_ids"]) if m["message_ids"] else [],
    )


class BotStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def migrate(self) -> None:
        upgrade_schema(self.engine, "bot:migrations")

    def _conn(self, conn: Connection | None = None) -> AbstractContextManager[Connection]:
        return within(self.engine, conn)

    # -- subscribers --------------------------------------------------------

    def subscribe(
        self,
        chat_id: int,
        chat_type: str,
        now: dt.datetime,
        title: str | None = None,
        language: str | None = None,
        origin: str = "command",
        follow: Sequence[str] = PRIMARY,
    ) -> bool:
        """Subscribe a chat (again); returns False if it already was subscribed. A chat
        that follows no source then follows ``follow`` (the default sources); one that
        comes back keeps the sources it chose before."""
        language = language[:10] if language else None  # the column's width
        with self._conn() as c:
            if not self.following(chat_id, c):
                self._follow(c, chat_id, follow)
            row = c.execute(sa.select(subscribers).where(subscribers.c.chat_id == chat_id)).first()
            if row is None:
                c.execute(
                    subscribers.insert().values(
                        chat_id=chat_id,
                        chat_type=chat_type,
                        title=title,
                        language=language,
                        active=True,
                        subscribed_at=now,
                        counters_enabled=True,
                        counters_time=DEFAULT_COUNTERS_TIME,
                        origin=origin,
                    )
                )
                return True
            values: dict[str, Any] = {"chat_type": chat_type}
            if title:
                values["title"] = title
            if language and not row.language:
                values["language"] = language
            if not row.active:
                # Statements from before the new subscription are not owed.
                values.update(
                    active=True, subscribed_at=now, unsubscribed_at=None, unsubscribe_reason=None
                )
            c.execute(subscribers.update().where(subscribers.c.chat_id == chat_id).values(**values))
            return not row.active

    def unsubscribe(self, chat_id: int, reason: str, now: dt.datetime) -> bool:
        """Deactivate a chat and drop what it was still owed; False if it was not subscribed."""
        with self._conn() as c:
            done = c.execute(
                subscribers.update()
                .where(subscribers.c.chat_id == chat_id, subscribers.c.active.is_(True))
                .values(active=False, unsubscribed_at=now, unsubscribe_reason=reason)
            ).rowcount
            c.execute(
                outbox.update()
                .where(outbox.c.chat_id == chat_id, outbox.c.status.in_(("pending", "sending")))
                .values(status="dropped", last_error=f"unsubscribed: {reason}")
            )
            return bool(done)

    def subscriber(self, chat_id: int) -> Subscriber | None:
        with self._conn() as c:
            row = c.execute(sa.select(subscribers).where(subscribers.c.chat_id == chat_id)).first()
            return _subscriber(row) if row else None

    def subscribers(self, active_only: bool = True) -> list[Subscriber]:
        query = sa.select(subscribers).order_by(subscribers.c.subscribed_at, subscribers.c.chat_id)
        if active_only:
            query = query.where(subscribers.c.active.is_(True))
        with self._conn() as c:
            return [_subscriber(r) for r in c.execute(query)]

    def subscriber_counts(self) -> dict[str, int]:
        """Active subscribers by chat type, and their total under ``"total"``."""
        with self._conn() as c:
            rows = c.execute(
                sa.select(subscribers.c.chat_type, sa.func.count())
                .where(subscribers.c.active.is_(True))
                .group_by(subscribers.c.chat_type)
            )
            counts = {r[0]: int(r[1]) for r in rows}
        counts["total"] = sum(counts.values())
        return counts

    def set_counters(
        self, chat_id: int, enabled: bool | None = None, at: str | None = None
    ) -> Subscriber | None:
        values: dict[str, Any] = {}
        if enabled is not None:
            values["counters_enabled"] = enabled
        if at is not None:
            values["counters_time"] = at
        with self._conn() as c:
            if values:
                c.execute(
                    subscribers.update().where(subscribers.c.chat_id == chat_id).values(**values)
                )
        return self.subscriber(chat_id)

    def set_language(
        self,
        chat_id: int,
        language: str,
        chat_type: str = "private",
        now: dt.datetime | None = None,
    ) -> None:
        """The language a chat chose with /language. It outlasts /stop and /start (which
        keeps a language already known), and a chat that is not subscribed gets an
        inactive row to keep it until it subscribes."""
        update = (
            subscribers.update()
            .where(subscribers.c.chat_id == chat_id)
            .values(language=language, language_chosen=True)
        )
        with self._conn() as c:
            if c.execute(update).rowcount:
                return
            try:
                with c.begin_nested():
                    c.execute(
                        subscribers.insert().values(
                            chat_id=chat_id,
                            chat_type=chat_type,
                            language=language,
                            language_chosen=True,
                            active=False,
                            subscribed_at=now or dt.datetime.now(dt.UTC),
                            counters_enabled=True,
                            counters_time=DEFAULT_COUNTERS_TIME,
                            origin="command",
                        )
                    )
            except sa.exc.IntegrityError:
                c.execute(update)  # a /start (or another /language) came first

    def set_filters(self, chat_id: int, terms: Sequence[Term]) -> None:
        value = json.dumps(filters.dump(terms), ensure_ascii=False) if terms else None
        with self._conn() as c:
            c.execute(
                subscribers.update().where(subscribers.c.chat_id == chat_id).values(filters=value)
            )

    def set_delivery(
        self,
        chat_id: int,
        mode: str | None = None,
        quiet: tuple[str, str] | None = None,
        quiet_off: bool = False,
    ) -> Subscriber | None:
        values: dict[str, Any] = {}
        if mode is not None:
            values["delivery_mode"] = mode
        if quiet is not None:
            values.update(quiet_start=quiet[0], quiet_end=quiet[1])
        if quiet_off:
            values.update(quiet_start=None, quiet_end=None)
        with self._conn() as c:
            if values:
                c.execute(
                    subscribers.update().where(subscribers.c.chat_id == chat_id).values(**values)
                )
        return self.subscriber(chat_id)

    def following(self, chat_id: int, conn: Connection | None = None) -> set[str]:
        """The keys of the sources this chat follows."""
        with self._conn(conn) as c:
            rows = c.execute(sa.select(follows.c.source).where(follows.c.chat_id == chat_id))
            return {r[0] for r in rows}

    def all_follows(self) -> dict[int, set[str]]:
        """Every chat's followed source keys, in one query (for listings)."""
        found: dict[int, set[str]] = {}
        with self._conn() as c:
            for chat_id, source in c.execute(sa.select(follows.c.chat_id, follows.c.source)):
                found.setdefault(chat_id, set()).add(source)
        return found

    def set_following(self, chat_id: int, source: str, on: bool) -> bool:
        """Follow (or leave) one source; False if the chat already did (or did not)."""
        with self._conn() as c:
            if not on:
                gone = c.execute(
                    follows.delete().where(follows.c.chat_id == chat_id, follows.c.source == source)
                ).rowcount
                return bool(gone)
            return bool(self._follow(c, chat_id, [source]))

    @staticmethod
    def _follow(c: Connection, chat_id: int, sources: Sequence[str]) -> int:
        """Follow these sources (those not followed yet); how many were added."""
        added = 0
        for source in sources:
            try:
                with c.begin_nested():
                    c.execute(follows.insert().values(chat_id=chat_id, source=source))
                added += 1
            except sa.exc.IntegrityError:
                pass  # already followed (or a concurrent press came first)
        return added

    def move_chat(self, old: int, new: int, now: dt.datetime) -> None:
        """A group became a supergroup: the subscription, the sources it follows and
        what it is owed follow."""
        with self._conn() as c:
            self._follow(c, new, sorted(self.following(old, c)))
            c.execute(follows.delete().where(follows.c.chat_id == old))
            taken = c.execute(
                sa.select(subscribers.c.chat_id).where(subscribers.c.chat_id == new)
            ).first()
            if taken is None:
                c.execute(
                    subscribers.update()
                    .where(subscribers.c.chat_id == old)
                    .values(chat_id=new, chat_type="supergroup")
                )
            else:
                c.execute(
                    subscribers.update()
                    .where(subscribers.c.chat_id == old)
                    .values(active=False, unsubscribed_at=now, unsubscribe_reason="migrated")
                )
                c.execute(
                    subscribers.update().where(subscribers.c.chat_id == new).values(active=True)
                )
            pending = c.execute(
                sa.select(outbox.c.id, outbox.c.kind, outbox.c.ref).where(
                    outbox.c.chat_id == old, outbox.c.status.in_(("pending", "sending"))
                )
            ).all()
            for row in pending:
                duplicate = c.execute(
                    sa.select(outbox.c.id).where(
                        outbox.c.kind == row.kind, outbox.c.ref == row.ref, outbox.c.chat_id == new
                    )
                ).first()
                if duplicate is None:
                    c.execute(
                        outbox.update()
                        .where(outbox.c.id == row.id)
                        .values(chat_id=new, status="pending", next_attempt_at=now)
                    )
                else:
                    c.execute(
                        outbox.update()
                        .where(outbox.c.id == row.id)
                        .values(status="dropped", last_error=f"chat migrated to {new}")
                    )

    # -- outbox -------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        refs: Sequence[str],
        now: dt.datetime,
        conn: Connection | None = None,
        counters_due_by: str | None = None,
        plain_only: bool = False,
        sources: Sequence[str] | None = None,
    ) -> int:
        """One delivery of each ref to every active subscriber that does not have it yet
        (with ``counters_due_by``: only chats with counters on, due at or before HH:MM;
        with ``sources``: only chats that follow at least one of these sources)."""
        total = 0
        with self._conn(conn) as c:
            for ref in refs:
                chats = sa.select(
                    sa.literal(kind),
                    sa.literal(ref),
                    subscribers.c.chat_id,
                    sa.literal(now, UTC_TYPE),
                    sa.literal("pending"),
                    sa.literal(0),
                    sa.literal(0),
                    sa.literal(now, UTC_TYPE),
                    sa.literal(0),
                ).where(
                    subscribers.c.active.is_(True),
                    ~sa.exists().where(
                        outbox.c.kind == kind,
                        outbox.c.ref == ref,
                        outbox.c.chat_id == subscribers.c.chat_id,
                    ),
                )
                if plain_only:
                    chats = chats.where(
                        subscribers.c.filters.is_(None),
                        subscribers.c.delivery_mode == "instant",
                        subscribers.c.quiet_start.is_(None),
                    )
                if sources is not None:
                    chats = chats.where(_follows_any(sources))
                if counters_due_by is not None:
                    chats = chats.where(
                        subscribers.c.counters_enabled.is_(True),
                        subscribers.c.counters_time <= counters_due_by,
                    )
                # RETURNING counts reliably on every driver (rowcount does not).
                inserted = c.execute(
                    outbox.insert()
                    .from_select(
                        [
                            "kind",
                            "ref",
                            "chat_id",
                            "created_at",
                            "status",
                            "attempts",
                            "unknown_outcomes",
                            "next_attempt_at",
                            "parts_sent",
                        ],
                        chats,
                    )
                    .returning(outbox.c.id)
                ).all()
                total += len(inserted)
        return total

    def enqueue_statements(
        self, statements: Sequence[Statement], now: dt.datetime, conn: Connection | None = None
    ) -> int:
        """Queue new statements (oldest first) for every chat that follows their source
        and wants them, when it wants them: plain chats in one INSERT … SELECT per
        source, the others one by one (their filters, digest time and quiet hours decide)."""
        sources = list(dict.fromkeys(s.source for s in statements))
        with self._conn(conn) as c:
            total = 0
            for source in sources:
                refs = [s.id for s in statements if s.source == source]
                total += self.enqueue("statement", refs, now, c, plain_only=True, sources=[source])
            particular_chats = (
                subscribers.c.active.is_(True),
                sa.or_(
                    subscribers.c.filters.is_not(None),
                    subscribers.c.delivery_mode != "instant",
                    subscribers.c.quiet_start.is_not(None),
                ),
            )
            particular = c.execute(
                sa.select(subscribers).where(*particular_chats, _follows_any(sources))
            ).all()
            followed: dict[int, set[str]] = {}
            for chat_id, source in c.execute(
                sa.select(follows.c.chat_id, follows.c.source)
                .join(subscribers, subscribers.c.chat_id == follows.c.chat_id)
                .where(follows.c.source.in_(sources), *particular_chats)
            ):
                followed.setdefault(chat_id, set()).add(source)
            rows = []
            for sub in map(_subscriber, particular):
                when = deliver_at(
                    now, sub.delivery_mode, sub.counters_time, sub.quiet_start, sub.quiet_end
                )
                theirs = followed.get(sub.chat_id, set())
                for statement in statements:
                    if statement.source in theirs and filters.matches(
                        sub.filters, statement.title, statement.summary
                    ):
                        rows.append(self._row("statement", statement.id, sub.chat_id, now, when))
            if rows:
                c.execute(outbox.insert(), rows)
        return total + len(rows)

    def enqueue_edits(
        self, statements: Sequence[Statement], now: dt.datetime, conn: Connection | None = None
    ) -> int:
        """Queue an edit of every message already sent for these statements."""
        rows = []
        with self._conn(conn) as c:
            for statement in statements:
                stamp = statement.edited_at.isoformat() if statement.edited_at else now.isoformat()
                sent = c.execute(
                    sa.select(outbox.c.chat_id, outbox.c.message_ids).where(
                        outbox.c.kind == "statement",
                        outbox.c.ref == statement.id,
                        outbox.c.status == "sent",
                    )
                ).all()
                rows += [
                    self._row("edit", f"{statement.id}#{stamp}", chat, now, now)
                    for chat, ids in sent
                    if ids and json.loads(ids)
                ]
            if rows:
                c.execute(outbox.insert(), rows)
        return len(rows)

    @staticmethod
    def _row(
        kind: str, ref: str, chat_id: int, now: dt.datetime, due: dt.datetime
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "ref": ref,
            "chat_id": chat_id,
            "created_at": now,
            "status": "pending",
            "attempts": 0,
            "unknown_outcomes": 0,
            "next_attempt_at": due,
            "parts_sent": 0,
        }

    def delivery(self, kind: str, ref: str, chat_id: int) -> OutboxItem | None:
        with self._conn() as c:
            row = c.execute(
                sa.select(outbox).where(
                    outbox.c.kind == kind, outbox.c.ref == ref, outbox.c.chat_id == chat_id
                )
            ).first()
            return _item(row) if row else None

    def due_for_chat(
        self, chat_id: int, kind: str, now: dt.datetime, limit: int = 500
    ) -> list[OutboxItem]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(outbox)
                .where(
                    outbox.c.chat_id == chat_id,
                    outbox.c.kind == kind,
                    outbox.c.status == "pending",
                    outbox.c.next_attempt_at <= now,
                )
                .order_by(outbox.c.id)
                .limit(limit)
            )
            return [_item(r) for r in rows]

    # -- operator alerts ------------------------------------------------------

    def add_alert(self, kind: str, text: str, chat_ids: Sequence[int], now: dt.datetime) -> int:
        """Record an alert and queue it for the operators' chats (subscribed or not)."""
        with self._conn() as c:
            alert_id = c.execute(
                alerts.insert().values(created_at=now, kind=kind, text=text).returning(alerts.c.id)
            ).scalar_one()
            if chat_ids:
                c.execute(
                    outbox.insert(),
                    [self._row("alert", str(alert_id), chat, now, now) for chat in chat_ids],
                )
            return int(alert_id)

    def alert_text(self, alert_id: int) -> str | None:
        with self._conn() as c:
            return c.execute(
                sa.select(alerts.c.text).where(alerts.c.id == alert_id)
            ).scalar_one_or_none()

    def recent_alerts(self, limit: int = 10) -> list[tuple[dt.datetime, str, str]]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(alerts.c.created_at, alerts.c.kind, alerts.c.text)
                .order_by(alerts.c.id.desc())
                .limit(limit)
            )
            return [(r[0], r[1], r[2]) for r in rows]

    def active_alert_states(self) -> set[str]:
        with self._conn() as c:
            rows = c.execute(sa.select(alert_state.c.name).where(alert_state.c.active))
            return {r[0] for r in rows}

    def set_alert_active(self, name: str, active: bool, now: dt.datetime) -> None:
        with self._conn() as c:
            c.execute(alert_state.delete().where(alert_state.c.name == name))
            c.execute(alert_state.insert().values(name=name, active=active, since=now))

    def enqueue_daily_counters(self, now: dt.datetime, sources: Sequence[str] = PRIMARY) -> int:
        """Queue today's counters (London) for chats with counters on whose time has come
        and that follow at least one of ``sources`` (the sources that have counters)."""
        local = now.astimezone(LONDON)
        return self.enqueue(
            "counters",
            [local.date().isoformat()],
            now,
            counters_due_by=local.strftime("%H:%M"),
            sources=sources,
        )

    def next_due(
        self, now: dt.datetime, limit: int, skip_chats: Sequence[int] = ()
    ) -> list[OutboxItem]:
        query = (
            sa.select(outbox)
            .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if skip_chats:
            query = query.where(outbox.c.chat_id.not_in(list(skip_chats)))
        with self._conn() as c:
            return [_item(r) for r in c.execute(query)]

    def next_attempt_at(self) -> dt.datetime | None:
        with self._conn() as c:
            return c.execute(
                sa.select(sa.func.min(outbox.c.next_attempt_at)).where(outbox.c.status == "pending")
            ).scalar_one_or_none()

    def claim(self, item_id: int) -> OutboxItem | None:
        """Mark one item in flight (committed before the request leaves)."""
        with self._conn() as c:
            done = c.execute(
                outbox.update()
                .where(outbox.c.id == item_id, outbox.c.status == "pending")
                .values(status="sending", attempts=outbox.c.attempts + 1)
            ).rowcount
            if not done:
                return None
            return _item(c.execute(sa.select(outbox).where(outbox.c.id == item_id)).one())

    def part_sent(self, item: OutboxItem, message_id: int, now: dt.datetime, last: bool) -> None:
        with self._conn() as c:
            row = c.execute(
                sa.select(outbox.c.message_ids, outbox.c.parts_sent).where(outbox.c.id == item.id)
            ).one()
            ids = json.loads(row.message_ids) if row.message_ids else []
            ids.append(message_id)
            values: dict[str, Any] = {
                "parts_sent": row.parts_sent + 1,
                "message_ids": json.dumps(ids),
                "unknown_outcomes": 0,
            }
            if last:
                values.update(status="sent", sent_at=now, last_error=None)
            c.execute(outbox.update().where(outbox.c.id == item.id).values(**values))

    def bundle_sent(self, item_ids: Sequence[int], now: dt.datetime) -> None:
        """Statements delivered together in one message; no message id is kept per
        item (a later edit of one statement does not rewrite the bundle)."""
        with self._conn() as c:
            c.execute(
                outbox.update()
                .where(outbox.c.id.in_(list(item_ids)))
                .values(
                    status="sent",
                    sent_at=now,
                    last_error=None,
                    message_ids="[]",
                    unknown_outcomes=0,
                )
            )

    def retry_later(self, item_id: int, error: str, at: dt.datetime, unknown: bool = False) -> None:
        with self._conn() as c:
            values: dict[str, Any] = {
                "status": "pending",
                "next_attempt_at": at,
                "last_error": error[:500],
            }
            if unknown:
                values["unknown_outcomes"] = outbox.c.unknown_outcomes + 1
            c.execute(outbox.update().where(outbox.c.id == item_id).values(**values))

    def finish(self, item_id: int, status: str, error: str) -> None:
        """End an item without delivery: ``failed`` (kept for the operator) or ``dropped``."""
        with self._conn() as c:
            c.execute(
                outbox.update()
                .where(outbox.c.id == item_id)
                .values(status=status, last_error=error[:500])
            )

    def recover_in_flight(self, now: dt.datetime) -> int:
        """After a crash: items left "sending" may or may not have arrived. Each is
        retried once; one whose outcome was already unknown once is not sent again."""
        with self._conn() as c:
            c.execute(
                outbox.update()
                .where(outbox.c.status == "sending", outbox.c.unknown_outcomes >= 1)
                .values(status="failed", last_error="outcome unknown twice; not sent again")
            )
            return int(
                c.execute(
                    outbox.update()
                    .where(outbox.c.status == "sending")
                    .values(
                        status="pending",
                        next_attempt_at=now,
                        unknown_outcomes=outbox.c.unknown_outcomes + 1,
                        last_error="in flight when the process stopped",
                    )
                ).rowcount
            )

    def outbox_counts(self) -> dict[str, int]:
        with self._conn() as c:
            rows = c.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))
            return {r[0]: int(r[1]) for r in rows}

    def failures(self, limit: int = 10) -> list[tuple[int, str, str, str | None]]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(outbox.c.chat_id, outbox.c.kind, outbox.c.ref, outbox.c.last_error)
                .where(outbox.c.status == "failed")
                .order_by(outbox.c.id.desc())
                .limit(limit)
            )
            return [(r[0], r[1], r[2], r[3]) for r in rows]

    def deliveries(self, kind: str, ref: str) -> list[OutboxItem]:
        with self._conn() as c:
            rows = c.execute(
                sa.select(outbox)
                .where(outbox.c.kind == kind, outbox.c.ref == ref)
                .order_by(outbox.c.id)
            )
            return [_item(r) for r in rows]

    # -- lease: one active worker per database --------------------------------

    def take_lease(
        self, name: str, holder: str, now: dt.datetime, ttl: float, steal_from: Sequence[str] = ()
    ) -> bool:
        """Take or renew ``name`` for ``holder``; free when expired (or held by a dead
        process listed in ``steal_from``)."""
        expires = now + dt.timedelta(seconds=ttl)
        with self._conn() as c:
            done = c.execute(
                leases.update()
                .where(
                    leases.c.name == name,
                    sa.or_(
                        leases.c.holder == holder,
                        leases.c.expires_at < now,
                        leases.c.holder.in_(list(steal_from)),
                    ),
                )
                .values(holder=holder, expires_at=expires)
            ).rowcount
            if done:
                return True
            if c.execute(sa.select(leases.c.name).where(leases.c.name == name)).first():
                return False
            try:
                with c.begin_nested():
                    c.execute(leases.insert().values(name=name, holder=holder, expires_at=expires))
            except sa.exc.IntegrityError:
                return False
            return True

    def lease_holder(self, name: str) -> tuple[str, dt.datetime] | None:
        with self._conn() as c:
            row = c.execute(
                sa.select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)
            ).first()
            return (row[0], row[1]) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        with self._conn() as c:
            c.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))


UTC_TYPE = outbox.c.created_at.type


def _follows_any(sources: Sequence[str]) -> Any:
    """The subscriber follows at least one of these sources."""
    return sa.exists().where(
        follows.c.chat_id == subscribers.c.chat_id, follows.c.source.in_(list(sources))
    )
