"""``feedbot migrate-db --to URL``: copy the whole database into another one
(typically SQLite into PostgreSQL), then prove the copy by counts and checksums.

The target is migrated to the current schema first and must be empty. Rows are
copied table by table in batches, parents before children; PostgreSQL's id
sequences are then moved past the copied ids. Worker leases are not copied:
they name processes of the old deployment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.schema import metadata as bot_metadata
from bot.store import BotStore
from feeds.errors import ConfigError
from feeds.schema import metadata as feeds_metadata
from feeds.store import Store

SKIP = {"leases"}
BATCH = 1000


@dataclass(frozen=True)
class TableCopy:
    name: str
    rows: int
    checksum: str
    verified: bool


def tables() -> list[sa.Table]:
    return [
        t for md in (feeds_metadata, bot_metadata) for t in md.sorted_tables if t.name not in SKIP
    ]


def _normal(value: Any) -> Any:
    """One spelling per value whatever the database returned it as."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes | memoryview):
        return hashlib.sha256(bytes(value)).hexdigest()
    return value


def checksum(engine: Engine, table: sa.Table) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    order = list(table.primary_key.columns) or list(table.columns)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=BATCH).execute(sa.select(table).order_by(*order))
        for row in result:
            digest.update(repr(tuple(_normal(v) for v in row)).encode())
            count += 1
    return count, digest.hexdigest()


def copy_database(
    source: Engine, target_url: str, progress: Callable[[str, int], None] | None = None
) -> list[TableCopy]:
    target_store = Store(target_url)
    try:
        target = target_store.engine
        if target.url == source.url:
            raise ConfigError("migrate-db --to: the target is the database in use")
        target_store.migrate()
        BotStore(target).migrate()
        with target.connect() as conn:
            for table in tables():
                if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                    raise ConfigError(
                        f"migrate-db --to: the target already has rows in {table.name}; "
                        "it must be empty"
                    )
        with source.connect() as src, target.begin() as dst:
            for table in tables():
                result = src.execution_options(yield_per=BATCH).execute(sa.select(table))
                copied = 0
                for batch in result.partitions(BATCH):
                    dst.execute(table.insert(), [dict(r._mapping) for r in batch])
                    copied += len(batch)
                    if progress is not None:
                        progress(table.name, copied)
            if target.dialect.name == "postgresql":
                # Explicit ids were inserted: move each id sequence past them.
                for table in tables():
                    for column in table.primary_key.columns:
                        if column.autoincrement is True:
                            next_id = sa.select(sa.func.coalesce(sa.func.max(column), 0) + 1)
                            sequence = sa.func.pg_get_serial_sequence(table.name, column.name)
                            dst.execute(
                                sa.select(
                                    sa.func.setval(sequence, next_id.scalar_subquery(), False)
                                )
                            )
        report = []
        for table in tables():
            rows, digest = checksum(source, table)
            rows_t, digest_t = checksum(target, table)
            report.append(
                TableCopy(table.name, rows, digest, rows == rows_t and digest == digest_t)
            )
        return report
    finally:
        target_store.close()
