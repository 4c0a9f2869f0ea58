"""Subscribers, outbox, leases.

Revision ID: bot0001
"""

import sqlalchemy as sa
from alembic import op

from feeds.schema import UTCDateTime

revision = "bot0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("chat_type", sa.String(20), nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("language", sa.String(10)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("subscribed_at", UTCDateTime, nullable=False),
        sa.Column("unsubscribed_at", UTCDateTime),
        sa.Column("unsubscribe_reason", sa.String(40)),
        sa.Column("counters_enabled", sa.Boolean, nullable=False),
        sa.Column("counters_time", sa.String(5), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
    )
    op.create_index("ix_subscribers_active", "subscribers", ["active"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("unknown_outcomes", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("parts_sent", sa.Integer, nullable=False),
        sa.Column("message_ids", sa.Text),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("kind", "ref", "chat_id", name="uq_outbox_delivery"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("outbox")
    op.drop_table("subscribers")
