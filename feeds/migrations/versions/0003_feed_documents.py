"""Feed documents in the database, so several web instances serve the same bytes.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

from feeds.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_documents",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feed_documents")
