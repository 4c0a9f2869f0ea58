"""Where a new statement turns into messages: the store's changes become outbox rows.

Called by the poller inside the transaction that stores the page, so a statement
and its deliveries commit (or roll back) together: none is lost, none queued twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from bot.store import BotStore
from feeds.model import Changes
from feeds.store import Store


def queue_changes(
    bot_store: BotStore,
    changes: Changes,
    now: dt.datetime,
    conn: Connection,
    follow_edits: bool,
) -> None:
    """Queue each new statement for every subscribed chat, and each edit for the chats
    that received the statement. The first fill of an empty store is a record of the
    past: nobody is notified."""
    if changes.first_fill:
        return
    if changes.new:
        # Oldest first, so each chat receives them in publication order.
        bot_store.enqueue_statements(list(reversed(changes.new)), now, conn)
    if changes.edited and follow_edits:
        bot_store.enqueue_edits(changes.edited, now, conn)


def enqueue_daily_counters(store: Store, bot_store: BotStore, now: dt.datetime) -> int:
    """Today's counters (London date of ``now``) for every chat whose time has passed.

    The outbox's unique (kind, date, chat) makes this idempotent: run it every
    half minute, after a restart or twice in a DST hour, each chat still gets
    one message per calendar day; a time missed while down is sent late, once.
    """
    if not store.counters():
        return 0
    return bot_store.enqueue_daily_counters(now)
