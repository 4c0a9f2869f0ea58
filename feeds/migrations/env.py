"""Alembic environment: run by ``feeds.store.Store.migrate`` on its own connection."""

from alembic import context

from feeds.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="feeds_schema_version",
    render_as_batch=True,  # SQLite can only ALTER TABLE by copying it
)
with context.begin_transaction():
    context.run_migrations()
