"""Bad answers from the source, through the real poll pipeline.

The spec's promise ("Bad input"): the poll fails with a logged, counted error, the
store and the feed files stay exactly as they were, polling backs off and recovers,
and no statement is lost or stored twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from prometheus_client import REGISTRY

from feeds.config import FeedsConfig, load_feeds_file
from feeds.errors import (
    ParseError,
    SourceError,
    SourceHTTPError,
    SourceNotHTML,
    SourceTimeout,
    SourceTooLarge,
    SourceUnreachable,
    TooManyRedirects,
    error_label,
)
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.support.fake_source import DEFAULT_ROOT, FakeSource

INDEX = (DEFAULT_ROOT / "index.html").read_bytes()
STATEMENTS_ON_INDEX = 11  # ten listed and the featured one

POLL_SECONDS = 10
BACKOFF_MAX = 60
FETCH = {
    "connect_timeout": 0.5,
    "read_timeout": 0.3,
    "deadline": 0.6,
    "max_bytes": 1_000_000,
    "retries": 1,
    "max_retry_after": 1,
}
XML_FEEDS = ("statements.atom", "statements.rss", "counters.atom")
XML_FORBIDDEN = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@pytest.fixture
def settings(make_config: Callable[..., Path], source: FakeSource) -> FeedsConfig:
    """The conftest settings with small time limits and a known back-off."""
    path = make_config(
        source.url + "/",
        fetch=FETCH,
        source={"poll_seconds": POLL_SECONDS, "backoff_max_seconds": BACKOFF_MAX},
    )
    return load_feeds_file(path, env={})


def feed_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def polls_total(result: str) -> float:
    return REGISTRY.get_sample_value("feedbot_polls_total", {"result": result}) or 0.0


def poll_errors_total(kind: str) -> float:
    return REGISTRY.get_sample_value("feedbot_poll_errors_total", {"kind": kind}) or 0.0


def good_first_poll(pipeline: Pipeline, store: Store, settings: FeedsConfig) -> dict[str, bytes]:
    first = pipeline.poll()
    assert first.result == "ok", first.error
    assert first.changes is not None
    assert len(first.changes.new) == STATEMENTS_ON_INDEX
    assert store.count_statements() == STATEMENTS_ON_INDEX
    files = feed_files(settings.publish.folder)
    assert {"statements.atom", "statements.rss", "statements.json", "counters.atom"} <= set(files)
    return files


# --- every bad answer: fail, keep everything, back off, recover -----------------------


@dataclass(frozen=True)
class Bad:
    name: str
    serve: Callable[[FakeSource], None]
    error: type[SourceError]
    label: str
    retry_after: float | None = None  # what the source asked for, if anything


def misbehave(kind: str, **opts: object) -> Callable[[FakeSource], None]:
    return lambda src: src.misbehave("/", kind, **opts)  # type: ignore[arg-type]


def body(
    data: bytes, content_type: str = "text/html; charset=utf-8"
) -> Callable[[FakeSource], None]:
    return lambda src: src.set_body("/", data, content_type)


NO_MATCH = b"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Redesigned</title></head>
<body><main><section class="press"><div class="card"><h2>A statement</h2>
<p>The site moved to a new layout that the profile does not know.</p></div></section></main>
</body></html>
"""

BAD_ANSWERS = [
    Bad("500 forever", misbehave("status", status=500), SourceHTTPError, "http_500"),
    Bad("404", misbehave("status", status=404), SourceHTTPError, "http_404"),
    Bad(
        "429 with Retry-After",
        misbehave("status", status=429, retry_after="30"),
        SourceHTTPError,
        "http_429",
        retry_after=30,
    ),
    Bad(
        "503 with an absurd Retry-After",
        misbehave("status", status=503, retry_after="9" * 30),
        SourceHTTPError,
        "http_503",
        retry_after=float("9" * 30),
    ),
    Bad("slow", misbehave("slow", seconds=30), SourceTimeout, "timeout"),
    Bad(
        "drip",
        misbehave("drip", interval=0.05, chunk=64, size=100_000),
        SourceTimeout,
        "timeout",
    ),
    Bad("huge", misbehave("huge", size=2_000_000_000), SourceTooLarge, "too_large"),
    Bad(
        "huge without Content-Length",
        misbehave("huge", size=2_000_000_000, content_length=False),
        SourceTooLarge,
        "too_large",
    ),
    Bad("gzip bomb", misbehave("gzip_bomb", size=50_000_000), SourceTooLarge, "too_large"),
    Bad("garbage bytes", misbehave("garbage", size=4096), ParseError, "parse"),
    Bad("non-HTML", misbehave("not_html"), SourceNotHTML, "not_html"),
    Bad("redirect loop", misbehave("redirect_loop"), TooManyRedirects, "redirects"),
    Bad("connection closed", misbehave("close"), SourceUnreachable, "unreachable"),
    Bad("profile matches nothing", body(NO_MATCH), ParseError, "parse"),
    Bad("markup cut before the list", body(INDEX[: INDEX.index(b"<main>")]), ParseError, "parse"),
    Bad("empty 200", body(b""), ParseError, "parse"),
]


@pytest.mark.parametrize("bad", BAD_ANSWERS, ids=[b.name for b in BAD_ANSWERS])
def test_bad_answer_keeps_store_and_feeds_and_backs_off(
    bad: Bad,
    pipeline: Pipeline,
    store: Store,
    settings: FeedsConfig,
    source: FakeSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = settings.source.url
    files = good_first_poll(pipeline, store, settings)
    before = store.statements()
    failed_metric = polls_total("failed")
    error_metric = poll_errors_total(bad.label)

    bad.serve(source)
    delays = []
    caplog.set_level(logging.WARNING, logger="feeds.pipeline")
    for n in (1, 2):
        outcome = pipeline.poll()

        assert outcome.result == "failed"
        assert not outcome.ok
        assert isinstance(outcome.error, bad.error), outcome.error
        assert error_label(outcome.error) == bad.label
        assert outcome.consecutive_failures == n
        assert "poll failed" in outcome.summary()
        # Nothing stored, nothing lost, no feed file touched.
        assert store.statements() == before
        assert feed_files(settings.publish.folder) == files
        # Recorded, counted, logged.
        newest = store.recent_polls(1)[0]
        assert newest.result == "failed"
        assert newest.error_kind == bad.label
        assert newest.error
        assert store.source_state(url).consecutive_failures == n
        assert polls_total("failed") == failed_metric + n
        assert poll_errors_total(bad.label) == error_metric + n
        assert POLL_SECONDS <= outcome.next_delay <= BACKOFF_MAX
        delays.append(outcome.next_delay)

    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "feeds.pipeline" and r.levelno == logging.WARNING
    ]
    assert sum(f"({bad.label}, " in m for m in warnings) == 2, warnings

    # Exponential back-off with equal jitter: 1 failure waits 10-20 s, 2 failures 20-40 s,
    # unless the source asked for longer (up to the cap).
    assert delays[1] >= delays[0]
    if bad.retry_after is None:
        assert POLL_SECONDS <= delays[0] <= 2 * POLL_SECONDS
        assert 2 * POLL_SECONDS <= delays[1] <= 4 * POLL_SECONDS
    else:
        wanted = min(bad.retry_after, BACKOFF_MAX)
        assert all(wanted <= d <= BACKOFF_MAX for d in delays)
        until = store.source_state(url).retry_after_until
        assert until is not None
        left = (until - dt.datetime.now(dt.UTC)).total_seconds()
        assert wanted - 10 <= left <= wanted

    # The source is back: the page is read again (no 304 shortcut), nothing is new.
    source.clear()
    source.conditional = False
    recovered = pipeline.poll()
    assert recovered.result == "ok", recovered.error
    assert recovered.changes is not None
    assert recovered.changes.new == []
    assert recovered.changes.edited == []
    assert recovered.consecutive_failures == 0
    assert recovered.next_delay <= POLL_SECONDS * 1.1
    state = store.source_state(url)
    assert state.consecutive_failures == 0
    assert state.retry_after_until is None
    assert store.recent_polls(1)[0].result == "ok"
    after = store.statements()
    assert store.count_statements() == STATEMENTS_ON_INDEX
    assert [(s.seq, s.id, s.title) for s in after] == [(s.seq, s.id, s.title) for s in before]


def test_back_off_grows_to_the_cap_and_resets_on_recovery(
    pipeline: Pipeline, store: Store, settings: FeedsConfig, source: FakeSource
) -> None:
    url = settings.source.url
    good_first_poll(pipeline, store, settings)
    source.misbehave("/", "status", status=502)
    delays = [pipeline.poll().next_delay for _ in range(8)]

    assert all(d <= BACKOFF_MAX for d in delays)
    assert delays[1] >= delays[0]
    assert all(d >= BACKOFF_MAX / 2 for d in delays[3:])  # ceiling reached: half fixed
    assert store.source_state(url).consecutive_failures == 8
    assert store.poll_counts()["failed"] == 8
    assert source.count("/") == 1 + 8 * (FETCH["retries"] + 1)

    # Back with the same page: a conditional GET answers 304, which is a success too.
    source.clear()
    outcome = pipeline.poll()
    assert outcome.result == "not_modified"
    assert outcome.consecutive_failures == 0
    assert POLL_SECONDS * 0.9 <= outcome.next_delay <= POLL_SECONDS * 1.1
    assert store.source_state(url).consecutive_failures == 0
    assert store.count_statements() == STATEMENTS_ON_INDEX


# --- pages that change shape but are still readable -----------------------------------


def without_item(page: bytes, href: bytes) -> bytes:
    items = re.findall(rb'<li class="news-item">.*?</li>\s*', page, flags=re.S)
    victim = next(i for i in items if href in i)
    return page.replace(victim, b"")


@pytest.mark.parametrize(
    ("changed", "gone"),
    [
        (without_item(INDEX, b"/fnapr/6937"), 1),
        (INDEX[: INDEX.index(b'href="/fnapr/6935"')], 5),  # cut off mid-list
    ],
    ids=["one statement dropped", "page cut off mid-list"],
)
def test_statements_missing_from_the_page_are_kept(
    changed: bytes,
    gone: int,
    pipeline: Pipeline,
    store: Store,
    settings: FeedsConfig,
    source: FakeSource,
) -> None:
    good_first_poll(pipeline, store, settings)
    before = {s.id: s for s in store.statements()}

    source.set_body("/", changed)
    outcome = pipeline.poll()

    assert outcome.result == "ok", outcome.error
    assert outcome.page is not None
    missing = before.keys() - {e.id for e in outcome.page.entries}
    assert len(missing) == gone
    assert outcome.changes is not None
    assert outcome.changes.new == []
    assert outcome.changes.edited == []
    after = {s.id: s for s in store.statements()}
    assert after.keys() == before.keys()
    assert store.count_statements() == STATEMENTS_ON_INDEX
    for sid in missing:
        kept, was = after[sid], before[sid]
        assert (kept.title, kept.summary, kept.url, kept.published) == (
            was.title,
            was.summary,
            was.url,
            was.published,
        )
    # Still published.
    feed = feedparser.parse((settings.publish.folder / "statements.atom").read_bytes())
    assert feed.bozo == 0
    assert len(feed.entries) == STATEMENTS_ON_INDEX
    assert {before[sid].title for sid in missing} <= {e.title for e in feed.entries}

    # The full page again: nothing is new, nothing doubled.
    source.clear()
    again = pipeline.poll()
    assert again.result == "ok"
    assert again.changes is not None
    assert again.changes.new == []
    assert store.count_statements() == STATEMENTS_ON_INDEX


# --- titles with markup and control characters ----------------------------------------

TRICKY_TITLES = [
    "Sanctions &amp; <b>counter-measures</b>: a comment",
    "<script>alert('x')</script>Statement on &lt;script&gt; tags",
    "Control\x01 characters\x0b in a\x0c title\x7f",
    "Tom &amp; Jerry &lt;b&gt;not bold&lt;/b&gt; ]]> the end",
]


def tricky_page() -> bytes:
    items = "\n".join(
        f"""<li class="news-item">
  <span class="news-date">0{n + 1}.07.2020</span> -
  <a class="news-title" href="/fnapr/80{n}">{title}</a>
  <p class="news-lead">Lead {n} &amp; <i>more</i>\x01 text\x0b here</p>
</li>"""
        for n, title in enumerate(TRICKY_TITLES)
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Tricky</title></head>
<body><main><ul class="news-list">
{items}
</ul></main></body></html>
""".encode()


def test_titles_with_markup_and_control_characters_yield_valid_feeds(
    pipeline: Pipeline, store: Store, settings: FeedsConfig, source: FakeSource
) -> None:
    source.set_body("/", tricky_page())
    outcome = pipeline.poll()
    assert outcome.result == "ok", outcome.error
    assert store.count_statements() == len(TRICKY_TITLES)
    stored = {s.title for s in store.statements()}
    assert "Sanctions & counter-measures: a comment" in stored
    assert any("Statement on <script> tags" in t for t in stored)
    assert any(t == "Tom & Jerry <b>not bold</b> ]]> the end" for t in stored)
    assert not any(re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", t) for t in stored)

    folder = settings.publish.folder
    for name in XML_FEEDS:
        data = (folder / name).read_bytes()
        assert not XML_FORBIDDEN.search(data), name
        etree.fromstring(data)  # strict XML parser: raises on anything ill-formed
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
    atom = feedparser.parse((folder / "statements.atom").read_bytes())
    rss = feedparser.parse((folder / "statements.rss").read_bytes())
    assert {e.title for e in atom.entries} == stored
    assert {e.title for e in rss.entries} == stored
    assert all("&amp;" not in e.title for e in atom.entries)  # escaped once, not twice
    assert all("Lead" in e.summary and "&" in e.summary for e in atom.entries)
    items = json.loads((folder / "statements.json").read_text("utf-8"))["items"]
    assert {i["title"] for i in items} == stored
