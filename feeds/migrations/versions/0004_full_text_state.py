"""Full texts fetched off the poll's path: when each statement page may be tried
again, and why one will never be; and which reader read each polled page.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

from feeds.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.add_column(sa.Column("content_next_at", UTCDateTime))
        batch.add_column(sa.Column("content_skipped", sa.Text))
    with op.batch_alter_table("polls") as batch:
        batch.add_column(sa.Column("reader", sa.String(20)))


def downgrade() -> None:
    with op.batch_alter_table("polls") as batch:
        batch.drop_column("reader")
    with op.batch_alter_table("statements") as batch:
        batch.drop_column("content_skipped")
        batch.drop_column("content_next_at")
