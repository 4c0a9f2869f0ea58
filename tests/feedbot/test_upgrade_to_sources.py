"""Upgrade in place: a database made by the release before several sources (feeds
schema 0004, bot schema 0003) opened with two sources configured loses nothing.
Every statement keeps its id and feed entry id and becomes the first source's,
its feed answers the same entries, and every subscriber keeps receiving it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from alembic import command
from alembic.config import Config as AlembicConfig

from bot.outbox import queue_changes
from feedbot.app import Context, build_web, open_context
from feedbot.settings import load_settings
from feeds.clock import utcnow
from feeds.store import normalise_database_url
from tests.conftest import FIXTURES, PG_URL
from tests.feedbot.test_sources_process import page_source, with_sources
from tests.support.databases import postgresql_schema
from tests.support.fake_source import FakeSource
from tests.support.harness import subscribe, with_new_statement

# The newest revisions of the release before several sources.
PREVIOUS = {"feeds:migrations": "0004", "bot:migrations": "bot0003"}
VERSION_TABLES = {"feeds_schema_version", "bot_schema_version"}
SUBSCRIBERS = [101, 102, 103]


@pytest.fixture
def today_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second database of the same kind, where today's code writes its data."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'today.sqlite3'}"
        return
    assert PG_URL is not None
    with postgresql_schema(PG_URL, prefix="today") as url:
        yield url


def previous_schema(engine: sa.Engine) -> None:
    """The schema as the previous release left it: its migrations, up to its last."""
    for location, revision in PREVIOUS.items():
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", location)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def copy_rows(source: sa.Engine, target: sa.Engine) -> None:
    """Every row of the target's tables from the source, in the target's columns (so
    the rows are as the previous release held them); sequences moved past them."""
    meta, today = sa.MetaData(), sa.MetaData()
    meta.reflect(target)
    today.reflect(source)
    with source.connect() as src, target.begin() as dst:
        for table in meta.sorted_tables:
            if table.name in VERSION_TABLES:
                continue
            columns = [c.name for c in table.columns]
            rows = src.execute(sa.select(*(today.tables[table.name].c[c] for c in columns)))
            values = [dict(zip(columns, row, strict=True)) for row in rows]
            if values:
                dst.execute(table.insert(), values)
            if target.dialect.name == "postgresql":
                for column in table.primary_key.columns:
                    if isinstance(column.type, sa.Integer) and values:
                        dst.execute(
                            sa.text(
                                "SELECT setval(pg_get_serial_sequence(:t, :c), "
                                f"(SELECT max({column.name}) FROM {table.name}))"
                            ),
                            {"t": table.name, "c": column.name},
                        )


async def get_feed(ctx: Context, target: str) -> list[tuple[str, str]]:
    """The entries (id, title) of the feed the web server answers at ``target``."""
    async with TestClient(TestServer(build_web(ctx)[0].app())) as client:
        response = await client.get(target)
        assert response.status == 200, target
        parsed = feedparser.parse(await response.read())
    return [(e.id, e.title) for e in parsed.entries]


async def test_a_database_of_the_previous_release_upgrades_without_loss(
    make_config: Callable[..., Path],
    source: FakeSource,
    database_url: str,
    today_url: str,
    tmp_path: Path,
) -> None:
    # 1. The previous release's data: a first fill, subscribers, a statement pushed.
    before_path = make_config(source.url + "/", database={"url": today_url})
    before = open_context(load_settings(before_path, env={}))
    try:
        subscribe(before.bot_store, SUBSCRIBERS)
        before.bot_store.unsubscribe(103, "blocked", utcnow())
        assert before.pipeline.poll().result == "ok"
        source.set_body("/", with_new_statement(7001, "Pushed before the upgrade"))
        now = utcnow()
        outcome = before.pipeline.poll(
            now, on_stored=lambda c, ch: queue_changes(before.bot_store, ch, now, c, True)
        )
        assert outcome.changes is not None and len(outcome.changes.new) == 1
        before.pipeline.publish()
        pushed = outcome.changes.new[0].id
        old_ids = [s.id for s in before.store.statements()]
        old_pushed = {d.chat_id for d in before.bot_store.deliveries("statement", pushed)}
        old_feed = await get_feed(before, "/feeds/statements.atom")
    finally:
        before.close()
    assert old_pushed == {101, 102}

    # 2. The database as the previous release held it.
    engine = sa.create_engine(normalise_database_url(database_url))
    today = sa.create_engine(normalise_database_url(today_url))
    try:
        previous_schema(engine)
        copy_rows(today, engine)
    finally:
        engine.dispose()
        today.dispose()

    # 3. Opened by this release with two sources configured.
    home = (FIXTURES / "site" / "index.html").read_text("utf-8")
    source.set_body("/b/", home)
    after_path = with_sources(
        make_config(
            source.url + "/",
            database={"url": database_url},
            feeds={"folder": str(tmp_path / "after"), "public_url": "http://feeds.test"},
        ),
        page_source("b", source.url + "/b/"),
    )
    after = open_context(load_settings(after_path, env={}))
    try:
        stored = after.store.statements()
        assert [s.id for s in stored] == old_ids
        assert {s.source for s in stored} == {""}  # the first source's, as before
        for pipeline in after.pipelines.values():
            pipeline.publish()
        assert await get_feed(after, "/feeds/statements.atom") == old_feed
        assert await get_feed(after, "/feeds/embassy-uk/statements.atom") == old_feed
        # What was pushed stays pushed; nothing is sent twice.
        assert {d.chat_id for d in after.bot_store.deliveries("statement", pushed)} == {
            101,
            102,
        }
        # The subscribers keep receiving the first source's statements.
        source.set_body("/", with_new_statement(7002, "Published after the upgrade"))
        now = utcnow()
        outcome = after.pipeline.poll(
            now, on_stored=lambda c, ch: queue_changes(after.bot_store, ch, now, c, True)
        )
        assert outcome.changes is not None
        (new,) = outcome.changes.new
        assert new.id == f"{source.url}/fnapr/7002"
        assert {d.chat_id for d in after.bot_store.deliveries("statement", new.id)} == {101, 102}
        # The second source stores its statements apart.
        assert after.pipelines["b"].poll().result == "ok"
        assert after.store.count_statements() == len(old_ids) + 1
    finally:
        after.close()
