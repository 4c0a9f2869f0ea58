"""Statements, their versions, counters, polls, source state, archive progress.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from feeds.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "statements",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("url", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("content", sa.Text),
        sa.Column("published", sa.Date),
        sa.Column("sort_date", sa.Date, nullable=False),
        sa.Column("featured", sa.Boolean, nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("edited_at", UTCDateTime),
        sa.Column("content_fetched_at", UTCDateTime),
        sa.Column("content_attempts", sa.Integer, nullable=False),
        sa.Column("content_error", sa.Text),
    )
    op.create_index("ix_statements_order", "statements", ["sort_date", "seq"])
    op.create_table(
        "statement_versions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("statement_id", sa.Text, sa.ForeignKey("statements.id"), nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_index("ix_statement_versions_statement_id", "statement_versions", ["statement_id"])
    op.create_table(
        "counters",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("since", sa.Date, nullable=False),
        sa.Column("page_days", sa.Integer, nullable=False),
        sa.Column("page_as_of", sa.Date, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
    )
    op.create_table(
        "polls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("error_kind", sa.String(40)),
        sa.Column("error", sa.Text),
        sa.Column("entries_on_page", sa.Integer, nullable=False),
        sa.Column("new_statements", sa.Integer, nullable=False),
        sa.Column("edited_statements", sa.Integer, nullable=False),
        sa.Column("articles_fetched", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_table(
        "source_state",
        sa.Column("url", sa.Text, primary_key=True),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("last_success_at", UTCDateTime),
        sa.Column("last_failure_at", UTCDateTime),
        sa.Column("retry_after_until", UTCDateTime),
    )
    op.create_table(
        "archive_progress",
        sa.Column("url", sa.Text, primary_key=True),
        sa.Column("walked_at", UTCDateTime, nullable=False),
        sa.Column("statements", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "archive_progress",
        "source_state",
        "polls",
        "counters",
        "statement_versions",
        "statements",
    ):
        op.drop_table(table)
