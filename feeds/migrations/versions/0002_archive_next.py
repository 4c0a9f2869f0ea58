"""Remember each walked archive page's next link, so a backfill resumes without refetching.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_progress") as batch:
        batch.add_column(sa.Column("next_url", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("archive_progress") as batch:
        batch.drop_column("next_url")
