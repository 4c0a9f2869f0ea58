"""Per-chat filters, delivery mode and quiet hours; operator alerts.

Revision ID: bot0002
"""

import sqlalchemy as sa
from alembic import op

from feeds.schema import UTCDateTime

revision = "bot0002"
down_revision = "bot0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("filters", sa.Text))
        batch.add_column(
            sa.Column("delivery_mode", sa.String(10), nullable=False, server_default="instant")
        )
        batch.add_column(sa.Column("quiet_start", sa.String(5)))
        batch.add_column(sa.Column("quiet_end", sa.String(5)))
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "alert_state",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
    op.drop_table("alerts")
    with op.batch_alter_table("subscribers") as batch:
        for column in ("quiet_end", "quiet_start", "delivery_mode", "filters"):
            batch.drop_column(column)
