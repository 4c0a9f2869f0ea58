"""The poll cycle end to end: the fixture site on a local server, a real store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from feeds.fetch import Fetcher
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.conftest import FIXTURES
from tests.support.fake_source import FakeSource

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")
NEW_ITEM = """<ul class="news-list">
      <li class="news-item">
        <span class="news-date">06.07.2020</span> - <a class="news-title" href="/fnapr/6942">A brand new statement</a>
        <p class="news-lead">Published after the first poll.</p>
      </li>"""


def feed_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.atom"))} | {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("statements.*"))
    }


def test_first_poll_records_the_page_without_announcing_it(
    pipeline: Pipeline, store: Store
) -> None:
    outcome = pipeline.poll()
    assert outcome.result == "ok", outcome.error
    assert outcome.changes is not None
    assert outcome.changes.first_fill is True
    assert len(outcome.changes.new) == 11
    assert store.count_statements() == 11
    assert [c.days_on(dt.date(2020, 7, 6)) for c in store.counters()] == [855, 847]
    folder = pipeline.config.publish.folder
    assert {"statements.atom", "statements.rss", "statements.json", "counters.atom"} <= {
        p.name for p in folder.iterdir()
    }
    poll = store.last_poll()
    assert poll is not None and poll.result == "ok" and poll.new_statements == 11


def test_unchanged_page_is_a_cheap_conditional_poll(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    before = feed_files(pipeline.config.publish.folder)
    outcome = pipeline.poll()
    assert outcome.result == "not_modified"
    assert outcome.feeds_written == []
    assert feed_files(pipeline.config.publish.folder) == before
    home_requests = [r for r in source.requests if r.path == "/"]
    assert "If-None-Match" in home_requests[-1].headers
    assert store.count_statements() == 11


def test_a_new_statement_is_reported_once(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    pipeline.fetch_full_texts(20)  # the featured statement's date is on its own page
    source.set_body("/", HOME.replace('<ul class="news-list">', NEW_ITEM, 1))
    outcome = pipeline.poll()
    assert outcome.changes is not None and not outcome.changes.first_fill
    assert [s.title for s in outcome.changes.new] == ["A brand new statement"]
    assert store.count_statements() == 12
    assert store.statements(limit=1)[0].title == "A brand new statement"

    source.conditional = False  # the same page again, in full: nothing new
    again = pipeline.poll()
    assert again.result == "ok" and again.changes is not None
    assert again.changes.new == [] and again.changes.edited == []
    assert store.count_statements() == 12


def test_a_statement_dropped_from_the_page_is_kept(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    start = HOME.index('<li class="news-item">')
    end = HOME.index("</li>", start) + len("</li>")
    source.set_body("/", HOME[:start] + HOME[end:])
    outcome = pipeline.poll()
    assert outcome.result == "ok"
    assert store.count_statements() == 11
    assert store.statement(source.url + "/fnapr/6940") is not None


def test_an_edited_title_keeps_its_id_and_history(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    url = source.url + "/fnapr/6937"
    old = store.statement(url)
    assert old is not None
    source.set_body(
        "/", HOME.replace("Comment by the Information and Press Department", "Comment (updated)")
    )
    outcome = pipeline.poll()
    assert outcome.changes is not None
    assert [s.id for s in outcome.changes.edited] == [url]
    new = store.statement(url)
    assert (
        new is not None and new.title.startswith("Comment (updated)") and new.edited_at is not None
    )
    assert [v.title for v in store.versions(url)] == [old.title, new.title]
    assert store.count_statements() == 11


def test_links_off_the_source_host_are_not_followed(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    source.set_body(
        "/", HOME.replace('href="/fnapr/6940"', 'href="http://elsewhere.test/fnapr/6940"')
    )
    pipeline.poll()
    pipeline.fetch_full_texts(20)
    s = store.statement("http://elsewhere.test/fnapr/6940")
    assert s is not None and s.content is None


def test_feeds_are_the_same_bytes_after_a_restart(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    pipeline.poll()
    folder = pipeline.config.publish.folder
    before = feed_files(folder)
    mtimes = {p: p.stat().st_mtime_ns for p in folder.rglob("*.atom")}

    restarted_store = Store(pipeline.config.database_url)
    restarted = Pipeline(pipeline.config, restarted_store, Fetcher(pipeline.config.fetch))
    assert restarted.publish() == []  # nothing to rewrite
    assert feed_files(folder) == before
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.atom")} == mtimes
    restarted.fetcher.close()
    restarted_store.close()
