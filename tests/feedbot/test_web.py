"""The HTTP server as a feed reader and an operator see it: the real aiohttp app
over a store filled by one real poll of the fake source."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import feedparser
import lxml.html
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.store import BotStore
from feedbot.app import Context, build_web
from feedbot.settings import Settings, load_settings
from feeds.clock import LONDON
from feeds.fetch import Fetcher
from feeds.pipeline import Pipeline, PollOutcome
from feeds.store import Store
from tests.support.fake_source import FakeSource

FIXTURE_HOME = Path(__file__).resolve().parents[1] / "fixtures" / "site" / "index.html"
FEEDS = {
    "statements.atom": "application/atom+xml",
    "statements.rss": "application/rss+xml",
    "statements.json": "application/feed+json",
    "counters.atom": "application/atom+xml",
}
IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}
SCRIPT = "<script>alert(1)</script>"


def home_with(date: str, title_html: str, href: str, lead: str) -> str:
    """The fixture home page with one more statement at the top of the list."""
    page = FIXTURE_HOME.read_text("utf-8")
    marker = '<ul class="news-list">'
    assert page.count(marker) == 1
    item = (
        f'\n      <li class="news-item">\n'
        f'        <span class="news-date">{date}</span> - '
        f'<a class="news-title" href="{href}">{title_html}</a>\n'
        f'        <p class="news-lead">{lead}</p>\n'
        f"      </li>"
    )
    return page.replace(marker, marker + item)


@asynccontextmanager
async def serve(ctx: Context) -> AsyncIterator[TestClient[Any, Any]]:
    """A fresh WebApp on 127.0.0.1; the client hands back bytes as sent (no auto-gunzip)."""
    async with TestClient(TestServer(build_web(ctx)[0].app()), auto_decompress=False) as client:
        yield client


async def raw_get(client: TestClient[Any, Any], target: str) -> tuple[int, bytes]:
    """GET with the request target exactly as written (clients normalise `..` away)."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: feeds.test\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(data.split(b" ", 2)[1]), data


async def get_feed(
    client: TestClient[Any, Any], name: str, **headers: str
) -> tuple[int, bytes, Any]:
    async with client.get(f"/feeds/{name}", headers={**IDENTITY, **headers}) as resp:
        return resp.status, await resp.read(), resp.headers


def polled(outcome: PollOutcome, new: int) -> PollOutcome:
    assert outcome.result == "ok", outcome.error
    assert outcome.changes is not None
    assert len(outcome.changes.new) == new
    return outcome


@pytest.fixture
def filled(pipeline: Pipeline) -> PollOutcome:
    outcome = polled(pipeline.poll(), 11)
    pipeline.fetch_full_texts(20)  # as the service's full-text job does right after
    return outcome


def make_context(settings: Settings, store: Store, pipeline: Pipeline) -> Context:
    bot_store = BotStore(store.engine)
    bot_store.migrate()
    return Context(
        settings=settings,
        store=store,
        bot_store=bot_store,
        fetcher=pipeline.fetcher,
        pipeline=pipeline,
    )


@pytest.fixture
def ctx(settings: Settings, store: Store, pipeline: Pipeline, filled: PollOutcome) -> Context:
    return make_context(settings, store, pipeline)


@pytest.fixture
async def client(ctx: Context) -> AsyncIterator[TestClient[Any, Any]]:
    async with serve(ctx) as c:
        yield c


# --- feeds ---------------------------------------------------------------------------


async def test_feeds_carry_validators_and_answer_conditional_requests(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    for name, ctype in FEEDS.items():
        status, body, h = await get_feed(client, name)
        assert status == 200, name
        assert h["Content-Type"].split(";")[0].strip() == ctype
        assert "charset=utf-8" in h["Content-Type"].lower()
        # What the reader gets is what was published for static servers.
        assert body == (settings.feeds.publish.folder / name).read_bytes()
        etag, last_modified = h["ETag"], h["Last-Modified"]
        assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
        modified = email.utils.parsedate_to_datetime(last_modified)
        assert modified.tzinfo is not None
        assert modified <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        cache = h["Cache-Control"]
        assert "public" in cache
        assert int(cache.split("max-age=")[1].split(",")[0]) > 0
        assert "Accept-Encoding" in h["Vary"]

        status, body, h304 = await get_feed(client, name, **{"If-None-Match": etag})
        assert (status, body) == (304, b""), name
        assert h304["ETag"] == etag
        status, body, _ = await get_feed(client, name, **{"If-None-Match": f'"x", W/{etag}'})
        assert (status, body) == (304, b"")
        status, body, _ = await get_feed(client, name, **{"If-Modified-Since": last_modified})
        assert (status, body) == (304, b""), name

        stale = await get_feed(client, name, **{"If-None-Match": '"not-this-one"'})
        assert stale[0] == 200 and stale[1] == (settings.feeds.publish.folder / name).read_bytes()
        # If-None-Match decides when present, even if the date alone would match.
        status, _, _ = await get_feed(
            client, name, **{"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
        )
        assert status == 200
        earlier = email.utils.format_datetime(modified - dt.timedelta(hours=1), usegmt=True)
        status, _, _ = await get_feed(client, name, **{"If-Modified-Since": earlier})
        assert status == 200


async def test_served_feeds_are_valid_for_feed_readers(
    client: TestClient[Any, Any], store: Store
) -> None:
    stored = store.statements()
    ids = {s.id for s in stored}
    titles = {s.title for s in stored}
    assert len(stored) == 11
    for name in ("statements.atom", "statements.rss"):
        status, body, _ = await get_feed(client, name)
        assert status == 200
        parsed = feedparser.parse(body)
        assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
        assert len(parsed.entries) == 11
        assert {e.id for e in parsed.entries} == ids
        assert {e.title for e in parsed.entries} == titles
        assert all(e.get("link", "").startswith("http") for e in parsed.entries)
        assert parsed.entries[0].title == stored[0].title  # newest first

    status, body, _ = await get_feed(client, "statements.json")
    assert status == 200
    doc = json.loads(body)
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"].endswith("/feeds/statements.json")
    assert [item["id"] for item in doc["items"]] == [s.id for s in stored]
    assert {item["title"] for item in doc["items"]} == titles

    status, body, _ = await get_feed(client, "counters.atom")
    assert status == 200
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    text = " ".join(e.title + " " + e.get("summary", "") for e in parsed.entries)
    assert "Salisbury" in text and "Glushkov" in text
    assert len({e.id for e in parsed.entries}) == len(parsed.entries) >= 2


async def test_gzip_is_a_separate_representation_of_the_same_bytes(
    client: TestClient[Any, Any],
) -> None:
    for name in FEEDS:
        _, plain, h = await get_feed(client, name)
        status, packed, gz = await get_feed(client, name, **GZIP)
        assert status == 200
        assert gz["Content-Encoding"] == "gzip"
        assert packed != plain and len(packed) < len(plain)
        assert gzip.decompress(packed) == plain
        assert gz["ETag"] != h["ETag"]
        assert gz["Last-Modified"] == h["Last-Modified"]
        assert gz["Content-Type"] == h["Content-Type"]
        assert "Content-Encoding" not in h
        status, body, again = await get_feed(client, name, **GZIP, **{"If-None-Match": gz["ETag"]})
        assert (status, body) == (304, b"")
        assert again["ETag"] == gz["ETag"]


async def test_a_new_statement_changes_the_feed_and_its_etag(
    client: TestClient[Any, Any], source: FakeSource, pipeline: Pipeline, ctx: Context
) -> None:
    before = {name: await get_feed(client, name) for name in FEEDS if name != "counters.atom"}
    title = "Statement by the Embassy on a new matter of the day"
    source.set_body("/", home_with("07.07.2020", title, "/fnapr/7001", "A new lead."))
    polled(pipeline.poll(), 1)
    # The server looks at a feed file at most this often (one stat per interval).
    await asyncio.sleep(ctx.settings.http.feed_recheck_seconds)

    for name, (_, old_body, old) in before.items():
        status, body, h = await get_feed(client, name, **{"If-None-Match": old["ETag"]})
        assert status == 200, name
        assert h["ETag"] != old["ETag"]
        assert body != old_body and title.encode() in body
        status, _, _ = await get_feed(client, name, **{"If-None-Match": h["ETag"]})
        assert status == 304
    _, body, _ = await get_feed(client, "statements.atom")
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0
    assert len(parsed.entries) == 12
    assert parsed.entries[0].title == title
    assert parsed.entries[0].id == source.url + "/fnapr/7001"
    # The statements already published keep their ids.
    _, old_body, _ = before["statements.atom"]
    old_ids = {e.id for e in feedparser.parse(old_body).entries}
    assert old_ids < {e.id for e in parsed.entries}


async def test_feeds_are_the_same_bytes_from_a_fresh_process(
    client: TestClient[Any, Any], make_config: Any, source: FakeSource, tmp_path: Path
) -> None:
    """Rendering depends on the store alone: another process, publishing into
    another folder from the same database, serves the same bytes and ETags."""
    first = {name: await get_feed(client, name) for name in FEEDS}
    other = tmp_path / "elsewhere"
    settings2 = load_settings(make_config(source.url + "/", feeds={"folder": str(other)}), env={})
    store2 = Store(settings2.feeds.database_url)
    fetcher2 = Fetcher(settings2.feeds.fetch)
    try:
        pipeline2 = Pipeline(settings2.feeds, store2, fetcher2)
        assert set(pipeline2.publish()) >= set(FEEDS)
        async with serve(make_context(settings2, store2, pipeline2)) as client2:
            for name, (_, body, h) in first.items():
                status, body2, h2 = await get_feed(client2, name)
                assert status == 200
                assert body2 == body, name
                assert h2["ETag"] == h["ETag"], name
                status, _, _ = await get_feed(client2, name, **{"If-None-Match": h["ETag"]})
                assert status == 304
    finally:
        fetcher2.close()
        store2.close()


async def test_only_published_feeds_are_served(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    (tmp_path / "secret.json").write_text('{"secret": "do-not-serve"}', "utf-8")
    config = (tmp_path / "feedbot.toml").read_bytes()
    for target in (
        "/feeds/../feedbot.toml",
        "/feeds/%2e%2e/feedbot.toml",
        "/feeds/..%2ffeedbot.toml",
        "/feeds/..%2Fsecret.json",
        "/feeds/archive/../../secret.json",
        "/feeds/%2e%2e%2fsecret.json",
        "/feeds//etc/passwd",
        "/feeds/.manifest.json",
        "/feeds/nope.atom",
        "/feeds/statements.xml",
        "/feeds/archive/statements-1.atom",
        "/statements/999999",
        "/nope",
    ):
        status, data = await raw_get(client, target)
        assert status == 404, (target, data[:200])
        assert b"do-not-serve" not in data and config not in data
        assert b"[database]" not in data


# --- health, metrics -----------------------------------------------------------------


async def test_healthz_reports_the_last_poll(client: TestClient[Any, Any]) -> None:
    async with client.get("/healthz") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        doc = await resp.json()
    assert doc["status"] == "ok"
    assert doc["statements"] == 11
    assert doc["consecutive_failures"] == 0
    assert doc["subscribers"] == 0
    last = doc["last_poll"]
    assert last["result"] == "ok"
    assert last["error"] is None
    assert last["new_statements"] == 11
    finished = dt.datetime.fromisoformat(last["finished_at"])
    assert abs(dt.datetime.now(dt.UTC) - finished) < dt.timedelta(minutes=1)
    assert dt.datetime.fromisoformat(doc["last_success_at"]) <= finished


async def test_healthz_fails_when_no_poll_succeeded_for_too_long(
    ctx: Context, make_config: Any, source: FakeSource, pipeline: Pipeline
) -> None:
    strict = load_settings(
        make_config(source.url + "/", http={"unhealthy_after_seconds": 1}), env={}
    )
    assert strict.http.unhealthy_after_seconds == 1
    async with serve(make_context(strict, ctx.store, pipeline)) as client:
        await asyncio.sleep(1.2)
        source.misbehave("/", "status", status=500)
        assert pipeline.poll().result == "failed"
        async with client.get("/healthz") as resp:
            assert resp.status == 503
            doc = await resp.json()
        assert doc["status"] != "ok"
        assert doc["consecutive_failures"] == 1
        assert doc["last_poll"]["result"] == "failed"
        assert "500" in doc["last_poll"]["error"]
        assert doc["statements"] == 11  # the store stays as it was

        source.clear()
        assert pipeline.poll().ok
        async with client.get("/healthz") as resp:
            assert resp.status == 200
            doc = await resp.json()
        assert doc["status"] == "ok"
        assert doc["consecutive_failures"] == 0


def _polls(text: str) -> dict[str, float]:
    """feedbot_polls_total by result."""
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "feedbot_polls_total"
    }


async def test_metrics_are_prometheus_text(
    client: TestClient[Any, Any], pipeline: Pipeline
) -> None:
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        before = await resp.text()
    assert "# TYPE feedbot_polls_total counter" in before
    assert "feedbot_statements_stored 11.0" in before
    assert pipeline.poll().ok
    async with client.get("/metrics") as resp:
        after = await resp.text()
    assert _polls(before)["ok"] >= 1
    assert sum(_polls(after).values()) == sum(_polls(before).values()) + 1


# --- pages ---------------------------------------------------------------------------


async def test_home_page_lists_statements_counters_and_feeds(
    client: TestClient[Any, Any], store: Store
) -> None:
    async with client.get("/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        html = await resp.text()
    assert '<link rel="alternate" type="application/atom+xml"' in html
    doc = lxml.html.fromstring(html)
    # Autodiscovery gives every feed at the public address (a reader may keep it).
    alternates = {
        (link.get("type"), link.get("href")) for link in doc.xpath('//head/link[@rel="alternate"]')
    }
    assert alternates == {
        ("application/atom+xml", "http://feeds.test/feeds/statements.atom"),
        ("application/rss+xml", "http://feeds.test/feeds/statements.rss"),
        ("application/feed+json", "http://feeds.test/feeds/statements.json"),
        ("application/atom+xml", "http://feeds.test/feeds/counters.atom"),
    }

    shown = [h.text_content().strip() for h in doc.xpath("//article//h2")]
    assert shown == [s.title for s in store.statements()]

    today = dt.datetime.now(LONDON).date()
    days = [int(d.text_content()) for d in doc.xpath('//*[contains(@class, "days")]')]
    assert days == [(today - dt.date(2018, 3, 4)).days, (today - dt.date(2018, 3, 12)).days]
    text = doc.text_content()
    assert "the Salisbury incident" in text
    assert "11 statements stored" in " ".join(text.split())


async def test_statement_page(client: TestClient[Any, Any], store: Store) -> None:
    s = store.statements()[0]
    async with client.get(f"/statements/{s.seq}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        doc = lxml.html.fromstring(await resp.text())
    assert doc.xpath("//h1")[0].text_content().strip() == s.title
    assert s.summary[:60] in " ".join(doc.text_content().split())


async def test_markup_in_a_title_is_shown_as_text(
    client: TestClient[Any, Any], source: FakeSource, pipeline: Pipeline, store: Store
) -> None:
    title = f"Comment on {SCRIPT} & other <b>tags</b>"
    title_html = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    source.set_body("/", home_with("07.07.2020", title_html, "/fnapr/7002", f"Lead {title_html}"))
    polled(pipeline.poll(), 1)
    found = [s for s in store.statements() if s.title == title]
    assert len(found) == 1, [s.title for s in store.statements()[:2]]

    for path in ("/", f"/statements/{found[0].seq}"):
        async with client.get(path) as resp:
            assert resp.status == 200
            html = await resp.text()
        assert SCRIPT not in html and "<b>tags</b>" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        doc = lxml.html.fromstring(html)
        assert not doc.xpath("//body//script"), path
        assert title in [h.text_content().strip() for h in doc.xpath("//h1 | //h2")], path

    _, body, _ = await get_feed(client, "statements.atom")
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.entries[0].title == title
