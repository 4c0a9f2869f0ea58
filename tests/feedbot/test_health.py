"""Health tells the truth: the bot's connection, full-text fetching apart from the
source, which reader read the page, and a database that is away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.request
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.store import BotStore
from feedbot import worker as worker_module
from feedbot.app import open_context
from feedbot.service import ROLES, run_service
from feedbot.settings import Settings, load_settings
from feedbot.web import WebApp
from feeds.store import Store
from tests.conftest import ConfigFactory
from tests.support.fake_source import FakeSource
from tests.support.fake_telegram import FakeTelegram


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except urllib.error.URLError:
        return 0, {}  # not listening yet


async def until(check: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_a_flaky_telegram_at_start_leaves_feeds_and_polling_running(
    make_config: ConfigFactory,
    source: FakeSource,
    tg: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "BOT_RETRY_SECONDS", 0.3)
    tg.fail_next(None, 502, times=3, method="getMe")
    port = free_port()
    settings = load_settings(
        make_config(source.url + "/", http={"port": port}),
        env={"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url},
    )
    ctx = open_context(settings)
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(ctx, ROLES["run"], stop=stop))
    try:
        # Polling and the feeds go on while Telegram answers 502.
        await until(lambda: ctx.store.count_statements() == 11)
        assert not service.done()
        status, doc = await asyncio.to_thread(healthz, port)
        assert status == 200 and doc["bot"] in ("connecting", "connected")
        # Telegram comes back: the bot connects and answers.
        await until(lambda: healthz(port)[1]["bot"] == "connected")
        tg.send_command(101, "/start")
        await until(lambda: len(tg.sent(101)) == 1)
        assert len(tg.calls_of("getMe")) >= 4
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(service, 15) == 0
        ctx.close()


async def test_healthz_shows_full_texts_and_the_reader_apart_from_the_source(
    make_config: ConfigFactory, source: FakeSource
) -> None:
    for n in range(6931, 6942):
        source.misbehave(f"/fnapr/{n}", "status", status=404)
    port = free_port()
    settings = load_settings(make_config(source.url + "/", http={"port": port}), env={})
    ctx = open_context(settings)
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(ctx, ROLES["run"], stop=stop))
    try:
        await until(lambda: healthz(port)[1].get("full_texts", {}).get("skipped") == 11)
        status, doc = await asyncio.to_thread(healthz, port)
        assert status == 200 and doc["status"] == "ok"  # sick statement pages: not down
        assert doc["reader"] == "selectors"
        assert doc["full_texts"] == {"pending": 0, "failing": 0, "skipped": 11}
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        )
        assert b'feedbot_full_texts{state="skipped"} 11.0' in metrics
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(service, 15)
        ctx.close()


async def test_healthz_answers_503_with_the_reason_when_the_database_is_away(
    settings: Settings,
) -> None:
    # A PostgreSQL that does not answer: nothing listens on port 1 of this machine.
    away = Store("postgresql://postgres@127.0.0.1:1/test")
    webapp = WebApp(settings, away, BotStore(away.engine))
    try:
        async with TestClient(TestServer(webapp.app())) as client:
            resp = await client.get("/healthz")
            doc = await resp.json()
        assert resp.status == 503
        assert doc["status"] == "failing" and doc["reason"].startswith("database:")
    finally:
        away.close()
