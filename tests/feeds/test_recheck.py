"""An unchanged page asked again on the event loop (feeds.recheck): the source sees
the fetcher's own request, a 304 is the only answer taken there, and anything else
is left to the fetcher, which asks again."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest
import requests

from feeds.fetch import Fetcher, Response
from feeds.pipeline import Pipeline
from feeds.recheck import Recheck
from tests.support.fake_source import FakeSource
from tests.support.harness import with_new_statement


@pytest.fixture
async def recheck(pipeline: Pipeline) -> AsyncIterator[Recheck]:
    asking = Recheck(pipeline.config.fetch)
    yield asking
    await asking.close()


async def ask(recheck: Recheck, pipeline: Pipeline) -> Response | None:
    assert isinstance(pipeline.fetcher, Fetcher) and pipeline.known_validators is not None
    return await recheck.unchanged(
        pipeline.fetcher, pipeline.source_url, *pipeline.known_validators
    )


def page_requests(source: FakeSource) -> list[dict[str, str]]:
    return [r.headers for r in source.requests if r.path == "/"]


async def test_the_source_sees_the_fetchers_own_request_and_answers_304(
    pipeline: Pipeline, recheck: Recheck, source: FakeSource
) -> None:
    await asyncio.to_thread(pipeline.poll)
    assert (await asyncio.to_thread(pipeline.poll)).result == "not_modified"
    answer = await ask(recheck, pipeline)
    assert answer is not None and answer.status == 304
    by_fetcher, by_recheck = page_requests(source)[-2:]
    # The same question, header for header: User-Agent, Accept, Accept-Encoding,
    # the validators (a server that varies its ETag by encoding sees no difference).
    assert by_recheck == by_fetcher
    assert by_recheck["If-None-Match"] and by_recheck["User-Agent"].startswith("feedbot/")


async def test_a_changed_page_is_left_to_the_fetcher_which_reads_it(
    pipeline: Pipeline, recheck: Recheck, source: FakeSource
) -> None:
    await asyncio.to_thread(pipeline.poll)
    source.set_body("/", with_new_statement(7001, "Something new"))
    before = len(page_requests(source))
    assert await ask(recheck, pipeline) is None  # a 200: not read here
    outcome = await asyncio.to_thread(pipeline.poll)
    assert outcome.changes is not None
    assert [s.title for s in outcome.changes.new] == ["Something new"]
    assert len(page_requests(source)) == before + 2  # once asked, once read


@pytest.mark.parametrize(
    ("kind", "opts"),
    [
        ("status", {"status": 503, "retry_after": 1}),
        ("redirect", {"location": "/elsewhere"}),
        ("close", {}),
    ],
)
async def test_any_other_answer_is_left_to_the_fetcher(
    pipeline: Pipeline, recheck: Recheck, source: FakeSource, kind: str, opts: dict[str, object]
) -> None:
    await asyncio.to_thread(pipeline.poll)
    source.misbehave("/", kind, **opts)  # type: ignore[arg-type]
    assert await ask(recheck, pipeline) is None
    assert not [r for r in source.requests if r.path == "/elsewhere"]  # no redirect followed


async def test_a_hanging_source_is_given_up_at_the_read_timeout(
    pipeline: Pipeline, recheck: Recheck, source: FakeSource
) -> None:
    await asyncio.to_thread(pipeline.poll)
    source.misbehave("/", "slow", seconds=30)
    started = time.monotonic()
    assert await ask(recheck, pipeline) is None
    read_timeout = pipeline.config.fetch.read_timeout
    assert read_timeout <= time.monotonic() - started < read_timeout + 1.5


async def test_nothing_is_asked_when_the_fetcher_would_add_to_the_request(
    pipeline: Pipeline, recheck: Recheck, source: FakeSource
) -> None:
    """A cookie in the fetcher's jar (a CDN's clearance, say) goes with every request
    the fetcher makes: this client has none, so it does not ask at all."""
    await asyncio.to_thread(pipeline.poll)
    assert isinstance(pipeline.fetcher, Fetcher)
    pipeline.fetcher.session.cookies.set_cookie(
        requests.cookies.create_cookie("clearance", "yes", domain="127.0.0.1")
    )
    before = len(source.requests)
    assert await ask(recheck, pipeline) is None
    assert len(source.requests) == before


async def test_nothing_is_asked_once_the_process_is_stopping(
    pipeline: Pipeline, recheck: Recheck, source: FakeSource
) -> None:
    await asyncio.to_thread(pipeline.poll)
    stopping = threading.Event()
    stopping.set()
    fetcher = Fetcher(pipeline.config.fetch, cancel=stopping)
    try:
        before = len(source.requests)
        assert pipeline.known_validators is not None
        assert (
            await recheck.unchanged(fetcher, pipeline.source_url, *pipeline.known_validators)
            is None
        )
        assert len(source.requests) == before
    finally:
        fetcher.close()


async def test_the_request_target_is_the_fetchers_byte_for_byte(
    pipeline: Pipeline, recheck: Recheck, source: FakeSource
) -> None:
    """A source URL with a space and brackets in its query (a search feed's, say):
    aiohttp would quote it its own way; the source must see one URL, not two."""
    assert isinstance(pipeline.fetcher, Fetcher)
    url = source.url + "/?organisations[]=fcdo&q=press release"
    # Served where requests asks for it (aiohttp alone would ask for "q=press+release").
    source.set_body("/?organisations%5B%5D=fcdo&q=press%20release", "<p>a search page</p>")
    etag = pipeline.fetcher.get(url).etag
    assert pipeline.fetcher.get(url, etag=etag).status == 304
    answer = await recheck.unchanged(pipeline.fetcher, url, etag, None)
    assert answer is not None and answer.status == 304
    by_fetcher, by_recheck = [r.path for r in source.requests][-2:]
    assert by_recheck == by_fetcher
