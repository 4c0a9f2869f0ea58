"""`source.fetch = "browser"`: pages that only a browser can read, read by Debian's
headless Chromium through Playwright, within the same limits as the plain fetcher.

The pages are served by FakeSource from ``tests/fixtures/js-site`` (a home page
whose statements a script writes, and a CDN-style check page that sets a cookie
and reloads). These tests need Chromium at /usr/bin/chromium (``.ci/run``
installs Debian's); see tests/support/chromium.py for when they skip.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.browser import MISSING_EXTRA, BrowserFetcher
from feeds.config import FetchSettings, load_feeds_config
from feeds.errors import (
    AddressNotAllowed,
    ConfigError,
    ParseError,
    SourceHTTPError,
    SourceNotHTML,
    SourceTimeout,
    SourceTooLarge,
)
from feeds.fetch import Fetcher
from feeds.fetch_factory import make_fetcher
from feeds.model import Page
from feeds.parse import parse_page
from feeds.pipeline import Pipeline
from feeds.profile import load_profile
from feeds.store import Store
from feeds.text import clean
from tests.support.chromium import CHROMIUM, require_chromium
from tests.support.fake_source import FakeSource

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
JS_SITE = FIXTURES / "js-site"
PROFILE_PATH = ROOT / "config" / "sources" / "embassy-uk.toml"
READY = "ul.news-list li.news-item, .article-text"  # what make_fetcher waits for
FAST = FetchSettings(allow_private_addresses=True, retries=0, deadline=10.0, max_bytes=1_000_000)


def profile() -> Any:
    import tomllib

    return load_profile(tomllib.loads(PROFILE_PATH.read_text("utf-8")))


PROFILE = profile()


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


def browser(fetch: FetchSettings = FAST) -> BrowserFetcher:
    return BrowserFetcher(fetch, require_chromium(), wait_for=READY)


@pytest.fixture(scope="module")
def fetcher() -> Iterator[BrowserFetcher]:
    """One browser for the module, as in the service: launched once, reused by every poll."""
    f = browser()
    yield f
    f.close()


@pytest.fixture
def site() -> Iterator[FakeSource]:
    with FakeSource(root=JS_SITE) as src:
        yield src


def assert_home_page(page: Page, base: str) -> None:
    """Exactly the statements and counters of tests/fixtures/expected-home.json."""
    expected = json.loads((FIXTURES / "expected-home.json").read_text("utf-8"))
    assert page.as_of == dt.date.fromisoformat(expected["as_of"])
    assert [{"days": c.days, "subject": c.subject, "note": c.note} for c in page.counters] == (
        expected["counters"]
    )
    assert len(page.entries) == len(expected["entries"]) == 11
    for entry, want in zip(page.entries, expected["entries"], strict=True):
        assert entry.title == want["title"]
        assert entry.url == base + want["url_path"]
        assert entry.featured == want["featured"]
        if "published" in want:
            assert entry.published == dt.date.fromisoformat(want["published"])
        if "summary" in want:
            assert entry.summary == want["summary"]
    assert page.entries[0].content is not None
    assert page.entries[0].content.startswith("Ladies and gentlemen,\n\nFirst of all")


# --- what the browser is for -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/challenge"])
def test_plain_fetcher_does_not_see_statements_a_script_writes(site: FakeSource, path: str) -> None:
    http = Fetcher(FAST)
    try:
        response = http.get(site.url + path)
    finally:
        http.close()
    expected = json.loads((FIXTURES / "expected-home.json").read_text("utf-8"))
    try:
        page = parse_page(response.body, response.url, PROFILE, response.content_type)
    except ParseError:
        return  # nothing read at all
    # Whatever the parser's fallbacks make of the page's shell, none of its statements.
    assert not {e.title for e in page.entries} & {e["title"] for e in expected["entries"]}


def test_browser_reads_the_statements_a_script_writes(
    fetcher: BrowserFetcher, site: FakeSource
) -> None:
    response = fetcher.get(site.url + "/")

    assert response.status == 200
    assert response.url == site.url + "/"
    assert response.content_type == "text/html; charset=utf-8"
    assert not response.not_modified
    assert_home_page(
        parse_page(response.body, response.url, PROFILE, response.content_type), site.url
    )


def test_challenge_page_is_passed_and_its_cookie_kept_for_the_next_poll(site: FakeSource) -> None:
    f = browser()  # a browser of its own: no clearance cookie from other tests
    try:
        first = f.get(site.url + "/challenge")
        assert site.count("/challenge") == 2  # the check page, then the reload with the cookie
        assert_home_page(parse_page(first.body, first.url, PROFILE, first.content_type), site.url)

        again = f.get(site.url + "/challenge")
        assert site.count("/challenge") == 3  # cleared already: one request a poll
        assert parse_page(again.body, again.url, PROFILE, again.content_type).entries
    finally:
        f.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    titles=st.lists(
        st.text(
            st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
            min_size=1,
            max_size=40,
        ).filter(lambda t: clean(t)),
        min_size=1,
        max_size=5,
    )
)
def test_any_title_a_script_writes_is_read_back_as_text(
    fetcher: BrowserFetcher, site: FakeSource, titles: list[str]
) -> None:
    """Markup characters, quotes, entities and any script in a title stay text."""
    statements = [
        {"date": "01.07.2020", "href": f"/fnapr/{7000 + n}", "title": t, "lead": "A lead."}
        for n, t in enumerate(titles)
    ]
    home = (JS_SITE / "index.html").read_text("utf-8")
    start = home.index('"statements": [')
    end = home.index("]\n    };", start) + 1
    data = '"statements": ' + json.dumps(statements).replace("</", "<\\/")
    site.set_body("/", home[:start] + data + home[end:])

    response = fetcher.get(site.url + "/")
    page = parse_page(response.body, response.url, PROFILE, response.content_type)

    listed = [e for e in page.entries if not e.featured]
    assert [e.title for e in listed] == [clean(t) for t in titles]  # as the parser reads HTML
    assert [e.url for e in listed] == [site.url + s["href"] for s in statements]


# --- limits: the same as the plain fetcher ---------------------------------------------


@pytest.mark.parametrize("hang", ["document", "script"])
def test_a_page_that_hangs_fails_at_the_deadline(site: FakeSource, hang: str) -> None:
    deadline = 2.0
    f = browser(FetchSettings(allow_private_addresses=True, retries=0, deadline=deadline))
    try:
        if hang == "document":
            site.misbehave("/", "slow", seconds=60)
        else:  # the HTML arrives, but a script it waits for never does
            home = (JS_SITE / "index.html").read_text("utf-8")
            site.set_body("/", home.replace("</head>", '<script src="/app.js"></script></head>'))
            site.misbehave("/app.js", "slow", seconds=60)
        started = time.monotonic()
        with pytest.raises(SourceTimeout, match="within 2s"):
            f.get(site.url + "/")
        # Slack for Chromium's start, slower on a busy machine (tests run two at a time).
        assert time.monotonic() - started < deadline + 4
    finally:
        f.close()


def test_a_page_rendered_bigger_than_the_limit_is_refused(
    fetcher: BrowserFetcher, site: FakeSource
) -> None:
    # A few hundred bytes of HTML whose script writes 2 MB into the page.
    site.set_body(
        "/",
        "<!DOCTYPE html><html><body><div id=x></div><script>"
        "document.getElementById('x').textContent = 'statement '.repeat(200000);"
        "</script></body></html>",
    )
    with pytest.raises(SourceTooLarge, match="rendered page of 2,0"):
        fetcher.get(site.url + "/")


@pytest.mark.parametrize("declared", [True, False])
def test_a_huge_document_is_refused_without_reading_it_all(
    fetcher: BrowserFetcher, site: FakeSource, declared: bool
) -> None:
    if declared:
        site.misbehave("/", "huge", size=200_000_000)
    else:
        site.misbehave("/", "huge", size=200_000_000, content_length=False, chunked=True)
    started = time.monotonic()
    with pytest.raises(SourceTooLarge, match="limit 1,000,000"):
        fetcher.get(site.url + "/")
    assert time.monotonic() - started < FAST.deadline / 2


def test_a_download_link_is_not_downloaded(
    fetcher: BrowserFetcher, site: FakeSource, caplog: pytest.LogCaptureFixture
) -> None:
    home = (JS_SITE / "index.html").read_text("utf-8")
    clicker = (
        '<a id="dl" href="/files/report.pdf" download>report</a>'
        "<script>document.getElementById('dl').click();</script></body>"
    )
    site.set_body("/", home.replace("</body>", clicker))
    site.set_body("/files/report.pdf", b"%PDF-1.4\n" + b"0" * 100_000, "application/pdf")

    with caplog.at_level(logging.WARNING, logger="feeds.browser"):
        response = fetcher.get(site.url + "/")

    assert_home_page(
        parse_page(response.body, response.url, PROFILE, response.content_type), site.url
    )
    assert b"%PDF" not in response.body
    assert any("refused a download" in r.getMessage() for r in caplog.records)


def test_an_address_that_is_a_file_is_not_a_page(fetcher: BrowserFetcher, site: FakeSource) -> None:
    site.misbehave("/", "not_html", content_type="application/pdf")
    with pytest.raises(SourceNotHTML):
        fetcher.get(site.url + "/")


def test_an_http_error_is_reported_with_its_status(
    fetcher: BrowserFetcher, site: FakeSource
) -> None:
    with pytest.raises(SourceHTTPError) as caught:
        fetcher.get(site.url + "/fnapr/404")
    assert caught.value.status == 404


def test_requests_to_other_hosts_are_not_made(fetcher: BrowserFetcher, site: FakeSource) -> None:
    with FakeSource(root=JS_SITE) as tracker:
        # Same machine, other host name: the page may not load from it.
        other = tracker.url.replace("127.0.0.1", "localhost")
        home = (JS_SITE / "index.html").read_text("utf-8")
        site.set_body(
            "/", home.replace("</head>", f'<script src="{other}/track.js"></script></head>')
        )
        response = fetcher.get(site.url + "/")
        assert parse_page(response.body, response.url, PROFILE, response.content_type).entries
        assert tracker.requests == []


def test_a_statement_page_off_the_allowed_hosts_is_not_opened(
    fetcher: BrowserFetcher, site: FakeSource
) -> None:
    with pytest.raises(AddressNotAllowed):
        fetcher.get(site.url + "/fnapr/6941", allowed_hosts=["www.rusemb.org.uk"])
    assert site.count("/fnapr/6941") == 0


# --- the service's use: threads, crashes ----------------------------------------------


def test_get_works_from_any_thread_and_inside_an_event_loop(
    fetcher: BrowserFetcher, site: FakeSource
) -> None:
    async def poll_twice() -> tuple[Any, Any]:
        in_thread = await asyncio.to_thread(fetcher.get, site.url + "/")
        in_loop = fetcher.get(site.url + "/")  # Playwright's sync API runs on its own thread
        return in_thread, in_loop

    for response in asyncio.run(poll_twice()):
        assert len(parse_page(response.body, response.url, PROFILE).entries) == 11


def _chromium_pids() -> list[int]:
    """Chromium processes started by this test process (through Playwright's driver)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parents[int(proc.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        names[int(proc.name)] = name
    mine = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                changed = True
    # The browser process itself: a chromium whose parent is not a chromium.
    return [
        pid
        for pid in mine
        if names.get(pid, "").startswith("chrom")
        and not names.get(parents[pid], "").startswith("chrom")
    ]


def test_a_crashed_browser_is_started_again_at_the_next_poll(site: FakeSource) -> None:
    others = set(_chromium_pids())  # the module's browser
    f = browser()
    try:
        assert f.get(site.url + "/").status == 200
        pids = [pid for pid in _chromium_pids() if pid not in others]
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pids[0]}/stat").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for the kill to land, not an assertion

        response = f.get(site.url + "/")
        assert len(parse_page(response.body, response.url, PROFILE).entries) == 11
        assert len(set(_chromium_pids()) - others - set(pids)) == 1  # a new one
    finally:
        f.close()
    assert set(_chromium_pids()) <= others  # close() ended it


def test_a_poll_through_the_browser_stores_the_statements(
    database_url: str, site: FakeSource, tmp_path: Path
) -> None:
    doc = {
        "source": {"url": site.url + "/", "profile": str(PROFILE_PATH), "fetch": "browser"},
        "fetch": {"allow_private_addresses": True, "retries": 0, "articles_per_poll": 0},
        "feeds": {"folder": str(tmp_path / "feeds")},
        "database": {"url": database_url},
    }
    config = load_feeds_config(
        doc, tmp_path / "feedbot.toml", env={"FEEDBOT_BROWSER_PATH": CHROMIUM}
    )
    store = Store(database_url)
    store.migrate()
    f: Any = make_fetcher(config)  # the pipeline takes either kind of fetcher
    try:
        outcome = Pipeline(config, store, f, sleep=lambda _s: None).poll()
        assert isinstance(f, BrowserFetcher)
        assert outcome.result == "ok"
        assert store.count_statements() == 11
    finally:
        f.close()
        store.close()


# --- the setting ------------------------------------------------------------------------


def config_with(tmp_path: Path, **source: Any) -> Any:
    doc = {"source": {"url": "https://www.rusemb.org.uk/", "profile": str(PROFILE_PATH), **source}}
    return load_feeds_config(doc, tmp_path / "feedbot.toml", env={})


def test_the_fetch_setting_chooses_the_fetcher(tmp_path: Path) -> None:
    plain = make_fetcher(config_with(tmp_path))
    assert isinstance(plain, Fetcher)
    plain.close()
    chosen = make_fetcher(config_with(tmp_path, fetch="browser", browser_path=CHROMIUM))
    assert isinstance(chosen, BrowserFetcher)
    assert chosen.wait_for == READY
    chosen.close()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"fetch": "chrome"}, 'source.fetch: must be "http" or "browser"'),
        ({"fetch": 1}, "source.fetch: must be"),
        (
            {"fetch": "browser", "browser_path": "/nowhere/chromium"},
            "source.browser_path: /nowhere/chromium does not exist",
        ),
    ],
)
def test_a_bad_fetch_setting_stops_start_up_naming_the_key(
    tmp_path: Path, source: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, **source)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_without_the_browser_extra_the_setting_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_with(tmp_path, fetch="browser", browser_path=CHROMIUM)
    monkeypatch.setitem(sys.modules, "playwright", None)  # as if not installed
    with pytest.raises(ConfigError) as caught:
        make_fetcher(config)
    assert str(caught.value) == MISSING_EXTRA
    assert "pip install 'feedbot[browser]'" in str(caught.value)
