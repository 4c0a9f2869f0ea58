"""Several feedbot processes on one database: two workers and a web instance.

Exactly one worker polls, runs the daily counters and talks to Telegram (the
holder of the worker lease); the other stands by and takes over when the
holder is killed; the web instance serves feeds from the database.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bot.schema import follows, subscribers
from bot.store import BotStore
from feeds.publish import etag_of
from feeds.store import Store
from tests.conftest import FIXTURES, ConfigFactory
from tests.support.fake_source import FakeSource
from tests.support.fake_telegram import FakeTelegram
from tests.support.processes import Feedbot, free_port, in_flight_at_stop, wait_until

pytestmark = pytest.mark.slow

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")
CHATS = list(range(1, 301))
COUNTER_CHATS = CHATS[:20]
LEASE_SECONDS = 6.0


def received(tg: FakeTelegram, marker: str) -> Counter[int]:
    return Counter(int(m["chat_id"]) for m in tg.sent() if marker in str(m["text"]))


def test_two_workers_and_a_web_instance(
    make_config: ConfigFactory,
    source: FakeSource,
    tg: FakeTelegram,
    database_url: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    config = make_config(
        source.url + "/",
        worker={"lease_seconds": LEASE_SECONDS, "renew_seconds": 1, "same_host_takeover": False},
        http={"port": port},
    )
    store = Store(database_url)
    store.migrate()
    bots = BotStore(store.engine)
    bots.migrate()
    now = dt.datetime.now(dt.UTC)
    with store.engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "chat_id": c,
                    "chat_type": "private",
                    "active": True,
                    "subscribed_at": now,
                    "counters_enabled": c in COUNTER_CHATS,
                    "counters_time": "00:00",
                    "origin": "test",
                }
                for c in CHATS
            ],
        )
        # Every subscriber follows the primary source, as /start would make it.
        conn.execute(follows.insert(), [{"chat_id": c, "source": ""} for c in CHATS])
    env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url}
    procs: list[Feedbot] = []
    try:
        first = Feedbot("worker", config, env, tmp_path / "worker-1.log")
        procs.append(first)
        wait_until(lambda: store.count_statements() == 11, 30, "the first poll")
        holder = bots.lease_holder("worker")
        assert holder is not None and f":{first.pid}:" in holder[0]
        second = Feedbot("worker", config, env, tmp_path / "worker-2.log")
        web = Feedbot("web", config, env, tmp_path / "web.log")
        procs += [second, web]
        wait_until(lambda: "standing by" in second.log(), 30, "the second worker to stand by")
        wait_until(lambda: _get(port) is not None, 30, "the web instance")

        # A new statement: the web tier serves it from the database, the bot pushes it.
        source.set_body(
            "/",
            HOME.replace(
                '<ul class="news-list">',
                (
                    '<ul class="news-list"><li class="news-item"><span class="news-date">07.07.2020</span> - '
                    '<a class="news-title" href="/fnapr/7200">Scale-out statement</a>'
                    '<p class="news-lead">To every chat once.</p></li>'
                ),
                1,
            ),
        )
        wait_until(lambda: len(received(tg, "Scale-out statement")) >= 80, 60, "80 deliveries")
        first.kill()
        killed_at = dt.datetime.now(dt.UTC)
        took = wait_until(
            lambda: (h := bots.lease_holder("worker")) is not None and f":{second.pid}:" in h[0],
            LEASE_SECONDS + 10,
            "the stand-by to take over",
        )
        assert took < LEASE_SECONDS + 3
        wait_until(
            lambda: len(received(tg, "Scale-out statement")) == len(CHATS),
            60,
            "every chat to get the statement",
        )
        got = received(tg, "Scale-out statement")
        assert set(got) == set(CHATS)
        # Messages sent side by side: those in flight at the kill may go out once more
        # (the stand-by says how many it found), nothing else.
        duplicates = sum(n - 1 for n in got.values())
        in_flight = in_flight_at_stop(second.log())
        assert max(got.values()) <= 2
        assert duplicates <= in_flight, (
            f"{duplicates} duplicates after kill -9 at {killed_at}; {in_flight} in flight"
        )

        # Daily counters: one message a day per chat, whichever worker sends it.
        wait_until(
            lambda: len(received(tg, "Counters on")) == len(COUNTER_CHATS), 30, "the daily counters"
        )
        assert all(n == 1 for n in received(tg, "Counters on").values())

        feed = _get(port)
        assert feed is not None
        body, etag = feed
        assert b"Scale-out statement" in body
        assert etag == etag_of(body)
        stored = store.document("statements.atom")
        assert stored is not None and stored[0] == body  # the published bytes, as stored
        assert second.alive() and web.alive()
    finally:
        for p in procs:
            p.stop()
        store.close()
    logs = "".join(p.log() for p in procs)
    assert tg.token not in logs
    with store.engine.connect() as conn:  # no message was left behind
        left = conn.execute(
            sa.text("SELECT count(*) FROM outbox WHERE status != 'sent'")
        ).scalar_one()
    assert left == 0


def _get(port: int) -> tuple[bytes, str] | None:
    try:
        r = requests.get(
            f"http://127.0.0.1:{port}/feeds/statements.atom",
            headers={"Accept-Encoding": "identity"},
            timeout=2,
        )
    except requests.RequestException:
        return None
    if r.status_code != 200:
        return None
    return r.content, r.headers["ETag"]
