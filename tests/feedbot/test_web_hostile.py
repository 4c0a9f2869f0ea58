"""The HTTP server under clients that do not play nice, and what a reader sees
before anything is stored: the real server on 127.0.0.1 (the same one `feedbot
run` starts), raw sockets where a browser or a feed reader would hide what is
sent, and a store filled the way the pipeline fills it."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import feedparser
import lxml.html
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.messages import button_url, latest_message, statement_message
from feedbot.app import Context, build_web
from feedbot.service import ROLES, fit_file_limit, run_service
from feedbot.settings import Settings, load_settings
from feedbot.web import CURRENT_FEEDS, FeedFiles, WebApp
from feeds.errors import ConfigError
from feeds.model import Entry, Page, Statement
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.conftest import ConfigFactory
from tests.feedbot.test_web import make_context
from tests.support.fake_source import FakeSource
from tests.support.processes import ROOT, clean_env

# Links a browser runs as script (tab, newline and case do not stop it), and one
# written with its entity left undecoded.
CRAFTED = (
    "JAVASCRIPT:alert(1)",
    "java\tscript:alert(2)",
    " \x01javascript:alert(3)",
    "java&#x09;script:alert(4)",
    "data:text/html,<script>alert(5)</script>",
)
GOOD = "https://source.example/fnapr/42"


@pytest.fixture
def ctx(settings: Settings, store: Store, pipeline: Pipeline) -> Context:
    """An empty store: nothing polled yet."""
    return make_context(settings, store, pipeline)


@pytest.fixture
def filled(ctx: Context) -> Context:
    outcome = ctx.pipeline.poll()
    assert outcome.result == "ok", outcome.error
    return ctx


@asynccontextmanager
async def listening(
    webapp: WebApp, max_connections: int | None = None
) -> AsyncIterator[tuple[str, int]]:
    """The server as `feedbot run` starts it, on a free port of 127.0.0.1."""
    runner = await webapp.listen("127.0.0.1", 0, max_connections)
    try:
        host, port = runner.addresses[0][:2]
        yield host, port
    finally:
        await runner.cleanup()


@asynccontextmanager
async def client_of(webapp: WebApp) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(webapp.app())) as client:
        yield client


def request(target: str, close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return f"GET {target} HTTP/1.1\r\nHost: feeds.test\r\n{extra}\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def pipelined(address: tuple[str, int], targets: Iterable[str]) -> list[int]:
    """Statuses of GETs sent back to back on one kept-alive connection, in batches."""
    reader, writer = await asyncio.open_connection(*address)
    statuses: list[int] = []
    try:
        batch: list[str] = []
        for target in [*targets, None]:
            if target is not None:
                batch.append(target)
            if batch and (target is None or len(batch) == 500):
                writer.write(b"".join(request(t) for t in batch))
                await writer.drain()
                for _ in batch:
                    statuses.append((await read_response(reader))[0])
                batch = []
    finally:
        writer.close()
    return statuses


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closed the connection (EOF or reset)."""
    start = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(4096), seconds):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return time.monotonic() - start


def rss_kib() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4


# --- what clients send cannot grow memory or logs ------------------------------------


async def test_unknown_feed_names_answer_404_and_are_not_remembered(filled: Context) -> None:
    webapp, _ = build_web(filled)
    files = webapp.files
    assert isinstance(files, FeedFiles)
    async with listening(webapp) as address:
        assert await pipelined(address, [f"/feeds/{n}" for n in CURRENT_FEEDS]) == [200] * 4
        known = len(files)
        assert known == len(CURRENT_FEEDS)
        before = rss_kib()
        names = [f"/feeds/no-such-{i}.atom" for i in range(10_000)]
        names += [f"/feeds/archive/statements-{i}.atom" for i in range(10, 10_010)]
        statuses = await pipelined(address, names)
        grown = rss_kib() - before
        # Still served, still only the files that exist held in memory.
        assert await pipelined(address, ["/feeds/statements.atom"]) == [200]
    assert statuses == [404] * 20_000
    assert len(files) == known
    assert grown < 20_000, f"RSS grew by {grown} KiB over 20,000 unknown names"


async def test_overlong_and_odd_feed_names_are_404_without_a_traceback(
    filled: Context, caplog: pytest.LogCaptureFixture
) -> None:
    folder = filled.settings.feeds.publish.folder
    (folder / "folder.atom").mkdir()  # stat succeeds, reading fails
    webapp, _ = build_web(filled)
    caplog.set_level(logging.DEBUG)
    names = [
        "a" * 300 + ".atom",
        "archive/" + "b" * 300 + ".atom",
        "c" * 250 + ".rss",
        "/".join(["d"] * 200) + ".json",
        "folder.atom",
        "statements.atom/",
        "statements.atom/x.atom",
    ]
    async with listening(webapp) as address:
        statuses = await pipelined(address, [f"/feeds/{n}" for n in names] * 3)
    assert statuses == [404] * len(names) * 3
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]


# --- crafted links -------------------------------------------------------------------


def store_crafted(store: Store) -> list[Statement]:
    """Statements whose stored links are scripts (and one proper link), stored as a
    page would store them, whatever the parser makes of such links today."""
    entries = [
        Entry(
            id=f"tag:feedbot.test,2020:crafted/{i}",
            title=f"Crafted statement number {i}",
            published=dt.date(2020, 7, 6),
            summary=f"A lead for crafted statement {i}.",
            url=url,
        )
        for i, url in enumerate([*CRAFTED, GOOD])
    ]
    store.apply_page(Page(as_of=dt.date(2020, 7, 6), entries=entries), dt.datetime.now(dt.UTC))
    stored = [s for s in store.statements() if s.id.startswith("tag:feedbot.test")]
    assert {s.url for s in stored} == {*CRAFTED, GOOD}
    return stored


def hrefs(html: str) -> list[str]:
    return [str(a.get("href")) for a in lxml.html.fromstring(html).xpath("//*[@href]")]


def style_hash(html: str) -> str:
    style = lxml.html.fromstring(html).xpath("//style")[0].text
    return "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"


async def test_pages_link_only_to_http_addresses_and_send_a_policy(
    ctx: Context,
) -> None:
    stored = store_crafted(ctx.store)
    async with client_of(build_web(ctx)[0]) as client:
        for path in ["/", *(f"/statements/{s.seq}" for s in stored)]:
            async with client.get(path) as resp:
                assert resp.status == 200, path
                html = await resp.text()
                policy = resp.headers["Content-Security-Policy"]
            links = hrefs(html)
            assert all(h.startswith(("http://", "https://", "/")) for h in links), (path, links)
            assert "script:" not in " ".join(links).lower().replace("\t", "")
            for crafted in CRAFTED:
                assert crafted not in html
            # No script may run; the page's own style sheet still applies.
            assert "default-src 'none'" in policy
            assert "script-src" not in policy
            assert style_hash(html) in policy
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        async with client.get("/") as resp:
            html = await resp.text()
    # Every statement is still listed, the proper link kept.
    titles = [h.text_content().strip() for h in lxml.html.fromstring(html).xpath("//h2")]
    assert {s.title for s in stored} <= set(titles)
    assert GOOD in hrefs(html)


def test_telegram_messages_leave_a_crafted_link_off_and_still_go_out(ctx: Context) -> None:
    stored = store_crafted(ctx.store)
    for s in stored:
        messages = statement_message(s)
        assert messages and s.title in messages[0]
        assert button_url(s) == (GOOD if s.url == GOOD else None), s.url
    listing = "\n".join(latest_message(stored))
    assert f'<a href="{GOOD}">' in listing
    assert listing.count("<a href=") == 1
    assert all(s.title in listing for s in stored)


# --- many slow connections -----------------------------------------------------------


async def test_idle_and_slow_connections_are_closed(
    make_config: ConfigFactory, source: FakeSource, store: Store, pipeline: Pipeline
) -> None:
    settings = load_settings(
        make_config(source.url + "/", http={"idle_timeout": 1, "header_timeout": 1}), env={}
    )
    webapp, _ = build_web(make_context(settings, store, pipeline))
    async with listening(webapp) as address:
        # Connects and says nothing.
        silent = await asyncio.open_connection(*address)
        # Trickles a request head in, a byte at a time.
        slow_reader, slow_writer = await asyncio.open_connection(*address)
        # Asks once, keeps the connection, then idles.
        idle_reader, idle_writer = await asyncio.open_connection(*address)
        idle_writer.write(request("/healthz"))
        assert (await read_response(idle_reader))[0] == 200

        async def trickle() -> None:
            for byte in request("/healthz"):
                slow_writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        waited = await asyncio.gather(
            closed_within(silent[0], 5),
            closed_within(slow_reader, 5),
            closed_within(idle_reader, 5),
        )
        trickling.cancel()
        for writer in (silent[1], slow_writer, idle_writer):
            writer.close()
        # The server still answers.
        assert await pipelined(address, ["/healthz"]) == [200]
    assert all(0.5 < w < 3 for w in waited), waited


async def test_connections_over_the_cap_are_turned_away_and_others_still_served(
    filled: Context, caplog: pytest.LogCaptureFixture
) -> None:
    cap = 20
    webapp, _ = build_web(filled)
    async with listening(webapp, max_connections=cap) as address:
        held = [await asyncio.open_connection(*address) for _ in range(cap)]
        # Each connection above the cap is answered 503 and closed at once.
        for _ in range(10):
            reader, writer = await asyncio.open_connection(*address)
            start = time.monotonic()
            try:
                answer = await asyncio.wait_for(reader.read(), 2)
            except ConnectionResetError:
                answer = b""
            assert time.monotonic() - start < 1
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503 "), answer[:80]
            writer.close()
        # A client already connected is still answered.
        reader, writer = held[0]
        writer.write(request("/feeds/statements.atom"))
        status, body = await read_response(reader)
        assert status == 200 and feedparser.parse(body).bozo == 0
        # Once some leave, newcomers get in again.
        for _, w in held[10:]:
            w.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                statuses = await pipelined(address, ["/healthz"])
            except (ConnectionResetError, asyncio.IncompleteReadError):
                statuses = []
            if statuses == [200] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert statuses == [200]
        for _, w in held[:10]:
            w.close()
    # The operator hears of it once, not once per connection.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "http.max_connections (20)" in warnings[0], warnings


def test_the_cap_fits_under_the_open_file_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert fit_file_limit(100) == 100
    cap = fit_file_limit(10**9)  # more than any limit allows
    now, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert now >= soft
    assert 0 < cap < now


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_connections", 0),
        ("max_connections", "many"),
        ("idle_timeout", 0),
        ("header_timeout", 100_000),
    ],
)
def test_bad_connection_limits_stop_start_up(
    make_config: ConfigFactory, key: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=f"http.{key}"):
        load_settings(make_config(http={key: value}), env={})


# --- public address with a path ------------------------------------------------------


async def test_links_keep_the_path_of_the_public_address(
    make_config: ConfigFactory, source: FakeSource, store: Store, pipeline: Pipeline
) -> None:
    settings = load_settings(
        make_config(source.url + "/", feeds={"public_url": "https://host/prefix"}), env={}
    )
    ctx = make_context(settings, store, pipeline)
    assert ctx.pipeline.poll().ok
    seq = store.statements()[0].seq
    async with client_of(build_web(ctx)[0]) as client:
        async with client.get("/") as resp:
            doc = lxml.html.fromstring(await resp.text())
        async with client.get(f"/statements/{seq}") as resp:
            page = lxml.html.fromstring(await resp.text())
    for html in (doc, page):
        alternates = {
            link.get("href"): link.get("type")
            for link in html.xpath('//head/link[@rel="alternate"]')
        }
        assert alternates == {
            "https://host/prefix/feeds/statements.atom": "application/atom+xml",
            "https://host/prefix/feeds/statements.rss": "application/rss+xml",
            "https://host/prefix/feeds/statements.json": "application/feed+json",
            "https://host/prefix/feeds/counters.atom": "application/atom+xml",
        }
    own = [h for h in doc.xpath("//body//a/@href") if not h.startswith("http")]
    assert f"/prefix/statements/{seq}" in own and "/prefix/healthz" in own
    assert all(h.startswith("/prefix/") for h in own), own
    assert "/prefix/" in page.xpath("//header//a/@href")
    listed = [h for h in doc.xpath('//ul[@class="feeds"]//a/@href')]
    assert listed[:4] == list(alternates)


# --- before the first good poll ------------------------------------------------------


async def test_feeds_answer_valid_empty_documents_before_the_first_poll(ctx: Context) -> None:
    async with client_of(build_web(ctx)[0]) as client:
        served = {}
        for name in CURRENT_FEEDS:
            async with client.get(f"/feeds/{name}") as resp:
                assert resp.status == 200, name
                served[name] = await resp.read()
                etag = resp.headers["ETag"]
            async with client.get(f"/feeds/{name}", headers={"If-None-Match": etag}) as resp:
                assert resp.status == 304
        async with client.get("/") as resp:
            text = " ".join(lxml.html.fromstring(await resp.text()).text_content().split())
    for name in ("statements.atom", "statements.rss", "counters.atom"):
        parsed = feedparser.parse(served[name])
        assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
        assert parsed.entries == []
        assert parsed.feed.title
    assert json.loads(served["statements.json"])["items"] == []
    assert "Waiting for the source" in text and "first poll has not finished" in text
    # What the publisher then writes for the empty store is the same document, so
    # a reader's validators stay good until something is stored.
    ctx.pipeline.publish()
    for name in CURRENT_FEEDS:
        assert (ctx.settings.feeds.publish.folder / name).read_bytes() == served[name], name


async def test_the_page_says_when_the_source_is_failing(ctx: Context, source: FakeSource) -> None:
    source.misbehave("/", "status", status=503)
    assert ctx.pipeline.poll().result == "failed"
    async with client_of(build_web(ctx)[0]) as client, client.get("/") as resp:
        text = " ".join(lxml.html.fromstring(await resp.text()).text_content().split())
    assert "Waiting for the source" in text and "The last poll failed" in text
    assert "503" in text


async def test_the_database_web_role_answers_empty_feeds_before_anything_is_stored(
    ctx: Context,
) -> None:
    webapp, feeds = build_web(ctx, None, feeds_from_database=True)
    assert feeds is not None
    await feeds.refresh()
    async with client_of(webapp) as client:
        for name in CURRENT_FEEDS:
            async with client.get(f"/feeds/{name}") as resp:
                assert resp.status == 200, name
        async with client.get("/feeds/statements.atom") as resp:
            assert feedparser.parse(await resp.read()).bozo == 0


async def test_serve_writes_the_feed_files_at_start_up(ctx: Context) -> None:
    folder = ctx.settings.feeds.publish.folder
    assert not any((folder / name).exists() for name in CURRENT_FEEDS)
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(ctx, ROLES["serve"], stop))
    deadline = time.monotonic() + 10
    while not all((folder / n).is_file() for n in CURRENT_FEEDS) and not service.done():
        assert time.monotonic() < deadline, "feed files not written at start-up"
        await asyncio.sleep(0.02)
    stop.set()
    assert await service == 0
    assert feedparser.parse((folder / "statements.atom").read_bytes()).bozo == 0


def test_a_port_in_use_is_one_line_and_exit_2(
    make_config: ConfigFactory, source: FakeSource
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(source.url + "/", http={"host": "127.0.0.1", "port": port})
        done = subprocess.run(
            [sys.executable, "-m", "feedbot", "--config", str(config), "serve"],
            cwd=ROOT,
            env=clean_env({}),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "http.port" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert "in use" in lines[0]
