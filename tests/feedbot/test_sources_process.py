"""Several sources in one running service: each polls on its own schedule, a slow
or failing source never delays another, sources on one host take turns there,
and a bad [[sources]] table stops start-up with one line naming the source."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from feedbot.app import Context, open_context
from feedbot.cli import main
from feedbot.service import ROLES, run_service
from feedbot.settings import load_settings
from tests.conftest import FIXTURES, toml_value
from tests.support.fake_source import FakeSource, most_at_once
from tests.support.fake_telegram import FakeTelegram

ADMIN = 900
FIRST_FILL = 11


def sources_block(*tables: dict[str, Any]) -> str:
    lines = []
    for table in tables:
        lines.append("[[sources]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def with_sources(path: Path, *tables: dict[str, Any]) -> Path:
    path.write_text(path.read_text("utf-8") + "\n" + sources_block(*tables), "utf-8")
    return path


def page_source(source_id: str, url: str, **more: Any) -> dict[str, Any]:
    profile = Path(__file__).resolve().parents[2] / "config" / "sources" / "embassy-uk.toml"
    return {
        "id": source_id,
        "name": f"Source {source_id.upper()}",
        "url": url,
        "profile": str(profile),
        **more,
    }


def fetches(source: FakeSource, path: str, since: float = 0.0) -> list[float]:
    return [r.time for r in source.requests if r.path == path and r.time >= since]


@pytest.fixture
def other() -> Iterator[FakeSource]:
    """A second site on another host name of this machine."""
    with FakeSource(root=FIXTURES / "site", host="127.0.0.2") as src:
        yield src


@dataclass
class Service:
    ctx: Context
    tg: FakeTelegram

    async def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    def stored(self, source_id: str) -> int:
        return self.ctx.pipelines[source_id].store.count_statements()

    async def filled(self) -> None:
        """Until every source (each the fixture site) has stored its first fill."""
        await self.until(lambda: all(self.stored(s) == FIRST_FILL for s in self.ctx.pipelines))


@contextlib.asynccontextmanager
async def service(path: Path, tg: FakeTelegram) -> AsyncIterator[Service]:
    settings = load_settings(
        path, env={"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url}
    )
    ctx = open_context(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(ctx, ROLES["run"], stop=stop))
    try:
        yield Service(ctx, tg)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        ctx.close()


def config(make_config: Callable[..., Path], primary: FakeSource, **sections: Any) -> Path:
    return make_config(
        primary.url + "/",
        telegram={"admin_chat_ids": [ADMIN]},
        alerts={"failures": 1},
        **sections,
    )


async def test_each_source_polls_on_its_own_schedule(
    make_config: Callable[..., Path], source: FakeSource, other: FakeSource, tg: FakeTelegram
) -> None:
    path = with_sources(
        config(make_config, source), page_source("b", other.url + "/", poll_seconds=60)
    )
    async with service(path, tg) as run:
        await run.filled()
        started = fetches(source, "/")[0]
        await asyncio.sleep(3.2)
    # The first source every second; the second once, its next poll a minute away.
    assert len(fetches(source, "/", started)) >= 3
    assert len(fetches(other, "/")) == 1


async def test_a_hanging_source_never_delays_another(
    make_config: Callable[..., Path], source: FakeSource, other: FakeSource, tg: FakeTelegram
) -> None:
    path = with_sources(
        config(make_config, source), page_source("b", other.url + "/", poll_seconds=1)
    )
    async with service(path, tg) as run:
        await run.filled()
        other.misbehave("/", "slow", seconds=30)
        before = other.count("/")
        await run.until(lambda: other.count("/") > before)  # its poll hangs from here
        hanging_since = fetches(other, "/")[-1]
        await asyncio.sleep(3.2)
        # Its fetch gives up at the read timeout (2 s) and it tries again later...
        assert len(fetches(other, "/", hanging_since)) <= 2
        # ...while the other source kept its one-second pace all along.
        assert len(fetches(source, "/", hanging_since)) >= 3


async def test_a_failing_source_backs_off_alone_and_its_alert_names_it(
    make_config: Callable[..., Path], source: FakeSource, other: FakeSource, tg: FakeTelegram
) -> None:
    path = with_sources(
        config(make_config, source), page_source("b", other.url + "/", poll_seconds=1)
    )
    async with service(path, tg) as run:
        await run.filled()
        other.misbehave("/", "status", status=503)
        await run.until(lambda: any("Source B" in m["text"] for m in tg.sent(ADMIN)), 8)
        failing_since = fetches(other, "/")[-1]
        await asyncio.sleep(3.2)
        b_state = run.ctx.pipelines["b"].store.source_state(other.url + "/")
        primary_state = run.ctx.store.source_state(source.url + "/")
    alert = next(m["text"] for m in tg.sent(ADMIN) if "Source B" in m["text"])
    assert alert.startswith("Source B: ") and "failed" in alert
    assert b_state.consecutive_failures >= 2
    assert primary_state.consecutive_failures == 0
    # The failing source waits longer and longer; the other keeps its pace.
    b_polls = len({round(t) for t in fetches(other, "/", failing_since)})
    assert b_polls <= 3
    assert len(fetches(source, "/", failing_since)) >= 3
    assert not any("Source" in m["text"] and "embassy" in m["text"].lower() for m in tg.sent(ADMIN))


async def test_sources_on_one_host_never_send_it_two_requests_at_once(
    make_config: Callable[..., Path], source: FakeSource, tg: FakeTelegram
) -> None:
    home = (FIXTURES / "site" / "index.html").read_text("utf-8")
    for path_ in ("/b/", "/c/"):
        source.set_body(path_, home)
    for path_ in ("/", "/b/", "/c/"):
        source.misbehave(path_, "slow", seconds=0.2)
    path = with_sources(
        config(make_config, source),
        page_source("b", source.url + "/b/", poll_seconds=1),
        page_source("c", source.url + "/c/", poll_seconds=1),
    )
    async with service(path, tg) as run:
        await run.until(lambda: all(run.stored(s) == FIRST_FILL for s in ("embassy-uk", "b", "c")))
        await asyncio.sleep(3)
    polls = [s for s in source.spans if s.path in ("/", "/b/", "/c/")]
    assert {s.path for s in polls} == {"/", "/b/", "/c/"}
    assert len(polls) >= 9
    assert most_at_once(polls) == 1
    assert source.most_in_flight == 1  # statement pages took their turns too


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"id": "embassy-uk"}, "source 'embassy-uk': the id is used twice"),
        ({"id": "../etc"}, "sources[1].id: must be 1-32 lower-case letters"),
        ({"id": "b", "profile": "no-such-profile.toml"}, "source 'b'"),
    ],
)
def test_a_bad_source_stops_start_up_with_one_line_naming_it(
    make_config: Callable[..., Path],
    source: FakeSource,
    capsys: pytest.CaptureFixture[str],
    table: dict[str, Any],
    says: str,
) -> None:
    good = page_source("x", source.url + "/x/")
    path = with_sources(make_config(source.url + "/"), {**good, **table})
    assert main(["--config", str(path), "sources"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert says in err


def test_sources_lists_every_source_with_its_state(
    make_config: Callable[..., Path], source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    source.set_body("/b/", (FIXTURES / "site" / "index.html").read_text("utf-8"))
    path = with_sources(make_config(source.url + "/"), page_source("b", source.url + "/b/"))
    assert main(["--config", str(path), "poll", "--source", "b"]) == 0
    capsys.readouterr()
    assert main(["--config", str(path), "--json", "sources"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["embassy-uk", "b"]
    assert rows["b"]["statements"] == FIRST_FILL and rows["b"]["last_poll"] == "ok"
    assert rows["embassy-uk"]["statements"] == 0 and rows["embassy-uk"]["last_poll"] is None
    assert rows["b"]["default"] is False and rows["embassy-uk"]["default"] is True
    assert main(["--config", str(path), "sources"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["id", "kind"]
    assert table[2].startswith("b ") and "Source B" in table[2]


def test_an_unknown_source_id_is_one_line_listing_the_ids(
    make_config: Callable[..., Path], source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_sources(make_config(source.url + "/"), page_source("b", source.url + "/b/"))
    for command in (["poll"], ["check-config"], ["backfill"], ["parse", "x.html"]):
        assert main(["--config", str(path), *command, "--source", "nope"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "feedbot: --source nope: no such source (the sources are: embassy-uk, b)"


def test_poll_without_source_polls_every_source(
    make_config: Callable[..., Path], source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    source.set_body("/b/", (FIXTURES / "site" / "index.html").read_text("utf-8"))
    path = with_sources(make_config(source.url + "/"), page_source("b", source.url + "/b/"))
    assert main(["--config", str(path), "--json", "poll"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"embassy-uk", "b"}
    assert len(report["embassy-uk"]["new"]) == len(report["b"]["new"]) == FIRST_FILL
    # Two sources publishing the same statements keep separate entries.
    assert set(report["embassy-uk"]["new"]).isdisjoint(report["b"]["new"])


def test_check_config_refuses_a_feed_source_that_answers_html(
    make_config: Callable[..., Path], source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_sources(
        make_config(source.url + "/"),
        {"id": "news", "name": "News", "url": source.url + "/", "kind": "feed"},
    )
    assert main(["--config", str(path), "check-config", "--source", "news"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("feedbot: source 'news': ") and "HTML page, not a feed" in err


@pytest.mark.parametrize("command", ["run", "worker"])
def test_the_service_refuses_to_start_with_a_feed_source_that_answers_html(
    make_config: Callable[..., Path],
    source: FakeSource,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    path = with_sources(
        make_config(source.url + "/"),
        {"id": "news", "name": "News", "url": source.url + "/", "kind": "feed"},
    )
    assert main(["--config", str(path), command]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("feedbot: source 'news': ") and "HTML page, not a feed" in err[0]
    assert 'kind = "page"' in err[0]


def test_a_feed_source_that_is_down_at_start_up_does_not_stop_the_service(
    make_config: Callable[..., Path],
    source: FakeSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A passing outage is its polls' business: the start-up check only warns."""
    from feedbot.feed_check import refuse_html_feeds

    source.misbehave("/news.atom", "status", status=503, times=10)
    path = with_sources(
        make_config(source.url + "/"),
        {"id": "news", "name": "News", "url": source.url + "/news.atom", "kind": "feed"},
    )
    ctx = open_context(load_settings(path, env={}))
    try:
        refuse_html_feeds(list(ctx.pipelines.values()))  # no ConfigError
    finally:
        ctx.close()
    assert "source news not checked at start" in caplog.text


def test_a_feed_source_that_hangs_at_start_up_holds_the_start_only_briefly(
    make_config: Callable[..., Path],
    source: FakeSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The check gives a feed a few seconds, not the fetch's whole deadline."""
    from feedbot.feed_check import refuse_html_feeds

    source.misbehave("/news.atom", "slow", seconds=30)
    path = with_sources(
        make_config(source.url + "/", fetch={"deadline": 20.0, "read_timeout": 20.0}),
        {"id": "news", "name": "News", "url": source.url + "/news.atom", "kind": "feed"},
    )
    ctx = open_context(load_settings(path, env={}))
    started = time.monotonic()
    try:
        refuse_html_feeds(list(ctx.pipelines.values()), seconds=0.5)  # no ConfigError
    finally:
        ctx.close()
    assert time.monotonic() - started < 0.5 + 1.0
    assert "source news not checked at start (no answer within 0.5s)" in caplog.text


def test_subscribers_lists_the_sources_each_chat_follows(
    make_config: Callable[..., Path], source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_sources(make_config(source.url + "/"), page_source("b", source.url + "/b/"))
    ctx = open_context(load_settings(path, env={}))
    keys = {s.id: s.key for s in ctx.settings.feeds.sources}
    now = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    ctx.bot_store.subscribe(11, "private", now, title="Ann", follow=[keys["embassy-uk"]])
    ctx.bot_store.subscribe(12, "private", now, title="Bob", follow=list(keys.values()))
    ctx.bot_store.subscribe(13, "private", now, title="Cy", follow=[keys["b"]])
    ctx.bot_store.set_following(13, keys["b"], False)  # follows nothing now
    ctx.close()

    assert main(["--config", str(path), "subscribers"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[:-1]}
    assert lines["11"].endswith("Ann  follows embassy-uk")
    assert lines["12"].endswith("Bob  follows embassy-uk,b")
    assert lines["13"].endswith("Cy  follows -")

    assert main(["--config", str(path), "--json", "subscribers"]) == 0
    rows = json.loads(capsys.readouterr().out)["subscribers"]
    assert {r["chat_id"]: r["sources"] for r in rows} == {
        11: ["embassy-uk"],
        12: ["embassy-uk", "b"],
        13: [],
    }
