"""Backfill from the archive in the real site's shapes: the home page's "all messages"
link, offset-paged lists (``/apress_arh/&start=N&ps=10&ppp=15``, ``/newarh/…``) and
the ``Pages: ««« :: 1 2 … :: »»»`` pager — every statement once, resumable."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.archive import next_in_pager, offset_of, pager_links, with_offset
from feeds.backfill import BackfillResult, backfill
from feeds.config import FeedsConfig, load_feeds_config, read_toml
from feeds.errors import AddressNotAllowed, ConfigError, SourceHTTPError
from feeds.fetch import Fetcher
from feeds.profile import load_profile
from feeds.store import Store
from tests.conftest import FIXTURES, PROFILE, ConfigFactory
from tests.support.fake_source import FakeSource

SITE = FIXTURES / "archive-real"
PRESS = [f"/apress_arh/&start={n}&ps=10&ppp=15" for n in (1, 11, 21, 31)]
INFORMS = [f"/newarh/&start={n}&ps=10&ppp=15" for n in (1, 11)]
PRESS_IDS = {f"/fnapr/{n}" for n in range(7108, 7141)}  # 33, on 36 list items
INFORMS_IDS = {f"/fnapr/{n}" for n in range(8196, 8211)}  # 15, on 16 list items
PAGER = re.compile(r"^pages\s*:", re.IGNORECASE)


def no_sleep(_seconds: float) -> None:
    pass


@pytest.fixture
def site() -> Iterator[FakeSource]:
    with FakeSource(root=SITE) as src:
        yield src


@pytest.fixture
def config(make_config: ConfigFactory, site: FakeSource) -> FeedsConfig:
    path = make_config(site.url + "/")
    return load_feeds_config(read_toml(path), path, env={})


@pytest.fixture
def db(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def fetcher(config: FeedsConfig) -> Iterator[Fetcher]:
    f = Fetcher(config.fetch, sleep=no_sleep)
    yield f
    f.close()


def walk(config: FeedsConfig, db: Store, fetcher: Fetcher, **kwargs: Any) -> BackfillResult:
    return backfill(config, db, fetcher, sleep=no_sleep, **kwargs)


def stored(db: Store, site: FakeSource) -> set[str]:
    return {s.id.removeprefix(site.url) for s in db.statements()}


def fetched(site: FakeSource) -> list[str]:
    return [r.path for r in site.requests if r.method == "GET"]


def test_a_full_walk_starts_at_all_messages_and_stores_every_press_release_once(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    pages: list[str] = []
    result = walk(config, db, fetcher, progress=lambda _r, url: pages.append(url))
    assert result.finished and result.error is None and result.lists == ["press"]
    assert (result.pages, result.seen, result.new) == (4, 36, 33)  # neighbours overlap by one
    assert stored(db, site) == PRESS_IDS
    # Home page once (for its link), then each press page once; "Embassy informs" not asked.
    assert fetched(site) == ["/", *PRESS]
    assert pages == [site.url + p for p in PRESS]
    newest = db.statements(limit=1)[0]
    assert newest.id == site.url + "/fnapr/7140" and newest.published == dt.date(2021, 3, 2)
    assert newest.title == "Comment on a language olympiad for schools (No. 7140)"
    assert db.archive_progress() == {}  # finished: the next walk starts afresh


def test_the_pagers_next_block_link_leads_on(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    # Page 2's pager numbers only pages 1 and 2; the third page is behind »»».
    body = (SITE / "apress_arh" / "&start=11&ps=10&ppp=15.html").read_bytes()
    links = pager_links(body, site.url + PRESS[1], PAGER, "start")
    assert links is not None and [o for o, _ in links] == [1, 21]
    assert next_in_pager(links, 11) == site.url + PRESS[2]
    walk(config, db, fetcher)
    assert fetched(site).index(PRESS[2]) == fetched(site).index(PRESS[1]) + 1


def test_max_pages_then_a_resumed_walk_fetches_no_walked_page_again(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    first = walk(config, db, fetcher, max_pages=2)
    assert first.bounded and not first.finished and first.error is None
    assert (first.pages, first.new) == (2, 19)
    assert fetched(site) == ["/", *PRESS[:2]]
    second = walk(config, db, fetcher)
    assert second.finished and (second.skipped, second.pages, second.new) == (2, 2, 14)
    # Neither the home page nor the walked pages are asked for again.
    assert fetched(site) == ["/", *PRESS]
    assert stored(db, site) == PRESS_IDS


@pytest.mark.parametrize("status", [500, 404])
def test_a_broken_page_stops_the_walk_with_the_error_and_a_rerun_resumes_there(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource, status: int
) -> None:
    # Even a 404 is an error here: the pager links to the page, so it should exist.
    site.misbehave(PRESS[2], "status", status=status, times=5)
    first = walk(config, db, fetcher)
    assert isinstance(first.error, SourceHTTPError) and first.error.status == status
    assert not first.finished and first.pages == 2
    assert stored(db, site) == {f"/fnapr/{n}" for n in range(7122, 7141)}
    site.clear()
    second = walk(config, db, fetcher)
    assert second.finished and second.error is None and second.skipped == 2
    assert stored(db, site) == PRESS_IDS
    assert fetched(site).count(PRESS[0]) == fetched(site).count(PRESS[1]) == 1


def test_a_page_that_reads_as_nothing_stops_the_walk(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    site.set_body(PRESS[1], "<html><body><p>Site under maintenance</p></body></html>")
    result = walk(config, db, fetcher)
    assert result.error is not None and result.error.kind == "parse" and result.pages == 1
    assert stored(db, site) == {f"/fnapr/{n}" for n in range(7131, 7141)}


def empty_list_page() -> str:
    return "<html><body><h1>EMBASSY INFORMS</h1><ul class='news-list'></ul></body></html>"


@pytest.mark.parametrize("end", ["missing", "empty", "repeated"])
def test_offset_paging_without_a_pager_stops_at_the_end_of_the_list(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource, end: str
) -> None:
    # The /newarh/ pages have no pager: the walk goes by start=1, 11, 21, …
    beyond = "/newarh/&start=21&ps=10&ppp=15"
    if end == "empty":
        site.set_body(beyond, empty_list_page())
    elif end == "repeated":  # some sites answer an offset past the end with the last page
        site.set_body(beyond, (SITE / "newarh" / "&start=11&ps=10&ppp=15.html").read_bytes())
    result = walk(config, db, fetcher, lists=["informs"])
    assert result.finished and result.error is None and result.lists == ["informs"]
    assert stored(db, site) == INFORMS_IDS
    assert fetched(site) == [*INFORMS, beyond]  # not the home page: its link is for press
    assert result.pages == (3 if end == "repeated" else 2)


def test_the_embassy_informs_list_is_walked_after_the_press_releases_when_asked(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    result = walk(config, db, fetcher, lists=["all"])
    assert result.finished and result.lists == ["press", "informs"]
    assert result.new == len(PRESS_IDS | INFORMS_IDS) == 48
    assert fetched(site) == ["/", *PRESS, *INFORMS, "/newarh/&start=21&ps=10&ppp=15"]
    with pytest.raises(ConfigError, match="no archive list 'nope'"):
        walk(config, db, fetcher, lists=["nope"])


def test_without_an_all_messages_link_the_walk_starts_at_the_first_list(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    site.set_body("/", "<html><body><ul class='news-list'></ul><p>Welcome</p></body></html>")
    result = walk(config, db, fetcher)
    assert result.finished and stored(db, site) == PRESS_IDS
    assert fetched(site) == ["/", *PRESS]


def test_an_all_messages_link_off_the_site_is_not_followed(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    site.set_body("/", '<html><body><a href="http://elsewhere.invalid/x">All messages</a></html>')
    result = walk(config, db, fetcher)
    assert isinstance(result.error, AddressNotAllowed) and result.pages == 0
    assert stored(db, site) == set()


def test_since_ends_the_list_at_the_first_page_reaching_older_statements(
    config: FeedsConfig, db: Store, fetcher: Fetcher, site: FakeSource
) -> None:
    result = walk(config, db, fetcher, since=dt.date(2021, 2, 1))
    assert result.finished and result.pages == 2
    assert all(s.published and s.published >= dt.date(2021, 2, 1) for s in db.statements())
    assert fetched(site) == ["/", *PRESS[:2]]


def test_the_profile_names_what_is_wrong_with_its_archive_section() -> None:
    data = tomllib.loads(PROFILE.read_text("utf-8"))
    good = load_profile(data)
    assert [a.name for a in good.archive.lists] == ["press", "informs"]
    assert good.archive.walk == ("press",)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"walk": ["press", "nope"]}, "archive.walk"),
        ({"step": 0}, "archive.step"),
        ({"lists": {"press": "/apress_arh/&start={page}"}}, "archive.lists.press"),
        ({"pager": "(unclosed"}, "archive.pager"),
    ]
    for change, key in cases:
        bad = {**data, "archive": {**data["archive"], **change}}
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_profile(bad)


# -- the pager, on bytes in the real shape ------------------------------------------


def pager_page(path: str, current: int, block: int, last: int, step: int) -> bytes:
    """A list page's pager as the site draws it: ``Pages: ««« :: 123 :: »»»``, the
    current page unlinked, ««« and »»» linked only when there is a block that way."""

    def href(page: int) -> str:
        return f"{path}&amp;start={(page - 1) * step + 1}&amp;ps={step}&amp;ppp={block}"

    low = (current - 1) // block * block + 1
    high = min(low + block - 1, last)
    numbers = "".join(
        f"<b>{p}</b>" if p == current else f'<a href="{href(p)}">{p}</a>'
        for p in range(low, high + 1)
    )
    back = f'<a href="{href(low - 1)}">«««</a>' if low > 1 else "«««"
    on = f'<a href="{href(high + 1)}">»»»</a>' if high < last else "»»»"
    return (
        '<html><body><a href="/">Home</a><ul class="news-list"><li>x</li></ul>'
        f"<div><span>Pages:</span> {back} :: {numbers} :: {on}</div>"
        '<a href="/fnapr/1">a statement</a></body></html>'
    ).encode()


@given(
    last=st.integers(1, 60),
    block=st.integers(1, 15),
    step=st.sampled_from([5, 10, 20]),
    data=st.data(),
)
def test_the_pager_always_leads_to_the_next_page_and_ends_at_the_last(
    last: int, block: int, step: int, data: st.DataObject
) -> None:
    current = data.draw(st.integers(1, last))
    base = "http://site.test/apress_arh/&start=1&ps=10&ppp=15"
    body = pager_page("/apress_arh/", current, block, last, step)
    links = pager_links(body, base, PAGER, "start")
    assert links is not None
    following = next_in_pager(links, (current - 1) * step + 1)
    if current == last:
        assert following is None
    else:
        assert following is not None
        assert offset_of(following, "start") == current * step + 1


@given(start=st.integers(0, 10**6), other=st.integers(0, 10**6))
def test_an_offset_moves_without_touching_the_other_parameters(start: int, other: int) -> None:
    url = f"http://site.test/newarh/&start={start}&ps=10&ppp=15"
    moved = with_offset(url, "start", other)
    assert offset_of(moved, "start") == other
    assert moved == f"http://site.test/newarh/&start={other}&ps=10&ppp=15"
    assert offset_of("http://site.test/fnapr/6940", "start") is None
    assert offset_of("http://site.test/x?restart=5", "start") is None
