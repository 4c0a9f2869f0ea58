"""The web side of several sources, as a visitor, a feed reader and an operator see
it: the home page shows every source, /sources/<id> one, /feeds.opml lists every
feed (and each answers), /healthz and /metrics speak per source. The real aiohttp
app over a store filled by real polls of two local hosts (see
tests/feeds/test_source_feeds.py for the sources)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import feedparser
import lxml.html
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.store import BotStore
from feedbot.settings import load_settings
from feedbot.web import WebApp
from tests.feeds.test_source_feeds import PUBLIC, Sites, SitesFactory, make_sites
from tests.support.feed_check import check_document, check_json, strict_xml

__all__ = ["make_sites"]  # the fixture, shared with the feed tests

Client = TestClient[Any, Any]


@asynccontextmanager
async def serve(sites: Sites) -> AsyncIterator[Client]:
    settings = load_settings(sites.config.path, env={})
    bot_store = BotStore(sites.store.engine)
    bot_store.migrate()
    web = WebApp(settings, sites.store, bot_store)
    async with TestClient(TestServer(web.app())) as client:
        yield client


async def page(client: Client, path: str) -> lxml.html.HtmlElement:
    async with client.get(path) as resp:
        assert resp.status == 200, path
        assert resp.headers["Content-Type"].startswith("text/html")
        return lxml.html.fromstring(await resp.text())


def titles(doc: lxml.html.HtmlElement) -> list[str]:
    return [h.text_content().strip() for h in doc.xpath("//article//h2")]


def alternates(doc: lxml.html.HtmlElement) -> set[tuple[str, str]]:
    return {(k.get("type"), k.get("href")) for k in doc.xpath('//head/link[@rel="alternate"]')}


def feeds_of(prefix: str, counters: bool = True) -> set[tuple[str, str]]:
    found = {
        ("application/atom+xml", f"{PUBLIC}/feeds/{prefix}statements.atom"),
        ("application/rss+xml", f"{PUBLIC}/feeds/{prefix}statements.rss"),
        ("application/feed+json", f"{PUBLIC}/feeds/{prefix}statements.json"),
    }
    if counters:
        found.add(("application/atom+xml", f"{PUBLIC}/feeds/{prefix}counters.atom"))
    return found


async def test_the_home_page_shows_every_source_and_names_each_statements_source(
    make_sites: SitesFactory,
) -> None:
    sites = make_sites()
    sites.poll()
    async with serve(sites) as client:
        doc = await page(client, "/")
    assert alternates(doc) == feeds_of("")  # autodiscovery: the combined feeds
    outline = doc.xpath('//head/link[@rel="outline"]')
    assert [(o.get("type"), o.get("href")) for o in outline] == [
        ("text/x-opml", f"{PUBLIC}/feeds.opml")
    ]
    listed = {a.get("href"): a.text_content() for a in doc.xpath('//section[@class="sources"]//a')}
    assert listed == {f"/sources/{s.id}": s.name for s in sites.config.sources}
    # The newest 30 of all sources, each naming its source.
    newest = sites.store.view(None).statements(limit=30)
    assert titles(doc) == [s.title for s in newest]
    names = {s.key: s.name for s in sites.config.sources}
    shown = [a.text_content() for a in doc.xpath('//article//a[@class="source"]')]
    assert shown == [names[s.source] for s in newest]
    text = " ".join(doc.text_content().split())
    assert f"{sites.store.view(None).count_statements()} statements stored" in text


async def test_a_source_page_shows_that_source_alone(make_sites: SitesFactory) -> None:
    sites = make_sites()
    sites.poll()
    async with serve(sites) as client:
        cms = await page(client, "/sources/cms")
        home = await page(client, "/sources/embassy-uk")
        async with client.get("/sources/nope") as resp:
            assert resp.status == 404
        async with client.get("/sources/CMS") as resp:
            assert resp.status == 404  # ids are lower-case: nothing else is looked up
    assert cms.xpath("//h1")[0].text_content().strip() == "A CMS site"
    assert titles(cms) == [s.title for s in sites.store.view("cms").statements(limit=30)]
    assert alternates(cms) == feeds_of("cms/", counters=False)
    assert not cms.xpath('//*[contains(@class, "counters")]')  # a source without counters
    assert titles(home) == [s.title for s in sites.store.view("").statements(limit=30)]
    assert len(home.xpath('//*[contains(@class, "days")]')) == 2
    assert alternates(home) == feeds_of("embassy-uk/")


async def test_the_opml_lists_every_feed_and_every_feed_answers(
    make_sites: SitesFactory,
) -> None:
    sites = make_sites()
    sites.poll()
    async with serve(sites) as client:
        async with client.get("/feeds.opml") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/x-opml")
            body = await resp.read()
            etag = resp.headers["ETag"]
        async with client.get("/feeds.opml", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
        root = strict_xml(body, "feeds.opml")
        assert root.tag == "opml" and root.get("version") == "2.0"
        assert root.findtext("head/title")
        groups = root.findall("body/outline")
        assert [g.get("text") for g in groups][1:] == [s.name for s in sites.config.sources]
        listed = {o.get("xmlUrl") for g in groups for o in g.findall("outline")}
        expected = {href for _, href in feeds_of("")} | {
            href
            for s in sites.config.sources
            for _, href in feeds_of(f"{s.id}/", counters=s.counters)
        }
        assert listed == expected
        assert all(o.get("type") == "rss" for g in groups for o in g.findall("outline"))
        for url in sorted(listed):
            async with client.get(url.removeprefix(PUBLIC)) as resp:
                assert resp.status == 200, url
                data = await resp.read()
            if url.endswith(".json"):
                check_json(data, url)
            else:
                check_document(data, url, archive=False)


async def test_feeds_of_each_source_answer_before_the_first_poll(
    make_sites: SitesFactory,
) -> None:
    sites = make_sites()
    async with serve(sites) as client:
        for name in ("cms/statements.atom", "mirror/counters.atom", "statements.rss"):
            async with client.get(f"/feeds/{name}") as resp:
                assert resp.status == 200, name
                parsed = feedparser.parse(await resp.read())
            assert parsed.bozo == 0 and parsed.entries == [], name
        async with client.get("/feeds/cms/statements.json") as resp:
            assert check_json(await resp.read())["items"] == []
        for name in ("cms/counters.atom", "nope/statements.atom"):
            async with client.get(f"/feeds/{name}") as resp:
                assert resp.status == 404, name


def metric(text: str, name: str) -> dict[str, float]:
    return {
        sample.labels.get("source", ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_health_and_metrics_speak_for_each_source(make_sites: SitesFactory) -> None:
    sites = make_sites()
    sites.poll()
    sites.other.misbehave("/", "status", status=500)
    assert sites.pipelines["cms"].poll().result == "failed"
    async with serve(sites) as client:
        async with client.get("/healthz") as resp:
            assert resp.status == 200  # the primary source is well: so is the service
            doc = await resp.json()
        async with client.get("/metrics") as resp:
            text = await resp.text()
    assert set(doc["sources"]) == {"embassy-uk", "cms", "mirror"}
    # The top-level keys are the primary source's, as before several sources.
    assert doc["statements"] == doc["sources"]["embassy-uk"]["statements"] == 11
    assert doc["last_poll"] == doc["sources"]["embassy-uk"]["last_poll"]
    cms = doc["sources"]["cms"]
    assert cms["last_poll"]["result"] == "failed" and "500" in cms["last_poll"]["error"]
    assert cms["consecutive_failures"] == 1
    assert cms["statements"] == sites.store.view("cms").count_statements() > 0
    assert cms["last_success_at"] is not None
    assert doc["sources"]["mirror"]["last_poll"]["result"] == "ok"
    assert doc["sources"]["mirror"]["reader"] == "selectors"
    assert set(cms["full_texts"]) <= {"pending", "failing", "skipped"}

    up = metric(text, "feedbot_source_up")
    assert (up["embassy-uk"], up["cms"], up["mirror"]) == (1.0, 0.0, 1.0)
    stored = metric(text, "feedbot_source_statements")
    assert stored["mirror"] == 11.0
    assert metric(text, "feedbot_source_consecutive_failures")["cms"] == 1.0
    assert metric(text, "feedbot_statements_stored")[""] == sum(
        stored[s.id] for s in sites.config.sources
    )


async def test_one_source_shows_no_source_marks_and_lists_its_feeds_once(
    make_sites: Callable[..., Sites],
) -> None:
    sites = make_sites(sources=[])
    sites.poll()
    async with serve(sites) as client:
        doc = await page(client, "/")
        async with client.get("/feeds.opml") as resp:
            opml = strict_xml(await resp.read(), "feeds.opml")
        own = await page(client, "/sources/embassy-uk")
    assert not doc.xpath('//section[@class="sources"]') and not doc.xpath('//a[@class="source"]')
    assert alternates(doc) == feeds_of("")
    assert len(opml.findall("body/outline")) == 1
    assert {o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")} == {
        href for _, href in feeds_of("")
    }
    assert titles(own) == titles(doc)[:30]
