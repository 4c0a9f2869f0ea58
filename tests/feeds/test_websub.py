"""WebSub: feeds name the hub, and the hub is pinged after each change.

A fake hub on 127.0.0.1 records the publish pings; it can answer with an error,
answer too slowly, or be closed so that connections are refused.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import feedparser
import pytest
from prometheus_client import REGISTRY

from feeds.config import load_feeds_file
from feeds.fetch import Fetcher
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.conftest import ConfigFactory
from tests.feeds.test_pipeline import HOME, NEW_ITEM
from tests.support.fake_source import FakeSource

PUBLIC = "http://feeds.test"
TOPICS = {
    f"{PUBLIC}/feeds/statements.atom",
    f"{PUBLIC}/feeds/statements.rss",
    f"{PUBLIC}/feeds/statements.json",
    f"{PUBLIC}/feeds/counters.atom",
}
# The source's own copies (/feeds/<id>/…) are topics too: readers subscribe to them.
SOURCE_TOPICS = {t.replace("/feeds/", "/feeds/embassy-uk/") for t in TOPICS}
ALL_TOPICS = TOPICS | SOURCE_TOPICS


class FakeHub:
    """Records each POST (its content type and form fields) and answers ``status``."""

    def __init__(self) -> None:
        self.status = 204
        self.delay = 0.0
        self.pings: list[dict[str, list[str]]] = []
        self.content_types: list[str] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hub._lock:
                    hub.pings.append(parse_qs(body.decode("ascii"), strict_parsing=True))
                    hub.content_types.append(self.headers.get("Content-Type", ""))
                if hub.delay:
                    hub._release.wait(hub.delay)
                self.send_response(hub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self._open = True

    @property
    def topics(self) -> list[str]:
        with self._lock:
            return [url for ping in self.pings for url in ping["hub.url"]]

    def close(self) -> None:
        """Stop listening: from now on connections to ``url`` are refused."""
        if self._open:
            self._open = False
            self._release.set()
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(5)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    h = FakeHub()
    yield h
    h.close()


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(
    make_config: ConfigFactory, store: Store, source: FakeSource
) -> Iterator[PipelineFactory]:
    fetchers: list[Fetcher] = []

    def make(env: dict[str, str] | None = None, **sections: dict[str, Any]) -> Pipeline:
        settings = load_feeds_file(make_config(source.url + "/", **sections), env=env or {})
        fetcher = Fetcher(settings.fetch, sleep=lambda _s: None)
        fetchers.append(fetcher)
        return Pipeline(settings, store, fetcher, sleep=lambda _s: None)

    yield make
    for f in fetchers:
        f.close()


def pings(result: str) -> float:
    return REGISTRY.get_sample_value("feedbot_websub_pings_total", {"result": result}) or 0.0


def test_feeds_name_the_hub(make_pipeline: PipelineFactory, hub: FakeHub) -> None:
    pipeline = make_pipeline(feeds={"websub_hub": hub.url})
    assert pipeline.poll().result == "ok"
    folder = pipeline.config.publish.folder
    for name in ("statements.atom", "counters.atom"):
        parsed = feedparser.parse((folder / name).read_bytes())
        assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
        hubs = [link.href for link in parsed.feed.links if link.rel == "hub"]
        assert hubs == [hub.url], name
    doc = json.loads((folder / "statements.json").read_bytes())
    assert doc["hubs"] == [{"type": "WebSub", "url": hub.url}]


def test_the_rss_feed_names_the_hub(make_pipeline: PipelineFactory, hub: FakeHub) -> None:
    pipeline = make_pipeline(feeds={"websub_hub": hub.url})
    assert pipeline.poll().result == "ok"
    parsed = feedparser.parse((pipeline.config.publish.folder / "statements.rss").read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.feed.link == f"{PUBLIC}/"  # the channel's page, not the hub
    assert [link.href for link in parsed.feed.links if link.rel == "hub"] == [hub.url]


def test_each_changed_topic_is_pinged_and_unchanged_polls_ping_nothing(
    make_pipeline: PipelineFactory, hub: FakeHub, source: FakeSource
) -> None:
    # Five entries a document: the first poll also writes archive pages, which are not topics.
    pipeline = make_pipeline(feeds={"websub_hub": hub.url, "entries": 5})
    ok_before = pings("ok")
    outcome = pipeline.poll()
    assert outcome.result == "ok"
    assert any(name.startswith("archive/") for name in outcome.feeds_written)
    assert sorted(hub.topics) == sorted(ALL_TOPICS)  # one request per topic, each once
    assert all(p.keys() == {"hub.mode", "hub.url"} for p in hub.pings)
    assert all(p["hub.mode"] == ["publish"] and len(p["hub.url"]) == 1 for p in hub.pings)
    assert all(ct.startswith("application/x-www-form-urlencoded") for ct in hub.content_types)
    assert pings("ok") - ok_before == 8

    again = pipeline.poll()  # 304 from the source: nothing rewritten, nothing to announce
    assert again.result == "not_modified" and again.feeds_written == []
    assert len(hub.pings) == 8

    source.set_body("/", HOME.replace('<ul class="news-list">', NEW_ITEM, 1))
    changed = pipeline.poll()
    assert changed.changes is not None and len(changed.changes.new) == 1
    new_pings = hub.topics[8:]
    assert {
        f"{PUBLIC}/feeds/statements.atom",
        f"{PUBLIC}/feeds/statements.rss",
        f"{PUBLIC}/feeds/statements.json",
        f"{PUBLIC}/feeds/embassy-uk/statements.atom",
    } <= set(new_pings)
    expected = {f"{PUBLIC}/feeds/{n}" for n in changed.feeds_written} & ALL_TOPICS
    assert sorted(new_pings) == sorted(expected)


def test_publish_on_its_own_pings_what_it_rewrote(
    make_pipeline: PipelineFactory, hub: FakeHub
) -> None:
    pipeline = make_pipeline(feeds={"websub_hub": hub.url})
    pipeline.poll()
    assert pipeline.publish() == []
    assert len(hub.pings) == 8  # nothing rewritten, nothing pinged
    (pipeline.config.publish.folder / "statements.rss").unlink()
    assert pipeline.publish() == ["statements.rss"]
    assert hub.topics[8:] == [f"{PUBLIC}/feeds/statements.rss"]


def test_the_hub_can_be_set_from_the_environment(
    make_pipeline: PipelineFactory, hub: FakeHub
) -> None:
    pipeline = make_pipeline(env={"FEEDBOT_WEBSUB_HUB": hub.url})
    assert pipeline.config.publish.websub_hub == hub.url
    pipeline.poll()
    assert sorted(hub.topics) == sorted(ALL_TOPICS)


def test_a_hub_answering_errors_does_not_fail_the_poll(
    make_pipeline: PipelineFactory, hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="feeds.websub")
    hub.status = 500
    pipeline = make_pipeline(feeds={"websub_hub": hub.url})
    errors_before = pings("http_error")
    outcome = pipeline.poll()
    assert outcome.result == "ok" and outcome.ok
    assert {"statements.atom", "statements.rss", "statements.json", "counters.atom"} <= set(
        outcome.feeds_written
    )
    assert (pipeline.config.publish.folder / "statements.atom").exists()
    assert sorted(hub.topics) == sorted(ALL_TOPICS)  # the hub answered: every topic tried
    assert pings("http_error") - errors_before == 8
    warnings = [r for r in caplog.records if r.name == "feeds.websub"]
    assert len(warnings) == 8 and all("HTTP 500" in r.getMessage() for r in warnings)
    last = pipeline.store.last_poll()
    assert last is not None and last.result == "ok"


def test_a_hub_refusing_connections_does_not_fail_the_poll(
    make_pipeline: PipelineFactory, hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="feeds.websub")
    hub.close()
    pipeline = make_pipeline(feeds={"websub_hub": hub.url})
    unreachable, skipped = pings("unreachable"), pings("skipped")
    outcome = pipeline.poll()
    assert outcome.result == "ok"
    assert (pipeline.config.publish.folder / "statements.json").exists()
    # One refused connection is enough: the other topics are not each tried in turn.
    assert pings("unreachable") - unreachable == 1
    assert pings("skipped") - skipped == 7
    assert any(
        r.levelno == logging.WARNING and "not reachable" in r.getMessage() for r in caplog.records
    )


def test_a_hub_too_slow_to_answer_does_not_hold_the_poll(
    make_pipeline: PipelineFactory, hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="feeds.websub")
    hub.delay = 30
    pipeline = make_pipeline(feeds={"websub_hub": hub.url}, fetch={"read_timeout": 0.3})
    timeouts = pings("timeout")
    outcome = pipeline.poll()
    assert outcome.result == "ok"
    assert len(hub.pings) == 1  # the rest of the round is skipped after the timeout
    assert pings("timeout") - timeouts == 1
    assert any("did not answer" in r.getMessage() for r in caplog.records)


def test_without_a_hub_feeds_carry_no_hub_and_nobody_is_pinged(
    make_pipeline: PipelineFactory, hub: FakeHub
) -> None:
    pipeline = make_pipeline()
    assert pipeline.config.publish.websub_hub is None
    assert pipeline.poll().result == "ok"
    folder = pipeline.config.publish.folder
    for name in ("statements.atom", "statements.rss", "counters.atom"):
        parsed = feedparser.parse((folder / name).read_bytes())
        assert parsed.bozo == 0
        assert [link for link in parsed.feed.links if link.rel == "hub"] == []
    assert "hubs" not in json.loads((folder / "statements.json").read_bytes())
    assert hub.pings == []
