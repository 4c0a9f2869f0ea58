"""A feed reader walks the archives through the `web` role (feeds from the database):
statements.atom back through prev-archive reaches every statement once, and an
archive it read before a backfill reads the same after it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import feedparser
from aiohttp.test_utils import TestClient, TestServer

from bot.store import BotStore
from feedbot.settings import Settings
from feedbot.web import DatabaseFeeds, WebApp
from feeds.model import Entry, Page
from feeds.pipeline import Pipeline
from feeds.store import Store

PER_DOC = 20
T0 = dt.datetime(2020, 7, 6, 9, tzinfo=dt.UTC)


def entry(k: int) -> Entry:
    return Entry(
        id=f"https://source.test/fnapr/{7000 - k}",
        title=f"Statement {k}",
        published=dt.date(2020, 7, 5) - dt.timedelta(days=k // 3),
        summary=f"Lead {k}.",
        url=f"https://source.test/fnapr/{7000 - k}",
    )


def store_pages(store: Store, pages: range, at: dt.datetime) -> None:
    for n in pages:
        store.apply_page(
            Page(as_of=None, entries=[entry(k) for k in range(n * 10, n * 10 + 10)]), at
        )


async def walk(client: TestClient[Any, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """Entry ids along prev-archive, and each archive's ids, as a reader sees them."""
    ids: list[str] = []
    archives: dict[str, list[str]] = {}
    path = "/feeds/statements.atom"
    while path:
        resp = await client.get(path)
        assert resp.status == 200, path
        doc = feedparser.parse(await resp.read())
        assert doc.bozo == 0
        found = [e.id for e in doc.entries]
        ids += found
        if "archive/" in path:
            archives[path] = found
        prev = [link.href for link in doc.feed.links if link.rel == "prev-archive"]
        path = "/" + prev[0].split("/", 3)[3] if prev else ""
    return ids, archives


async def test_a_reader_walks_the_archives_through_the_web_role_across_a_backfill(
    settings: Settings, store: Store, pipeline: Pipeline
) -> None:
    pipeline.config = dataclasses.replace(
        pipeline.config, publish=dataclasses.replace(pipeline.config.publish, entries=PER_DOC)
    )
    pipeline.builder.per_doc = PER_DOC
    store_pages(store, range(0, 6), T0)  # `backfill --max-pages 6`
    pipeline.publish()
    feeds = DatabaseFeeds(store)
    await feeds.refresh()
    web = WebApp(settings, store, BotStore(store.engine), feeds=feeds)
    async with TestClient(TestServer(web.app())) as client:
        first_ids, first_archives = await walk(client)
        assert sorted(first_ids) == sorted(entry(k).id for k in range(60))
        store_pages(store, range(6, 15), T0 + dt.timedelta(hours=1))  # the full backfill
        pipeline.publish()
        await feeds.refresh()
        ids, archives = await walk(client)
    assert sorted(ids) == sorted(entry(k).id for k in range(150))  # each exactly once
    for path, before in first_archives.items():
        assert archives[path] == before, f"{path} changed"
