"""Several sources: which chats follow which sources. Every chat known before follows
the primary source (key ""), so it keeps receiving what it received.

Revision ID: bot0004
"""

import sqlalchemy as sa
from alembic import op

revision = "bot0004"
down_revision = "bot0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "follows",
        sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("source", sa.Text, primary_key=True),
    )
    op.create_index("ix_follows_source", "follows", ["source", "chat_id"])
    # Inactive chats too: one that comes back with /start finds its source again.
    op.execute("INSERT INTO follows (chat_id, source) SELECT chat_id, '' FROM subscribers")


def downgrade() -> None:
    op.drop_index("ix_follows_source", "follows")
    op.drop_table("follows")
