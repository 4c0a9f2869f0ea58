"""Tables of the source side. Changes go through a new migration in ``migrations/``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:  # noqa: ARG002 - SQLAlchemy's signature
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


metadata = sa.MetaData()

statements = sa.Table(
    "statements",
    metadata,
    # seq orders statements by when they were first stored; archive pages key on it.
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("url", sa.Text),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content", sa.Text),
    sa.Column("published", sa.Date),
    # published date, else the day first seen: the feed's newest-first order
    sa.Column("sort_date", sa.Date, nullable=False),
    sa.Column("featured", sa.Boolean, nullable=False, default=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("edited_at", UTCDateTime),  # last time the title, lead or text changed
    sa.Column("content_fetched_at", UTCDateTime),
    sa.Column("content_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("content_error", sa.Text),
    sa.Column("content_next_at", UTCDateTime),  # no full-text try before this (back-off)
    sa.Column("content_skipped", sa.Text),  # a permanent answer: never tried again
    # which source it came from: "" for the primary ([source]), else the source's id
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_statements_order", "sort_date", "seq"),
    sa.Index("ix_statements_source_order", "source", "sort_date", "seq"),
)

statement_versions = sa.Table(
    "statement_versions",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("statement_id", sa.Text, sa.ForeignKey("statements.id"), nullable=False, index=True),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("page_days", sa.Integer, nullable=False),
    sa.Column("page_as_of", sa.Date, nullable=False),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
)

polls = sa.Table(
    "polls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=False),
    sa.Column("result", sa.String(20), nullable=False),  # ok | not_modified | failed
    sa.Column("error_kind", sa.String(40)),
    sa.Column("error", sa.Text),
    sa.Column("entries_on_page", sa.Integer, nullable=False, default=0),
    sa.Column("new_statements", sa.Integer, nullable=False, default=0),
    sa.Column("edited_statements", sa.Integer, nullable=False, default=0),
    sa.Column("articles_fetched", sa.Integer, nullable=False, default=0),
    sa.Column("duration_ms", sa.Integer, nullable=False, default=0),
    # selectors | text-layout | plain-text: text-layout means the profile no longer fits
    sa.Column("reader", sa.String(20)),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_polls_source", "source", "id"),
)

source_state = sa.Table(
    "source_state",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_failure_at", UTCDateTime),
    sa.Column("retry_after_until", UTCDateTime),
)

archive_progress = sa.Table(
    "archive_progress",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),  # an archive page already walked
    sa.Column("walked_at", UTCDateTime, nullable=False),
    sa.Column("statements", sa.Integer, nullable=False),
    sa.Column("next_url", sa.Text),  # its next page (None: the last page)
)

feed_documents = sa.Table(
    "feed_documents",
    metadata,
    # The published feeds, for web instances that do not share the feeds folder.
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)
