"""Feeds as a feed reader reads them: feedparser, RFC 5005 archives, JSON Feed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import feedparser
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds import render
from feeds.config import load_feeds_file
from feeds.fetch import Fetcher
from feeds.model import Statement, StoredCounter
from feeds.pipeline import Pipeline
from feeds.store import Store
from feeds.text import strip_controls
from tests.conftest import ConfigFactory
from tests.support.fake_source import FakeSource

CTX = render.FeedContext(
    public_url="http://feeds.test", source_url="https://source.test/", title="Statements"
)


def read(path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def test_atom_and_rss_read_cleanly_with_real_dates(pipeline: Pipeline, source: FakeSource) -> None:
    pipeline.poll()
    pipeline.fetch_full_texts(20)  # the featured statement's date is on its own page
    folder = pipeline.config.publish.folder
    atom = read(folder / "statements.atom")
    rss = read(folder / "statements.rss")
    assert atom.version == "atom10" and rss.version == "rss20"
    for parsed in (atom, rss):
        assert len(parsed.entries) == 11
        ids = [e.id for e in parsed.entries]
        assert len(set(ids)) == 11
        assert all(i.startswith(source.url + "/fnapr/") for i in ids)
    first = atom.entries[0]
    assert first.title.startswith("President Vladimir Putin's speech")
    assert first.link == source.url + "/fnapr/6940"
    assert first.published_parsed[:3] == (2020, 6, 23)  # midnight in London is 23:00 UTC
    assert first.updated_parsed[:3] == (2020, 6, 23)
    assert "Kremlin wall" in first.content[0].value  # the full text from the article page
    # A document's own `updated` is when it last changed: here, the poll that stored it.
    stored = max(s.first_seen for s in pipeline.store.statements())
    assert dt.datetime.fromisoformat(atom.feed.updated) == stored
    links = {link.rel: link.href for link in atom.feed.links}
    assert links["self"] == "http://feeds.test/feeds/statements.atom"


def test_json_feed(pipeline: Pipeline) -> None:
    pipeline.poll()
    pipeline.fetch_full_texts(20)
    doc = json.loads((pipeline.config.publish.folder / "statements.json").read_text("utf-8"))
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"] == "http://feeds.test/feeds/statements.json"
    assert len(doc["items"]) == 11
    item = doc["items"][0]
    assert {"id", "url", "title", "content_html", "date_published", "date_modified"} <= item.keys()
    assert dt.datetime.fromisoformat(item["date_published"]).date() == dt.date(2020, 6, 24)


def test_counters_feed_has_one_entry_a_day_per_counter(pipeline: Pipeline) -> None:
    pipeline.poll()
    parsed = read(pipeline.config.publish.folder / "counters.atom")
    days = pipeline.config.publish.counter_days
    assert len(parsed.entries) == 2 * days
    assert len({e.id for e in parsed.entries}) == 2 * days
    today = render.LONDON and dt.datetime.now(render.LONDON).date()
    salisbury = (today - dt.date(2018, 3, 4)).days
    assert parsed.entries[0].title.startswith(
        f"{salisbury} days have passed since the Salisbury incident"
    )


def walk_archives(folder: Path) -> list[str]:
    """Follow prev-archive links from the subscription document, as a reader would."""
    ids: list[str] = []
    doc = read(folder / "statements.atom")
    seen = 0
    while True:
        ids += [e.id for e in doc.entries]
        prev = [link.href for link in doc.feed.links if link.rel == "prev-archive"]
        if not prev:
            return ids
        name = prev[0].removeprefix("http://feeds.test/feeds/")
        doc = read(folder / name)
        assert (
            doc.feed.get("fh_archive") is not None or b"<fh:archive" in (folder / name).read_bytes()
        )
        seen += 1
        assert seen < 100


def test_archives_let_a_reader_walk_the_whole_history(
    make_config: ConfigFactory, store: Store, source: FakeSource
) -> None:
    settings = load_feeds_file(make_config(source.url + "/", feeds={"entries": 4}), env={})
    fetcher = Fetcher(settings.fetch)
    pipeline = Pipeline(settings, store, fetcher, sleep=lambda _s: None)
    pipeline.poll()
    folder = settings.publish.folder
    # An archive is cut only when 4 statements remain for the subscription document.
    assert len(read(folder / "statements.atom").entries) == 7
    assert sorted((folder / "archive").iterdir()) == [folder / "archive" / "statements-1.atom"]
    ids = walk_archives(folder)
    assert set(ids) == {s.id for s in store.statements()}
    assert len(set(ids)) == 11
    # Archive documents do not change when nothing in them changed.
    before = (folder / "archive" / "statements-1.atom").read_bytes()
    assert pipeline.publish() == []
    assert (folder / "archive" / "statements-1.atom").read_bytes() == before
    fetcher.close()


def statement(n: int, title: str, summary: str, content: str | None) -> Statement:
    seen = dt.datetime(2020, 7, 6, 12, tzinfo=dt.UTC)
    return Statement(
        seq=n,
        id=f"tag:feedbot.invalid,2020:statement/{n}",
        url=None,
        title=title,
        summary=summary,
        content=content,
        published=dt.date(2020, 7, 1) + dt.timedelta(days=n),
        featured=False,
        first_seen=seen,
        last_seen=seen,
        edited_at=None,
    )


HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("<>&\"'\x00\x01\x08\x0b\x0c\x1f\x7f\ufffe ]]>")),
        st.characters(blacklist_categories=("Cs",)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(HOSTILE, HOSTILE, st.one_of(st.none(), HOSTILE)), min_size=1, max_size=4))
def test_any_text_gives_valid_feeds(items: list[tuple[str, str, str | None]]) -> None:
    statements = [statement(n, *item) for n, item in enumerate(items)]
    atom = render.statements_atom(statements, CTX, "/feeds/statements.atom")
    rss = render.statements_rss(statements, CTX, "/feeds/statements.rss")
    for body, kind in ((atom, "atom10"), (rss, "rss20")):
        parsed = feedparser.parse(body)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.version == kind
        assert len(parsed.entries) == len(items)
    # The exact text, read back by a strict XML parser (feedparser "repairs" some
    # text that looks like mojibake, so it is not the judge of exactness).
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [t.text or "" for t in etree.fromstring(atom).findall("a:entry/a:title", ns)]
    for got, (title, _summary, _content) in zip(titles, items, strict=True):
        assert got == (strip_controls(title).strip() or "(untitled statement)")
    doc = json.loads(render.statements_json(statements, CTX, "/feeds/statements.json"))
    assert [i["title"] for i in doc["items"]] == [t for t, _s, _c in items]


def test_same_data_renders_the_same_bytes() -> None:
    items = [statement(n, f"Title {n}", "Lead", "Text") for n in range(5)]
    first = render.statements_atom(items, CTX, "/feeds/statements.atom")
    assert render.statements_atom(items, CTX, "/feeds/statements.atom") == first
    assert render.statements_rss(items, CTX, "/feeds/statements.rss") == render.statements_rss(
        items, CTX, "/feeds/statements.rss"
    )


def test_counter_wording_is_singular_for_one_day() -> None:
    counter = StoredCounter(
        key="x",
        subject="the event",
        note=None,
        since=dt.date(2020, 1, 1),
        page_days=1,
        page_as_of=dt.date(2020, 1, 2),
        active=True,
        first_seen=dt.datetime(2020, 1, 2, tzinfo=dt.UTC),
    )
    assert render.counter_line(counter, dt.date(2020, 1, 2)) == "1 day has passed since the event"
    assert render.counter_line(counter, dt.date(2020, 1, 3)) == "2 days have passed since the event"
