"""`feedbot migrate-db --to postgresql://…` copies a SQLite database, verified."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest

from feedbot.app import open_context
from feedbot.cli import main
from feedbot.settings import load_settings
from tests.conftest import ConfigFactory
from tests.support.databases import postgresql_schema
from tests.support.fake_source import FakeSource

PG_URL = os.environ.get("FEEDBOT_TEST_DATABASE_URL")


@pytest.fixture
def empty_target(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A PostgreSQL schema when CI provides PostgreSQL, else another SQLite file."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'target.sqlite3'}"
        return
    with postgresql_schema(PG_URL, prefix="m") as url:
        yield url


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_copy_everything_and_keep_working(
    make_config: ConfigFactory,
    source: FakeSource,
    empty_target: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make_config(source.url + "/")
    assert main(["--config", str(path), "poll"]) == 0
    ctx = open_context(load_settings(path, env={}))
    now = dt.datetime.now(dt.UTC)
    ctx.bot_store.subscribe(1, "private", now, title="Ann", language="ru")
    ctx.bot_store.subscribe(-100, "supergroup", now, title="Group")
    ctx.bot_store.enqueue("statement", [ctx.store.statements(limit=1)[0].id], now)
    ctx.close()
    capsys.readouterr()

    assert main(["--config", str(path), "migrate-db", "--to", empty_target]) == 0
    out = capsys.readouterr().out
    for table in ("statements", "statement_versions", "counters", "polls", "subscribers", "outbox"):
        assert f"{table} " in out
    assert "MISMATCH" not in out and "every table verified" in out

    # The copy is a working database: the service carries on from it.
    copied = open_context(load_settings(path, env={"DATABASE_URL": empty_target}))
    try:
        assert copied.store.count_statements() == 11
        assert copied.bot_store.subscriber_counts() == {"private": 1, "supergroup": 1, "total": 2}
        assert copied.bot_store.outbox_counts() == {"pending": 2}
        assert [c.days_on(dt.date(2020, 7, 6)) for c in copied.store.counters()] == [855, 847]
        # New rows get fresh ids after the copied ones (sequences moved on).
        copied.bot_store.subscribe(2, "private", now)
        assert copied.bot_store.enqueue("statement", ["another"], now) == 3
    finally:
        copied.close()

    # A second copy into the now non-empty target is refused.
    assert main(["--config", str(path), "migrate-db", "--to", empty_target]) == 2
    assert "must be empty" in capsys.readouterr().err
