"""Before the service polls: every feed source (``kind = "feed"``) is fetched once,
and one whose URL answers an HTML page is refused with one line naming the source.

Only that mistake stops the start: a source that is down, slow or serving a broken
feed right now is left to its polls (a failed poll and an alert for that source
alone), since refusing to start over a passing outage would take every other source
down with it. Nor does a feed that does not answer: the check gives each feed
``CHECK_SECONDS`` (not the fetch's whole deadline, which a hanging host would
hold the start for).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from feeds.errors import ConfigError, FetchCancelled, NotAFeed, SourceError
from feeds.pipeline import Pipeline
from feeds.urls import masked_in_text

log = logging.getLogger(__name__)

AS_PAGE_HINT = 'Or should the source be kind = "page"?'
CHECKS_AT_ONCE = 8
CHECK_SECONDS = 10.0  # the start waits this long at most for the feeds that hang


def refuse_html_feeds(pipelines: list[Pipeline], seconds: float = CHECK_SECONDS) -> None:
    """ConfigError for the first feed source (in configuration order) whose URL
    answers an HTML page; every feed source is looked at, several at once, and
    those with no answer within ``seconds`` are left to their polls."""
    feeds = [p for p in pipelines if p.source.kind == "feed"]
    if not feeds:
        return
    give_up = threading.Event()
    timer = threading.Timer(seconds, give_up.set)
    timer.daemon = True
    timer.start()
    try:
        with ThreadPoolExecutor(min(CHECKS_AT_ONCE, len(feeds)), "feed-check") as pool:
            problems = list(pool.map(lambda p: _first_look(p, give_up, seconds), feeds))
    finally:
        timer.cancel()
    for problem in problems:
        if problem is not None:
            raise ConfigError(problem)


def _first_look(pipeline: Pipeline, give_up: threading.Event, seconds: float) -> str | None:
    source = pipeline.source
    try:
        with pipeline.gate.turn(source.url, poll=True, stop=give_up):
            response = pipeline.fetcher.get(source.url, source_url=source.url, cancel=give_up)
        pipeline.read(response.body, response.url, response.content_type)
    except NotAFeed as exc:
        return f"source {source.id!r}: {masked_in_text(str(exc))} {AS_PAGE_HINT}"
    except FetchCancelled:
        log.warning(
            "source %s not checked at start (no answer within %gs); its polls will tell",
            source.id,
            seconds,
        )
    except SourceError as exc:
        log.warning("source %s not checked at start (%s); its polls will tell", source.id, exc)
    return None
