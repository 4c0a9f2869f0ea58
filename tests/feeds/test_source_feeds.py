"""Feeds of several sources, as feed readers see them: each source's own documents
under /feeds/<id>/, the combined ones at the top level with each entry naming its
source, archives per source, and a single-source deployment's top-level bytes
exactly as they were before several sources existed.

Three page sources on two local hosts: the fixture site (the primary), a CMS-like
page (tests/fixtures/pages/unknown-cms.html) and a "mirror" that republishes the
fixture site's statements under the same URLs. Every document written is judged
by tests/support/feed_check.py.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import render
from feeds.config import FeedsConfig, load_feeds_file
from feeds.fetch import Fetcher
from feeds.model import Counter, Entry, Page, Statement
from feeds.pipeline import Pipeline
from feeds.render import FeedContext, SourceLabel
from feeds.store import Store
from tests.conftest import FIXTURES, PROFILE, ConfigFactory, toml_value
from tests.feeds.test_pipeline import HOME, NEW_ITEM
from tests.support.fake_source import FakeSource
from tests.support.feed_check import NS, check_document, check_folder, check_json, strict_xml

PUBLIC = "http://feeds.test"
GOLDEN = FIXTURES / "single-source-feeds"
CMS_HOME = (FIXTURES / "pages" / "unknown-cms.html").read_bytes()


def mirror_of(site: FakeSource) -> str:
    """The fixture home page with every statement link made absolute to ``site``: a
    second source that publishes the very same statement URLs."""
    return HOME.replace('href="/fnapr/', f'href="{site.url}/fnapr/')


def add_sources(path: Path, sources: list[dict[str, Any]]) -> Path:
    """``[[sources]]`` tables appended to a settings file, as an operator writes them."""
    lines = [path.read_text("utf-8")]
    for table in sources:
        lines.append("[[sources]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    path.write_text("\n".join(lines), "utf-8")
    return path


@dataclass
class Sites:
    config: FeedsConfig
    store: Store
    pipelines: dict[str, Pipeline]
    home: FakeSource  # the fixture site: the primary source
    other: FakeSource  # another host: the CMS page at /, the mirror at /mirror

    @property
    def folder(self) -> Path:
        return self.config.publish.folder

    def poll(self, *ids: str) -> None:
        for sid in ids or tuple(self.pipelines):
            outcome = self.pipelines[sid].poll()
            assert outcome.result == "ok", (sid, outcome.error)

    def ids_of(self, sid: str) -> set[str]:
        key = self.config.source_by_id(sid).key
        return {s.id for s in self.store.view(key).statements()}


SitesFactory = Callable[..., Sites]

SOURCES: list[dict[str, Any]] = [
    {
        "id": "cms",
        "name": "A CMS site",
        "url": "{other}/",
        "profile": str(PROFILE),
        "counters": False,
    },
    {"id": "mirror", "name": "The mirror & co", "url": "{other}/mirror", "profile": str(PROFILE)},
]


@pytest.fixture
def make_sites(make_config: ConfigFactory, source: FakeSource) -> Iterator[SitesFactory]:
    opened: list[tuple[Store, list[Fetcher], FakeSource]] = []

    def make(sources: list[dict[str, Any]] | None = None, **feeds: Any) -> Sites:
        other = FakeSource(host="127.0.0.2")
        other.set_body("/", CMS_HOME)
        other.set_body("/mirror", mirror_of(source))
        tables = [
            {k: v.format(other=other.url) if isinstance(v, str) else v for k, v in t.items()}
            for t in (SOURCES if sources is None else sources)
        ]
        path = make_config(source.url + "/", feeds={"public_url": PUBLIC, **feeds})
        config = load_feeds_file(add_sources(path, tables), env={})
        store = Store(config.database_url)
        store.migrate()
        fetchers: list[Fetcher] = []
        pipelines = {}
        for settings_of in config.sources:
            fetcher = Fetcher(config.fetch, sleep=lambda _s: None)
            fetchers.append(fetcher)
            pipelines[settings_of.id] = Pipeline(
                config, store, fetcher, sleep=lambda _s: None, source=settings_of
            )
        opened.append((store, fetchers, other))
        return Sites(config, store, pipelines, source, other)

    yield make
    for store, fetchers, other in opened:
        for fetcher in fetchers:
            fetcher.close()
        other.close()
        store.close()


def walk(folder: Path, start: str) -> list[str]:
    """Entry ids from ``start`` back through prev-archive, as RFC 5005 says."""
    ids: list[str] = []
    name, visited = start, set()
    while name:
        assert name not in visited, f"archive links loop at {name}"
        visited.add(name)
        doc = feedparser.parse((folder / name).read_bytes())
        ids += [e.id for e in doc.entries]
        prev = [link.href for link in doc.feed.links if link.rel == "prev-archive"]
        name = prev[0].removeprefix(f"{PUBLIC}/feeds/") if prev else ""
    return ids


def named_source(entry: Any) -> tuple[str, str]:
    """(category term, author) of a parsed Atom entry: how it names its source."""
    return entry.tags[0].term, entry.author


def test_each_source_has_its_own_documents_and_the_combined_ones_name_the_source(
    make_sites: SitesFactory,
) -> None:
    sites = make_sites()
    sites.poll()
    docs = check_folder(sites.folder)
    names = {s.id: s.name for s in sites.config.sources}
    assert set(names) == {"embassy-uk", "cms", "mirror"}

    for sid, name in names.items():
        own = sites.ids_of(sid)
        assert own, sid
        atom = docs[f"{sid}/statements.atom"]
        assert atom.feed.title == name
        assert {e.id for e in atom.entries} == own
        assert all("tags" not in e for e in atom.entries), "one source's own feed names none"
        assert {e.id for e in docs[f"{sid}/statements.rss"].entries} == own
        assert {i["id"] for i in docs[f"{sid}/statements.json"]["items"]} == own
        assert links(atom)["self"] == f"{PUBLIC}/feeds/{sid}/statements.atom"
    # Counters only where the source has them.
    assert "cms/counters.atom" not in docs
    assert {"embassy-uk/counters.atom", "mirror/counters.atom"} <= set(docs)

    every = set().union(*(sites.ids_of(sid) for sid in names))
    combined = docs["statements.atom"]
    assert {e.id for e in combined.entries} == every
    owner = {i: sid for sid in names for i in sites.ids_of(sid)}
    for entry in combined.entries:
        assert named_source(entry) == (owner[entry.id], names[owner[entry.id]])
    rss = docs["statements.rss"]
    assert {(e.id, e.tags[0].term) for e in rss.entries} == {
        (e.id, names[owner[e.id]]) for e in rss.entries
    }
    items = docs["statements.json"]["items"]
    assert {i["id"] for i in items} == every
    for item in items:
        assert item["_feedbot"] == {"source": owner[item["id"]]}
        assert item["authors"][0]["name"] == names[owner[item["id"]]]
        assert item["authors"][0]["url"] == f"{PUBLIC}/sources/{owner[item['id']]}"

    # The combined counters: of the sources that have them, each naming its source.
    counters = docs["counters.atom"]
    assert {named_source(e) for e in counters.entries} == {
        ("embassy-uk", names["embassy-uk"]),
        ("mirror", names["mirror"]),
    }


def test_two_sources_publishing_the_same_url_keep_separate_entries(
    make_sites: SitesFactory,
) -> None:
    sites = make_sites()
    sites.poll()
    docs = check_folder(sites.folder)
    home_ids, mirror_ids = sites.ids_of("embassy-uk"), sites.ids_of("mirror")
    assert len(home_ids) == len(mirror_ids) == 11
    assert not home_ids & mirror_ids
    combined = docs["statements.atom"].entries
    link_of = {e.id: e.link for e in combined}
    # The same statement pages, as two entries each: one per source.
    assert {link_of[i] for i in home_ids} == {link_of[i] for i in mirror_ids}
    assert len({e.id for e in combined}) == len(combined) == 11 + 11 + len(sites.ids_of("cms"))
    # The primary's ids are what they always were: the statements' URLs.
    assert home_ids == {link_of[i] for i in home_ids}


def test_archives_per_source_walk_each_statement_once_and_full_ones_never_change(
    make_sites: SitesFactory,
) -> None:
    sites = make_sites(entries=4)
    sites.poll()
    check_folder(sites.folder)
    sets = {
        "": sites.store.view(None),
        **{s.id + "/": sites.store.view(s.key) for s in sites.config.sources},
    }
    for prefix, view in sets.items():
        walked = walk(sites.folder, f"{prefix}statements.atom")
        assert sorted(walked) == sorted(s.id for s in view.statements()), prefix or "combined"
        assert (sites.folder / f"{prefix}archive" / "statements-1.atom").is_file()
    # Every archive but the newest of each set (which gains a next-archive link when
    # another is cut after it, as RFC 5005 wants) must never change again.
    archives = {
        p: p.read_bytes()
        for prefix in sets
        for p in sorted(
            (sites.folder / f"{prefix}archive").glob("statements-*.atom"),
            key=lambda p: int(p.stem.removeprefix("statements-")),
        )[:-1]
    }
    assert archives
    others = {
        p: p.read_bytes()
        for sid in ("cms", "mirror")
        for p in (sites.folder / sid).rglob("*")
        if p.is_file()
    }

    # A new statement on the primary: its documents and the combined ones change,
    # no full archive does, and the other sources' documents stay as they were.
    sites.home.set_body("/", HOME.replace('<ul class="news-list">', NEW_ITEM, 1))
    outcome = sites.pipelines["embassy-uk"].poll()
    assert outcome.changes is not None and len(outcome.changes.new) == 1
    assert "statements.atom" in outcome.feeds_written
    assert "embassy-uk/statements.atom" in outcome.feeds_written
    assert not any(n.startswith(("cms/", "mirror/")) for n in outcome.feeds_written)
    check_folder(sites.folder)
    for path, body in archives.items():
        assert path.read_bytes() == body, path
    for path, body in others.items():
        assert path.read_bytes() == body, path
    for prefix, view in sets.items():
        walked = walk(sites.folder, f"{prefix}statements.atom")
        assert sorted(walked) == sorted(s.id for s in view.statements()), prefix or "combined"
    # Nothing changed: nothing rewritten, by any source.
    for pipeline in sites.pipelines.values():
        assert pipeline.publish() == []


def poll_all_at_once(sites: Sites, then: Callable[[str], None] | None = None) -> None:
    """Every source polled in a thread of its own, all at once; ``then(id)`` runs in
    that thread right after the source's poll returned."""
    errors: list[BaseException] = []

    def poll(sid: str) -> None:
        try:
            sites.poll(sid)
            if then is not None:
                then(sid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(sid,)) for sid in sites.pipelines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(sites.pipelines) >= 3  # several publishing at once, or it proves nothing


def test_sources_publishing_at_once_leave_complete_combined_feeds(
    make_sites: SitesFactory,
) -> None:
    sites = make_sites()
    poll_all_at_once(sites)
    docs = check_folder(sites.folder)
    every = set().union(*(sites.ids_of(s.id) for s in sites.config.sources))
    assert {e.id for e in docs["statements.atom"].entries} == every
    # The database holds what the folder holds (web instances serve from it).
    for name in ("statements.atom", "statements.json", "cms/statements.atom"):
        stored = sites.store.document(name)
        assert stored is not None and stored[0] == (sites.folder / name).read_bytes(), name


def test_a_poll_returns_with_its_statements_already_in_the_combined_feeds(
    make_sites: SitesFactory,
) -> None:
    """Sources publishing together share one rewrite of the combined documents (a
    publish asked for while another runs waits for the next one), yet none returns
    before its own statements are in them."""
    sites = make_sites()
    seen: dict[str, set[str]] = {}

    def combined_ids(sid: str) -> None:
        doc = feedparser.parse((sites.folder / "statements.atom").read_bytes())
        seen[sid] = {e.id for e in doc.entries}

    poll_all_at_once(sites, then=combined_ids)
    for sid in sites.pipelines:
        assert sites.ids_of(sid) <= seen[sid], sid


# --- one source: today's bytes --------------------------------------------------------

T0 = dt.datetime(2020, 7, 6, 9, tzinfo=dt.UTC)


def single_entry(k: int) -> Entry:
    return Entry(
        id=f"https://source.test/fnapr/{7000 + k}",
        title=f"Statement {k} <on> relations & more",
        published=dt.date(2020, 7, 1) + dt.timedelta(days=k // 2),
        summary=f"The lead of statement {k}.",
        url=f"https://source.test/fnapr/{7000 + k}",
    )


def fill_single_source(store: Store) -> None:
    """A fixed history: two polls, a retitled statement, a counter (the same steps
    made tests/fixtures/single-source-feeds with the feedbot of before several sources)."""
    counters = [Counter(855, "the Salisbury incident", "no credible answer", dt.date(2018, 3, 4))]
    first = Page(
        as_of=dt.date(2020, 7, 6), counters=counters, entries=[single_entry(k) for k in range(6)]
    )
    store.apply_page(first, T0)
    retitled = replace(single_entry(2), title="Statement 2, retitled")
    second = Page(
        as_of=dt.date(2020, 7, 6),
        counters=counters,
        entries=[single_entry(k) for k in range(6, 11)] + [retitled],
    )
    store.apply_page(second, T0 + dt.timedelta(hours=1))


def test_a_single_source_deployment_writes_the_same_top_level_bytes_as_before(
    make_config: ConfigFactory,
) -> None:
    path = make_config(
        "https://source.test/", feeds={"public_url": "https://feeds.example/prefix/", "entries": 4}
    )
    config = load_feeds_file(path, env={})
    store = Store(config.database_url)
    try:
        store.migrate()
        fill_single_source(store)
        written = Pipeline(config, store).publish(T0 + dt.timedelta(hours=2))
    finally:
        store.close()
    folder = config.publish.folder
    golden = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert golden == {
        "statements.atom",
        "statements.rss",
        "statements.json",
        "counters.atom",
        "archive/statements-1.atom",
    }
    for name in golden:
        assert (folder / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    # Plus the source's own copies: the same entries, under its id, its name as title.
    docs = check_folder(folder)
    copies = {n.removeprefix("embassy-uk/") for n in docs if n.startswith("embassy-uk/")}
    assert copies == golden
    for name in ("statements.atom", "statements.rss", "archive/statements-1.atom"):
        assert [e.id for e in docs[f"embassy-uk/{name}"].entries] == [
            e.id for e in docs[name].entries
        ]
    assert docs["embassy-uk/statements.atom"].feed.title == config.source.name
    assert set(written) == set(docs)
    for body in (folder / n for n in docs):
        assert b"<category" not in body.read_bytes() and b"_feedbot" not in body.read_bytes()


# --- rendering: any source name --------------------------------------------------------

HOSTILE = st.text(
    st.characters(blacklist_categories=["Cs"]) | st.sampled_from("<>&\"'\x00\x1b\ud800]]>"),
    max_size=30,
)
CTX = FeedContext(public_url="https://feeds.example/p/", source_url="https://s.test/", title="All")


def statement(n: int, source: str) -> Statement:
    t = dt.datetime(2020, 7, 6, 9, tzinfo=dt.UTC)
    return Statement(
        seq=n + 1,
        id=f"https://s.test/{n}" + (f"#{source}" if source else ""),
        url=f"https://s.test/{n}",
        title=f"Statement {n}",
        summary="A lead.",
        content=None,
        published=dt.date(2020, 7, 1),
        featured=False,
        first_seen=t,
        last_seen=t,
        edited_at=None,
        source=source,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(HOSTILE, min_size=1, max_size=3), st.lists(st.integers(0, 2), max_size=6))
def test_any_source_name_gives_documents_that_name_each_entrys_source(
    names: list[str], owners: list[int]
) -> None:
    keys = ["", "b", "c"][: len(names)]
    labels = {k: SourceLabel(k or "main", name) for k, name in zip(keys, names, strict=True)}
    items = [statement(n, keys[o % len(keys)]) for n, o in enumerate(owners)]
    ranks = {s.seq: n for n, s in enumerate(items)}
    atom = render.statements_atom(items, CTX, "/feeds/statements.atom", ranks=ranks, labels=labels)
    parsed = check_document(atom, "statements.atom", archive=False)
    root = strict_xml(atom, "statements.atom")
    terms = [e.find("a:category", NS).get("term") for e in root.findall("a:entry", NS)]
    assert terms == [labels[s.source].id for s in items]
    assert len(parsed.entries) == len(items)
    check_document(render.statements_rss(items, CTX, "/feeds/statements.rss", ranks, labels))
    doc = check_json(render.statements_json(items, CTX, "/feeds/statements.json", ranks, labels))
    assert [i["_feedbot"]["source"] for i in doc["items"]] == terms
    json.dumps(doc)  # and it round-trips


def links(doc: Any) -> dict[str, str]:
    return {link.rel: link.href for link in doc.feed.links}


def test_many_sources_counters_make_a_combined_document_of_whole_recent_days(
    make_sites: SitesFactory,
) -> None:
    """Each counter adds an entry a day: the combined counters document of several
    sources keeps whole days, newest first, up to 500 entries, and always today's;
    each source's own document keeps every counter for ``counter_days`` days."""
    sites = make_sites()
    today = dt.date(2020, 7, 6)
    many = [Counter(100 + n, f"event {n}", None, dt.date(2020, 1, 1)) for n in range(120)]
    for key in ("", sites.config.source_by_id("mirror").key):
        page = Page(as_of=today, counters=many, entries=[single_entry(1)])
        sites.store.view(key).apply_page(page, T0)
    combined = sites.pipelines["mirror"].builder
    own = sites.pipelines["mirror"].source_builder
    docs = {d.name: d.body for d in [*combined.current(today), *own.current(today)]}

    entries = feedparser.parse(docs["counters.atom"]).entries
    days = [e.id.rsplit("/", 1)[1] for e in entries]
    assert len(entries) <= 500
    assert days[:240] == ["2020-07-06"] * 240  # both sources' counters, today first
    assert len(entries) % 240 == 0  # whole days only
    own_entries = feedparser.parse(docs["mirror/counters.atom"]).entries
    assert len(own_entries) == 120 * sites.config.publish.counter_days
