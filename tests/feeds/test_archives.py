"""The feeds as an RFC 5005 client and a feed reader see them, across a backfill.

150 statements are stored the way feedbot stores them: a first walk of the
archive pages (newest page first), then a second, longer walk that adds older
statements. After each step the real FeedBuilder publishes into a folder, and
every document written is judged by tests/support/feed_check.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds import render
from feeds.model import Entry, Page, Statement
from feeds.publish import FeedBuilder, publish
from feeds.render import FeedContext
from feeds.store import Store
from tests.support.feed_check import NS, check_document, check_folder, check_json

PUBLIC = "https://feeds.example/prefix/"  # a path prefix, and a trailing slash
FEEDS = PUBLIC + "feeds/"
CTX = FeedContext(
    public_url=PUBLIC,
    source_url="https://source.test/",
    title="Statements",
    subtitle="Statements of the source, as they appear",
)
PER_DOC = 20
PER_PAGE = 10  # statements on one archive page of the source
TODAY = dt.date(2020, 7, 6)
T0 = dt.datetime(2020, 7, 6, 9, tzinfo=dt.UTC)
# A lead that readers used to turn into "unfriendly step ." (RSS description as HTML).
SIC = "They called it an unfriendly step <sic>. Bread & butter, a < b > c."


def entry(k: int) -> Entry:
    """Statement k of the source, k = 0 the newest; three statements a day."""
    title = f"Statement {k} on relations"
    if k == 4:
        title = "Tariffs <b>up</b> & ]]> down"
    return Entry(
        id=f"https://source.test/fnapr/{7000 - k}",
        title=title,
        published=dt.date(2020, 7, 5) - dt.timedelta(days=k // 3),
        summary=SIC if k == 4 else f"The lead of statement {k}.",
        url=f"https://source.test/fnapr/{7000 - k}",
    )


def walk_pages(store: Store, pages: range, start: dt.datetime) -> None:
    """Store archive pages newest first, one transaction each, as backfill does."""
    for n in pages:
        ks = range(n * PER_PAGE, (n + 1) * PER_PAGE)
        page = Page(as_of=None, entries=[entry(k) for k in ks])
        store.apply_page(page, start + dt.timedelta(minutes=n))


@pytest.fixture
def feed_store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    yield store
    store.close()


def builder(store: Store) -> FeedBuilder:
    return FeedBuilder(store, CTX, per_doc=PER_DOC, counter_days=3)


def docs(folder: Path) -> dict[str, Any]:
    """Every document in the folder, checked as a validator would."""
    return check_folder(folder)


def walk(folder: Path) -> list[str]:
    """Entry ids from statements.atom back through prev-archive, as RFC 5005 says."""
    ids: list[str] = []
    name = "statements.atom"
    visited: set[str] = set()
    while name:
        assert name not in visited, f"archive links loop at {name}"
        visited.add(name)
        doc = feedparser.parse((folder / name).read_bytes())
        ids += [e.id for e in doc.entries]
        prev = [link.href for link in doc.feed.links if link.rel == "prev-archive"]
        name = prev[0].removeprefix(FEEDS) if prev else ""
    return ids


def archive_ids(parsed: dict[str, Any]) -> dict[str, list[str]]:
    return {n: [e.id for e in d.entries] for n, d in parsed.items() if n.startswith("archive/")}


def links(doc: Any) -> dict[str, str]:
    return {link.rel: link.href for link in doc.feed.links}


def test_a_backfill_adds_archives_and_never_rewrites_a_full_one(
    feed_store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "feeds"
    walk_pages(feed_store, range(0, 10), T0)  # `backfill --max-pages 10`: 100 statements
    publish(folder, builder(feed_store), TODAY)
    first = docs(folder)
    first_walk = walk(folder)
    assert sorted(first_walk) == sorted(entry(k).id for k in range(100))  # each exactly once
    assert len(archive_ids(first)) == 4  # 100 statements: 4 archives of 20, 20 left over

    old_bytes = {n: (folder / f"archive/statements-{n}.atom").read_bytes() for n in (1, 2, 3)}
    walk_pages(feed_store, range(10, 15), T0 + dt.timedelta(hours=1))  # a full backfill
    publish(folder, builder(feed_store), TODAY)
    second = docs(folder)
    second_walk = walk(folder)
    assert sorted(second_walk) == sorted(entry(k).id for k in range(150))
    assert len(second_walk) == len(set(second_walk)) == 150

    # RFC 5005 4.2: an archive document's entries do not change.
    before, after = archive_ids(first), archive_ids(second)
    assert len(after) == 6
    for name, ids in before.items():
        assert after[name] == ids, name
    # Only the newest of them changed at all: it gained its next-archive link.
    for n, body in old_bytes.items():
        assert (folder / f"archive/statements-{n}.atom").read_bytes() == body
    # The subscription document holds what no archive holds, and is never empty.
    subscription = second["statements.atom"]
    assert PER_DOC <= len(subscription.entries) < 2 * PER_DOC
    assert not {e.id for e in subscription.entries} & {i for ids in after.values() for i in ids}
    # The subscription document's own `updated` moved: it holds what the backfill added.
    assert subscription.feed.updated_parsed > first["statements.atom"].feed.updated_parsed
    assert dt.datetime.fromisoformat(subscription.feed.updated) == T0 + dt.timedelta(
        hours=1, minutes=14
    )


def test_archive_links_follow_rfc_5005_under_the_public_path(
    feed_store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "feeds"
    walk_pages(feed_store, range(0, 8), T0)  # 80 statements: 3 archives
    publish(folder, builder(feed_store), TODAY)
    parsed = docs(folder)
    subscription = links(parsed["statements.atom"])
    assert subscription["self"] == FEEDS + "statements.atom"
    assert subscription["prev-archive"] == FEEDS + "archive/statements-3.atom"
    assert "next-archive" not in subscription and "current" not in subscription
    newest, middle, oldest = (links(parsed[f"archive/statements-{n}.atom"]) for n in (3, 2, 1))
    assert "next-archive" not in newest  # not the subscription document: it is no archive
    assert newest["prev-archive"] == FEEDS + "archive/statements-2.atom"
    assert middle["next-archive"] == FEEDS + "archive/statements-3.atom"
    assert middle["prev-archive"] == FEEDS + "archive/statements-1.atom"
    assert "prev-archive" not in oldest
    for each in (newest, middle, oldest):
        assert each["current"] == FEEDS + "statements.atom"
    for name in ("statements.atom", "statements.rss", "counters.atom"):
        assert links(parsed[name])["self"] == FEEDS + name
    assert parsed["statements.json"]["feed_url"] == FEEDS + "statements.json"
    # Each feed says what it is: the counters feed has its own title and subtitle.
    statements, counters = parsed["statements.atom"].feed, parsed["counters.atom"].feed
    assert statements.subtitle == CTX.subtitle
    assert counters.title != statements.title and counters.subtitle != statements.subtitle


def test_a_lead_with_markup_characters_reads_back_as_that_text(
    feed_store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "feeds"
    walk_pages(feed_store, range(0, 1), T0)
    publish(folder, builder(feed_store), TODAY)
    parsed = docs(folder)
    wanted = entry(4)
    rss = next(e for e in parsed["statements.rss"].entries if e.id == wanted.id)
    # feedparser hands RSS descriptions over as HTML; its text is the lead.
    assert etree.HTML(rss.summary).xpath("string()") == SIC
    assert rss.title == wanted.title  # titles are plain text
    atom = next(e for e in parsed["statements.atom"].entries if e.id == wanted.id)
    assert atom.summary == SIC and atom.title == wanted.title
    item = next(i for i in parsed["statements.json"]["items"] if i["id"] == wanted.id)
    assert item["summary"] == SIC and item["title"] == wanted.title


def updated_everywhere(folder: Path, statement_id: str) -> tuple[str, str, str]:
    """The statement's `updated` in the Atom document holding it, RSS and JSON."""
    parsed = docs(folder)
    atom = next(
        e.updated
        for name, d in parsed.items()
        if name.endswith(".atom") and name != "counters.atom"
        for e in d.entries
        if e.id == statement_id
    )
    rss = next(e.updated for e in parsed["statements.rss"].entries if e.id == statement_id)
    item = next(i for i in parsed["statements.json"]["items"] if i["id"] == statement_id)
    return atom, rss, item["date_modified"]


def test_an_edit_moves_updated_in_atom_rss_and_json(feed_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "feeds"
    walk_pages(feed_store, range(0, 5), T0)  # the newest statement lands in an archive
    publish(folder, builder(feed_store), TODAY)
    newest = entry(0)
    before = updated_everywhere(folder, newest.id)
    archived_before = archive_ids(docs(folder))

    edit_at = T0 + dt.timedelta(days=1)
    edited = Entry(**{**newest.__dict__, "title": "Statement 0, corrected"})
    feed_store.apply_page(Page(as_of=None, entries=[edited]), edit_at)
    written = publish(folder, builder(feed_store), TODAY)

    after = updated_everywhere(folder, newest.id)
    assert all(dt.datetime.fromisoformat(a) == edit_at for a in after), after
    assert all(a != b for a, b in zip(after, before, strict=True))
    assert "statements.rss" in written and "statements.json" in written
    assert archive_ids(docs(folder)) == archived_before  # edited in place, not moved


def test_same_day_statements_have_distinct_times_and_one_order_everywhere(
    feed_store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "feeds"
    walk_pages(feed_store, range(0, 6), T0)
    publish(folder, builder(feed_store), TODAY)
    parsed = docs(folder)
    statement_docs = [
        d for n, d in parsed.items() if n.endswith((".atom", ".rss")) and n != "counters.atom"
    ]
    when: dict[str, tuple[int, ...]] = {}
    for doc in statement_docs:
        instants = [tuple(e.published_parsed) for e in doc.entries]
        # Newest first, and no two entries of a document share an instant.
        assert instants == sorted(set(instants), reverse=True)
        for e, instant in zip(doc.entries, instants, strict=True):
            assert when.setdefault(e.id, instant) == instant  # the same in every document
    for item in parsed["statements.json"]["items"]:
        published = dt.datetime.fromisoformat(item["date_published"]).astimezone(dt.UTC)
        assert tuple(published.timetuple())[:6] == when[item["id"]][:6]
    # Three statements on 4 July, in the page's order, in the feed and in the archive.
    for doc in (parsed["statements.rss"], parsed["archive/statements-1.atom"]):
        day = [e.id for e in doc.entries if e.id in {entry(k).id for k in (3, 4, 5)}]
        assert day == [entry(k).id for k in (3, 4, 5)]


def test_an_empty_store_publishes_valid_empty_feeds(feed_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "feeds"
    written = publish(folder, builder(feed_store), TODAY)
    assert sorted(written) == sorted(
        ["statements.atom", "statements.rss", "statements.json", "counters.atom"]
    )
    parsed = docs(folder)
    assert not (folder / "archive").exists()
    assert parsed["statements.atom"].entries == [] and parsed["statements.rss"].entries == []
    assert parsed["statements.json"]["items"] == []
    assert publish(folder, builder(feed_store), TODAY) == []  # the same bytes again


def test_documents_change_only_when_their_statements_do(feed_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "feeds"
    walk_pages(feed_store, range(0, 6), T0)
    publish(folder, builder(feed_store), TODAY)
    assert publish(folder, builder(feed_store), TODAY) == []
    walk_pages(feed_store, range(6, 8), T0 + dt.timedelta(hours=1))
    written = publish(folder, builder(feed_store), TODAY)
    # 60 -> 80 statements: archives 1-2 stay, archive 2 gains a next-archive link,
    # archive 3 is new; nothing else in the history is rewritten.
    assert "archive/statements-1.atom" not in written
    assert {"archive/statements-2.atom", "archive/statements-3.atom"} <= set(written)


def test_archives_left_by_another_cut_are_removed(feed_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "feeds"
    walk_pages(feed_store, range(0, 6), T0)
    stray = folder / "archive" / "statements-9.atom"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"<feed/>")
    feed_store.save_documents([("archive/statements-9.atom", b"<feed/>", '"x"')], T0)
    written = publish(folder, builder(feed_store), TODAY)
    assert "archive/statements-9.atom" in written
    assert not stray.exists() and feed_store.document("archive/statements-9.atom") is None
    docs(folder)


HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("<>&\"'\x00\x01\x08\x0b\x0c\x1f\x7f\x85\ufffe\ud800\udfff ]]>")),
        st.characters(),
    ),
    min_size=1,
    max_size=40,
)


def hostile_statement(n: int, title: str, summary: str) -> Statement:
    seen = T0 + dt.timedelta(minutes=n)
    return Statement(
        seq=n + 1,
        id=f"tag:feedbot.test,2020:statement/{n}",
        url=None,
        title=title,
        summary=summary,
        content=summary if n % 2 else None,
        published=dt.date(2020, 7, 1),
        featured=False,
        first_seen=seen,
        last_seen=seen,
        edited_at=None,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(HOSTILE, HOSTILE), min_size=1, max_size=4))
def test_any_title_gives_well_formed_atom_rss_and_json(items: list[tuple[str, str]]) -> None:
    statements = [hostile_statement(n, *item) for n, item in enumerate(items)]
    ranks = {s.seq: n for n, s in enumerate(statements)}
    ordered = render.newest_first(statements, ranks)
    atom = render.statements_atom(ordered, CTX, "/feeds/statements.atom", ranks=ranks)
    rss = render.statements_rss(ordered, CTX, "/feeds/statements.rss", ranks)
    doc = check_json(render.statements_json(ordered, CTX, "/feeds/statements.json", ranks))
    for body in (atom, rss):
        parsed = check_document(body, archive=False)
        assert len(parsed.entries) == len(items)
    # The exact text, as a strict XML parser reads it back: only what XML cannot
    # carry (controls, lone surrogates) is gone.
    titles = [t.text or "" for t in etree.fromstring(atom).findall("a:entry/a:title", NS)]
    assert titles == [render.title_text(s) for s in ordered]
    # JSON escapes controls itself; only lone surrogates (not UTF-8) are dropped.
    lone = re.compile("[\ud800-\udfff]")
    assert [i["title"] for i in doc["items"]] == [lone.sub("", s.title) for s in ordered]
