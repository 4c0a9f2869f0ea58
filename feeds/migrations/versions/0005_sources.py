"""Several sources: each statement, counter and poll belongs to one. Everything
stored before belongs to the primary source ([source]), whose key is "".

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("statements", "counters", "polls")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("source", sa.Text, nullable=False, server_default=""))
    op.create_index("ix_statements_source_order", "statements", ["source", "sort_date", "seq"])
    op.create_index("ix_polls_source", "polls", ["source", "id"])


def downgrade() -> None:
    op.drop_index("ix_polls_source", "polls")
    op.drop_index("ix_statements_source_order", "statements")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("source")
