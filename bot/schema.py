"""Tables of the Telegram side: subscribers, the delivery outbox, the worker lease.

They live in the same database as the statements, with their own migration
history (``bot/migrations``, version table ``bot_schema_version``).
"""

from __future__ import annotations

import sqlalchemy as sa

from feeds.schema import UTCDateTime

metadata = sa.MetaData()

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("chat_type", sa.String(20), nullable=False),  # private | group | supergroup | channel
    sa.Column("title", sa.Text),  # group or channel title, or the user's name
    sa.Column("language", sa.String(10)),  # Telegram's language_code, or the chosen one
    sa.Column("language_chosen", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("subscribed_at", UTCDateTime, nullable=False),
    sa.Column("unsubscribed_at", UTCDateTime),
    sa.Column("unsubscribe_reason", sa.String(40)),  # stop | blocked | gone | migrated
    sa.Column("counters_enabled", sa.Boolean, nullable=False),
    sa.Column("counters_time", sa.String(5), nullable=False),  # HH:MM, Europe/London
    sa.Column("origin", sa.String(20), nullable=False),  # command | config
    sa.Column("filters", sa.Text),  # JSON list of filter terms; NULL: everything
    sa.Column("delivery_mode", sa.String(10), nullable=False, server_default="instant"),
    sa.Column("quiet_start", sa.String(5)),  # HH:MM London, or NULL
    sa.Column("quiet_end", sa.String(5)),
    sa.Index("ix_subscribers_active", "active"),
)

follows = sa.Table(
    "follows",
    metadata,
    # Which sources a chat follows, by the source's key ("" for the primary [source],
    # else its id: see feeds.config.SourceSettings.key). Kept across /stop and /start.
    sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Index("ix_follows_source", "source", "chat_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),  # statement | counters
    sa.Column("ref", sa.Text, nullable=False),  # statement id, or the counters' date
    sa.Column("chat_id", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # pending -> sending -> sent | failed | dropped; "sending" survives a crash and
    # means "outcome unknown": retried once, never more.
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("unknown_outcomes", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("parts_sent", sa.Integer, nullable=False),
    sa.Column("message_ids", sa.Text),  # JSON list, for later edits
    sa.Column("sent_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    # Exactly one delivery per (thing, chat), whatever happens.
    sa.UniqueConstraint("kind", "ref", "chat_id", name="uq_outbox_delivery"),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    # Messages to the operators (admin chats), delivered through the outbox.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

alert_state = sa.Table(
    "alert_state",
    metadata,
    # Which alert conditions are on now: one message when they start, one when they end.
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
)
