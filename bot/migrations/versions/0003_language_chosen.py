"""Tell a language chosen with /language from the one Telegram reported at /start.

Revision ID: bot0003
"""

import sqlalchemy as sa
from alembic import op

revision = "bot0003"
down_revision = "bot0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(
            sa.Column("language_chosen", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("language_chosen")
