"""Where a new statement turns into messages: the store's changes become outbox rows.

Called by the poller inside the transaction that stores the page, so a statement
and its deliveries commit (or roll back) together: none is lost, none queued twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from bot.messages import BUNDLE_LISTED
from bot.sources import BotSources
from bot.store import BotStore
from feeds.config import SourceSettings
from feeds.model import Changes
from feeds.store import Store

# More new statements than this in one poll (a backlog published at once, a first poll
# after a long outage) reach each chat as one summary, not as one message each.
FLOOD_STATEMENTS = 20
FLOOD = "flood"


def flood_ref(count: int, newest: Sequence[str]) -> str:
    """The outbox ref of a flood summary: how many, and the ids of the newest shown."""
    return json.dumps({"count": count, "ids": list(newest)}, separators=(",", ":"))


def read_flood_ref(ref: str) -> tuple[int, list[str]]:
    doc = json.loads(ref)
    return int(doc["count"]), [str(i) for i in doc["ids"]]


def queue_changes(
    bot_store: BotStore,
    changes: Changes,
    now: dt.datetime,
    conn: Connection,
    follow_edits: bool,
) -> None:
    """Queue each new statement for every subscribed chat that follows its source, and
    each edit for the chats that received the statement. The first fill of an empty
    store (of one source) is a record of the past: nobody is notified."""
    if changes.first_fill:
        return
    if len(changes.new) > FLOOD_STATEMENTS:
        # Queued as one row per chat, before anything is queued per statement. One
        # poll reads one source; the summary goes to that source's followers.
        newest = [s.id for s in changes.new[:BUNDLE_LISTED]]
        sources = sorted({s.source for s in changes.new})
        ref = flood_ref(len(changes.new), newest)
        bot_store.enqueue(FLOOD, [ref], now, conn, sources=sources)
    elif changes.new:
        # Oldest first, so each chat receives them in publication order.
        bot_store.enqueue_statements(list(reversed(changes.new)), now, conn)
    if changes.edited and follow_edits:
        bot_store.enqueue_edits(changes.edited, now, conn)


def enqueue_daily_counters(
    store: Store,
    bot_store: BotStore,
    now: dt.datetime,
    sources: Sequence[SourceSettings] | BotSources = (),
) -> int:
    """Today's counters (London date of ``now``) for every chat whose time has passed
    and that follows a source with counters (``sources``: the deployment's; none
    given, the primary's alone).

    The outbox's unique (kind, date, chat) makes this idempotent: run it every
    half minute, after a restart or twice in a DST hour, each chat still gets
    one message per calendar day; a time missed while down is sent late, once.
    """
    keys = [k for k in BotSources.of(sources).with_counters() if store.view(k).counters()]
    if not keys:
        return 0
    return bot_store.enqueue_daily_counters(now, keys)
