"""The web page in a real browser: Debian's Chromium driven by Playwright.

Skipped only where Chromium is not installed; `.ci/run` installs it, so CI
runs these. Screenshots go to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from feedbot.app import Context, build_web, open_context
from feedbot.settings import Settings
from feeds.pipeline import Pipeline
from tests.conftest import FIXTURES
from tests.support.chromium import require_chromium
from tests.support.fake_source import FakeSource

HOSTILE_TITLE = '<script>document.title="pwned";window.pwned=1</script> <b>Bold?</b> & more'


class Server:
    """The real aiohttp app on 127.0.0.1, in its own thread and event loop."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.runner = web.AppRunner(build_web(self.ctx)[0].app(), access_log=None)
        self._loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def site(settings: Settings, pipeline: Pipeline, source: FakeSource) -> Iterator[Server]:
    home = (FIXTURES / "site" / "index.html").read_text("utf-8")
    item = (
        '<ul class="news-list"><li class="news-item"><span class="news-date">05.07.2020</span> - '
        f'<a class="news-title" href="/fnapr/7100">{HOSTILE_TITLE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}</a>'
        '<p class="news-lead">A lead.</p></li>'
    )
    source.set_body("/", home.replace('<ul class="news-list">', item, 1))
    assert pipeline.poll().result == "ok"
    pipeline.fetch_full_texts(20)  # as the service's full-text job does right after
    ctx = open_context(settings)
    server = Server(ctx)
    yield server
    server.close()
    ctx.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=require_chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        yield context.new_page()
        with contextlib.suppress(Exception):
            context.close()
        browser.close()


def test_home_page_shows_statements_counters_and_feeds(
    site: Server, page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(site.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Statements")
    expect(
        page.get_by_text("President Vladimir Putin's speech at the military parade")
    ).to_be_visible()
    counters = page.locator(".counter .days")
    expect(counters).to_have_count(2)
    assert all(int(text) > 855 for text in counters.all_inner_texts())
    for name in ("Atom", "RSS", "JSON Feed"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    alternates = page.locator('link[rel="alternate"]')
    assert sorted(alternates.evaluate_all("els => els.map(e => e.type)")) == [
        "application/atom+xml",  # statements
        "application/atom+xml",  # counters
        "application/feed+json",
        "application/rss+xml",
    ]
    # The hostile title is text on the page, and nothing of it ran.
    expect(page.get_by_text(HOSTILE_TITLE, exact=True)).to_be_visible()
    assert page.evaluate("window.pwned") is None
    assert page.title() == "Statements"
    assert dialogs == []
    # Full text opens in place, without JavaScript.
    details = page.locator("details").first
    details.locator("summary").click()
    expect(details).to_have_attribute("open", "")
    shot = tmp_path / "home.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_statement_page_shows_text_and_escapes(site: Server, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(site.url + "/")
    page.get_by_role("link", name="Stored copy and history").first.click()
    expect(page.locator("h1")).to_have_text(HOSTILE_TITLE)
    assert page.evaluate("window.pwned") is None
