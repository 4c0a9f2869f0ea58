"""Alembic environment of the Telegram side's tables (see ``bot.store.BotStore.migrate``)."""

from alembic import context

from bot.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="bot_schema_version",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
