"""Delivery to Telegram: exactly once per (statement, chat), whatever Telegram or
the process does in between.

In-process tests run the real python-telegram-bot Application (with feedbot's
flood limiter and request timeouts) against the fake Bot API server, either
inside the whole service (``run_service``) or with a ``Sender`` driven by hand
on a clock that can skip the back-off waits. The ``slow`` tests start real
``python -m feedbot run`` processes, kill them and run two of them on one database.
Every test runs on SQLite and, when FEEDBOT_TEST_DATABASE_URL is set, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

import bot.delivery
from bot.store import BotStore, OutboxItem
from feedbot.app import Context, build_web, open_context
from feedbot.service import ROLES, run_service
from feedbot.settings import load_settings
from feedbot.worker import LEASE
from feeds.store import Store
from tests.conftest import FIXTURES, ROOT, ConfigFactory
from tests.support.fake_source import FakeSource
from tests.support.fake_telegram import FakeTelegram
from tests.support.harness import (
    FIRST_FILL,
    Harness,
    by_chat,
    drain,
    received,
    subscribe,
    utcnow,
    with_new_statement,
)
from tests.support.processes import in_flight_at_stop

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")


def calls_to(tg: FakeTelegram, chat_id: int) -> list[int]:
    """Statuses of every sendMessage call to one chat, in answer order."""
    return [c.status for c in tg.calls_of("sendMessage") if c.chat_id == chat_id]


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout:.0f}s: {what or 'condition'}")
        await asyncio.sleep(0.02)


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout:.0f}s: {what or 'condition'}")
        time.sleep(0.01)


# -- the whole service in this process ------------------------------------------------


@dataclass
class Service:
    ctx: Context
    tg: FakeTelegram
    source: FakeSource
    task: asyncio.Task[int]

    def publish(self, n: int, title: str) -> None:
        self.source.set_body("/", with_new_statement(n, title))

    def statement_id(self, title: str) -> str:
        return next(s.id for s in self.ctx.store.statements(limit=5) if s.title == title)

    def deliveries(self, title: str) -> dict[int, OutboxItem]:
        return by_chat(self.ctx.bot_store.deliveries("statement", self.statement_id(title)))

    def ok_polls(self) -> int:
        return self.ctx.store.poll_counts().get("ok", 0)

    async def until(self, check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        def alive_and(check: Callable[[], bool]) -> bool:
            if self.task.done():
                raise AssertionError(f"the service stopped: {self.task.result()}")
            return check()

        await until(lambda: alive_and(check), timeout, what)


@pytest.fixture
async def service(
    make_config: ConfigFactory, source: FakeSource, tg: FakeTelegram
) -> AsyncIterator[Service]:
    settings = load_settings(
        make_config(source.url + "/"),
        env={"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url},
    )
    ctx = open_context(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(ctx, ROLES["run"], stop=stop))
    try:
        svc = Service(ctx, tg, source, task)
        await svc.until(lambda: ctx.store.count_statements() == FIRST_FILL, 15, "first poll")
        yield svc
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        ctx.close()


async def test_every_subscriber_gets_a_new_statement_exactly_once(service: Service) -> None:
    ctx, tg = service.ctx, service.tg
    chats = list(range(1001, 1041))
    subscribe(ctx.bot_store, chats)
    # Every poll reads the page again (no 304), so "nothing new" is the store's decision.
    service.source.conditional = False
    service.publish(7101, "Exactly once")
    await service.until(
        lambda: len(received(tg, "Exactly once")) == len(chats), 15, "every chat has it"
    )
    # A chat that subscribes now is not owed what appeared before.
    subscribe(ctx.bot_store, [2001])
    polls = service.ok_polls()
    await service.until(lambda: service.ok_polls() >= polls + 2, 10, "two more polls")
    await asyncio.sleep(0.3)  # time for any duplicate to show

    assert received(tg, "Exactly once") == dict.fromkeys(chats, 1)
    assert tg.sent(2001) == []
    rows = service.deliveries("Exactly once")
    assert sorted(rows) == chats  # nothing more was queued, and nothing for the late chat
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(len(r.message_ids) == 1 and r.attempts == 1 for r in rows.values())
    assert ctx.store.count_statements() == FIRST_FILL + 1
    assert tg.too_many == 0  # 40 messages, paced within 30/s and 1/s per chat


async def test_blocked_gone_and_migrated_chats(service: Service) -> None:
    ctx, tg = service.ctx, service.tg
    subscribe(ctx.bot_store, [1101, 1102, 1103, 1104])
    tg.set_chat(-2001, "group", title="Old group")
    subscribe(ctx.bot_store, [-2001], "group")
    tg.block(1102)
    tg.gone(1103)
    tg.migrate(-2001, -1002001)
    service.publish(7102, "Fates")
    await service.until(
        lambda: (
            set(received(tg, "Fates")) == {1101, 1104, -1002001}
            and not any(s.chat_id in (1102, 1103) for s in ctx.bot_store.subscribers())
        ),
        15,
        "delivered, and the lost chats unsubscribed",
    )
    await asyncio.sleep(1.2)  # a poll more, and time for any retry or duplicate to show

    assert received(tg, "Fates") == {1101: 1, 1104: 1, -1002001: 1}
    blocked, gone = ctx.bot_store.subscriber(1102), ctx.bot_store.subscriber(1103)
    assert blocked is not None and not blocked.active and blocked.unsubscribe_reason == "blocked"
    assert gone is not None and not gone.active and gone.unsubscribe_reason == "gone"
    assert ctx.bot_store.subscriber(-2001) is None
    moved = ctx.bot_store.subscriber(-1002001)
    assert moved is not None and moved.active and moved.chat_type == "supergroup"
    rows = service.deliveries("Fates")
    assert {chat: r.status for chat, r in rows.items()} == {
        1101: "sent",
        1102: "dropped",
        1103: "dropped",
        1104: "sent",
        -1002001: "sent",
    }
    # One try each: a lost chat is not retried, a migrated one is sent to once at its new id.
    assert calls_to(tg, 1102) == [403]
    assert calls_to(tg, 1103) == [400]
    assert calls_to(tg, -2001) == [400]
    assert calls_to(tg, -1002001) == [200]


async def test_flood_control_waits_retry_after_and_loses_nothing(service: Service) -> None:
    ctx, tg = service.ctx, service.tg
    chats = list(range(1201, 1231))  # a second's worth of messages at 30/s
    subscribe(ctx.bot_store, chats)
    tg.force_retry_after(1, times=2)
    service.publish(7103, "Flood")
    await service.until(lambda: len(received(tg, "Flood")) == len(chats), 15, "all delivered")
    await asyncio.sleep(0.5)

    assert received(tg, "Flood") == dict.fromkeys(chats, 1)
    assert tg.too_many == 2  # the two forced ones, no more
    calls = [c for c in tg.calls_of("sendMessage") if c.chat_id in chats]
    refused = [c for c in calls if c.status == 429]
    assert len(refused) == 2
    for c in refused:
        retry = next(r for r in calls if r.chat_id == c.chat_id and r.at > c.at)
        assert retry.status == 200 or retry in refused
        assert retry.at - c.at >= 0.95, "the retry came before retry_after was over"
        # Everything else waits too (the limit hit is probably the global one); only a
        # request already on its way when the 429 came back may arrive meanwhile.
        meanwhile = [r for r in calls if c.at + 0.2 < r.at < c.at + 0.9]
        assert meanwhile == [], f"{len(meanwhile)} messages sent during the flood wait"
    rows = service.deliveries("Flood")
    assert {r.status for r in rows.values()} == {"sent"}


# -- a Sender driven by hand ------------------------------------------------------------


async def test_a_failing_chat_does_not_hold_up_the_others(harness: Harness) -> None:
    h, tg = harness, harness.tg
    bad = 1301  # first in the outbox: dispatched before everyone else
    others = list(range(1302, 1312))
    subscribe(h.ctx.bot_store, [bad, *others])
    tg.fail_next(bad, status=500, times=100)
    sid = await h.publish(7301, "Server errors")
    sender = h.sender(max_attempts=3)

    started = time.monotonic()
    await drain(sender)
    assert time.monotonic() - started < 3.0
    assert received(tg, "Server errors") == dict.fromkeys(others, 1)
    rows = h.rows(sid)
    assert rows[bad].status == "pending" and rows[bad].attempts == 1

    for _ in range(4):  # past every back-off, more often than the attempt limit allows
        h.clock.advance(3600)
        await drain(sender)
    rows = h.rows(sid)
    assert rows[bad].status == "failed" and rows[bad].attempts == 3
    assert calls_to(tg, bad) == [500, 500, 500]
    assert h.ctx.bot_store.outbox_counts() == {"sent": len(others), "failed": 1}
    assert [f[0] for f in h.ctx.bot_store.failures()] == [bad]
    assert received(tg, "Server errors") == dict.fromkeys(others, 1)
    async with (
        TestClient(TestServer(build_web(h.ctx)[0].app())) as client,
        client.get("/healthz") as resp,
    ):
        health = await resp.json()
    assert health["deliveries_failed"] == 1
    assert health["outbox_backlog"] == 0


async def test_a_timeout_is_retried_once_and_never_more(harness: Harness) -> None:
    h, tg = harness, harness.tg
    store = h.ctx.bot_store
    # Every sendMessage answers after 2.5 s: later than the bot's 1 s request timeout.
    subscribe(store, [1401])
    tg.delay("sendMessage", 2.5)
    sid = await h.publish(7401, "Slow answers")
    sender = h.sender()
    await drain(sender)
    row = h.rows(sid)[1401]
    assert row.status == "pending" and row.unknown_outcomes == 1
    for _ in range(3):
        h.clock.advance(3600)
        await drain(sender)
    row = h.rows(sid)[1401]
    assert row.status == "failed" and row.attempts == 2
    tg.delay("sendMessage", 0)
    # Both requests did arrive (the answers were late, not lost): at most one repeat.
    await until(lambda: len(calls_to(tg, 1401)) == 2, 5, "the late answers")
    h.clock.advance(3600)
    await drain(sender)
    await asyncio.sleep(0.2)
    assert calls_to(tg, 1401) == [200, 200]

    # Timed out once, then answered: sent, with the one repeat the spec allows.
    store.unsubscribe(1401, "stop", utcnow())
    subscribe(store, [1402])
    tg.delay("sendMessage", 2.5, times=1)
    sid = await h.publish(7402, "One slow answer")
    await drain(sender)
    assert h.rows(sid)[1402].status == "pending"
    h.clock.advance(3600)
    await drain(sender)
    row = h.rows(sid)[1402]
    assert row.status == "sent" and row.attempts == 2 and row.unknown_outcomes == 0
    await until(lambda: len(calls_to(tg, 1402)) == 2, 5, "the late answer")
    assert received(tg, "One slow answer") == {1402: 2}


async def test_items_in_flight_at_a_crash_are_sent_once_more(harness: Harness) -> None:
    h, tg = harness, harness.tg
    store = h.ctx.bot_store
    subscribe(store, [1501, 1502, 1503])
    sid = await h.publish(7501, "After the crash")
    rows = h.rows(sid)
    # As a crash leaves them: 1501 in flight; 1502 in flight on its retry after a
    # timeout (its outcome was already unknown once); 1503 not started.
    assert store.claim(rows[1501].id) is not None
    store.retry_later(rows[1502].id, "timed out", utcnow(), unknown=True)
    assert store.claim(rows[1502].id) is not None
    assert {r.status for r in h.rows(sid).values()} == {"sending", "pending"}

    sender = h.sender()  # a new process
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await until(lambda: set(received(tg, "After the crash")) == {1501, 1503}, 10)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    rows = h.rows(sid)
    assert rows[1501].status == "sent" and rows[1501].unknown_outcomes == 0
    assert rows[1502].status == "failed" and "unknown" in (store.failures()[0][3] or "")
    assert rows[1503].status == "sent"
    assert received(tg, "After the crash") == {1501: 1, 1503: 1}
    assert calls_to(tg, 1502) == []


# -- real processes ---------------------------------------------------------------------


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.handle.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.stop()


def start_feedbot(
    procs: list[Proc], config: Path, tg: FakeTelegram, name: str, token: str | None = None
) -> Proc:
    """``python -m feedbot --config CONFIG run``, as an operator would start it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "FEEDBOT_", "DATABASE_URL", "PORT"))
    }
    env.update(
        TELEGRAM_BOT_TOKEN=token or tg.token,
        TELEGRAM_API_URL=tg.api_url,
        PORT="0",  # any free port
        PYTHONUNBUFFERED="1",
    )
    log = config.parent / f"{name}.stderr"
    handle = log.open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "feedbot", "--config", str(config), "run"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=handle,
    )
    proc = Proc(popen, log, handle)
    procs.append(proc)
    return proc


def process_config(make_config: ConfigFactory, source: FakeSource, name: str, **extra: Any) -> Path:
    """A settings file of its own for one process (same database, same source)."""
    path = make_config(source.url + "/", fetch={"user_agent": f"feedbot-test-{name}"}, **extra)
    return path.rename(path.with_name(f"{name}.toml"))


def open_stores(database_url: str) -> tuple[Store, BotStore]:
    store = Store(database_url)
    store.migrate()
    bot_store = BotStore(store.engine)
    bot_store.migrate()
    return store, bot_store


def assert_token_not_logged(token: str, *proc: Proc) -> None:
    secret = token.partition(":")[2]
    for p in proc:
        text = p.stderr()
        assert secret not in text, f"the bot token is in the log of pid {p.pid}"


@pytest.mark.slow
def test_kill_9_mid_broadcast_loses_nothing_and_repeats_only_what_was_in_flight(
    make_config: ConfigFactory,
    database_url: str,
    source: FakeSource,
    tg: FakeTelegram,
    procs: list[Proc],
) -> None:
    store, bot_store = open_stores(database_url)
    try:
        chats = list(range(10_001, 10_151))
        subscribe(bot_store, chats)
        first = start_feedbot(procs, process_config(make_config, source, "first"), tg, "first")
        wait_until(lambda: store.count_statements() == FIRST_FILL, 20, "the first poll")
        source.set_body("/", with_new_statement(7701, "Broadcast"))
        wait_until(lambda: len(received(tg, "Broadcast")) >= 40, 20, "40 messages out")
        lease = bot_store.lease_holder(LEASE)
        os.kill(first.pid, signal.SIGKILL)
        first.popen.wait(5)
        killed_after = sum(received(tg, "Broadcast").values())
        assert killed_after < len(chats), "the broadcast finished before the kill"
        assert lease is not None and f":{first.pid}:" in lease[0]

        second = start_feedbot(procs, process_config(make_config, source, "second"), tg, "second")
        wait_until(
            lambda: f":{second.pid}:" in (bot_store.lease_holder(LEASE) or ("",))[0],
            15,
            "the second process holds the lease",
        )
        took_over_at = utcnow()
        wait_until(lambda: len(received(tg, "Broadcast")) == len(chats), 30, "every chat has it")
        wait_until(lambda: set(bot_store.outbox_counts()) == {"sent"}, 10, "the outbox is drained")
        time.sleep(0.3)

        got = received(tg, "Broadcast")
        assert set(got) == set(chats)
        # Up to 32 messages go out side by side: each one in flight at the kill may go
        # out once more (the second process says how many it found), nothing else.
        duplicates = sum(n - 1 for n in got.values())
        in_flight = in_flight_at_stop(second.stderr())
        assert max(got.values()) <= 2
        assert duplicates <= in_flight, (
            f"{duplicates} duplicates, {in_flight} in flight: "
            f"{[c for c, n in got.items() if n > 1]}"
        )
        assert bot_store.outbox_counts() == {"sent": len(chats)}
        # The lease named a dead process of this host: taken at once, not after expiry.
        assert took_over_at < lease[1]
        assert "standing by" not in second.stderr()
        # How many were in flight at the kill is chance (a message is marked in flight
        # only just before it leaves); their recovery is tested in-process.
        assert_token_not_logged(tg.token, first, second)
    finally:
        store.close()


def source_polls(source: FakeSource, name: str) -> list[float]:
    """When the process with this user agent fetched the home page."""
    agent = f"feedbot-test-{name}"
    return [
        r.time for r in source.requests if r.path == "/" and r.headers.get("User-Agent") == agent
    ]


@pytest.mark.slow
def test_a_second_process_stands_by_and_takes_over(
    make_config: ConfigFactory,
    database_url: str,
    source: FakeSource,
    tg: FakeTelegram,
    procs: list[Proc],
) -> None:
    store, bot_store = open_stores(database_url)
    # Each process talks to a Telegram of its own, so every call can be told apart.
    with FakeTelegram() as tg_b:
        try:
            first = start_feedbot(procs, process_config(make_config, source, "a"), tg, "a")
            wait_until(lambda: store.count_statements() == FIRST_FILL, 20, "the first poll")
            second = start_feedbot(procs, process_config(make_config, source, "b"), tg_b, "b")
            wait_until(lambda: "standing by" in second.stderr(), 15, "the stand-by notice")
            polls_before = len(source_polls(source, "a"))
            time.sleep(1.5)
            assert len(source_polls(source, "a")) > polls_before, "the first stopped polling"
            assert source_polls(source, "b") == []
            assert tg_b.calls == [], "the stand-by talked to Telegram"
            assert tg.calls_of("getUpdates")

            first.popen.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            assert first.popen.wait(15) == 0
            exited = time.monotonic()
            wait_until(
                lambda: bool(tg_b.calls_of("getUpdates")) and bool(source_polls(source, "b")),
                15,
                "the stand-by takes over",
            )
            took = time.monotonic() - stopped
            assert took < 10, f"took over after {took:.1f}s"

            updates_a = tg.calls_of("getUpdates")
            assert all(c.at <= exited for c in updates_a)
            assert max(c.at for c in updates_a) < min(c.at for c in tg_b.calls_of("getUpdates"))
            assert max(source_polls(source, "a")) < min(source_polls(source, "b"))
            assert {c.status for c in updates_a + tg_b.calls_of("getUpdates")} == {200}
            holder = bot_store.lease_holder(LEASE)
            assert holder is not None and f":{second.pid}:" in holder[0]
            assert_token_not_logged(tg.token, first, second)
        finally:
            for proc in procs:
                proc.stop()
            store.close()


@pytest.mark.slow
def test_the_bot_token_never_appears_in_the_logs(
    make_config: ConfigFactory,
    database_url: str,
    source: FakeSource,
    procs: list[Proc],
) -> None:
    # Not the usual 123456:ABC… shape: the exact token must be redacted, not just the shape.
    token = "4242:feedbot-secret-x"
    store, bot_store = open_stores(database_url)
    with FakeTelegram(token=token) as tg:
        try:
            subscribe(bot_store, [1901, 1902, 1903])
            tg.block(1901)
            tg.fail_next(1902, status=500, times=100)
            tg.fail_next(None, status=502, times=2, method="getUpdates")
            config = process_config(make_config, source, "debug", log={"level": "DEBUG"})
            proc = start_feedbot(procs, config, tg, "debug")
            wait_until(lambda: store.count_statements() == FIRST_FILL, 20, "the first poll")
            source.set_body("/", with_new_statement(7901, "Secret keeping"))
            wait_until(
                lambda: (
                    bool(received(tg, "Secret keeping"))
                    and bool(calls_to(tg, 1902))
                    and not any(s.chat_id == 1901 for s in bot_store.subscribers())
                ),
                20,
                "deliveries and failures",
            )
            assert [c.status for c in tg.calls_of("getUpdates")][:2] == [502, 502]
            proc.stop()
            assert "Calling Bot API endpoint" in proc.stderr()  # DEBUG: requests are logged

            # A token Telegram rejects: a clear error, no traceback quoting the token.
            rejected = start_feedbot(procs, config, tg, "rejected", token="4242:wrong-secret-y")
            assert rejected.popen.wait(20) == 2
            assert "TELEGRAM_BOT_TOKEN" in rejected.stderr()
            assert "Traceback" not in rejected.stderr()
            assert_token_not_logged(token, proc)
            assert_token_not_logged("4242:wrong-secret-y", rejected)
        finally:
            for p in procs:
                p.stop()
            store.close()


async def test_the_sender_outlives_a_database_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, store = harness, harness.ctx.bot_store
    subscribe(store, [1601])
    sid = await h.publish(7601, "Database hiccup")
    failures = [sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))]
    next_due = store.next_due

    def flaky(*args: Any, **kwargs: Any) -> list[OutboxItem]:
        if failures:
            raise failures.pop()
        return next_due(*args, **kwargs)

    monkeypatch.setattr(store, "next_due", flaky)
    monkeypatch.setattr(bot.delivery, "ERROR_PAUSE", 0.1)
    sender = h.sender()
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await until(lambda: bool(received(h.tg, "Database hiccup")) or task.done(), 10)
        assert not task.done(), "the sender stopped for good"
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    assert failures == []
    assert h.rows(sid)[1601].status == "sent"
