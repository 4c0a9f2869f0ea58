"""WebSub publisher pings: tell the configured hub which feed documents changed.

The feeds name the hub with ``<link rel="hub">`` (see ``feeds.render``); after a
publish that rewrote a feed, the hub gets one ``hub.mode=publish`` request per
changed topic (form-encoded, W3C WebSub §7 / PubSubHubbub 0.4 publish ping), and
fetches the topic itself to fan it out to subscribers.

A ping is a courtesy, not part of the poll: a hub that is down, slow or
answering errors is logged and counted, never raised. Timeouts are the fetch
settings', and once the hub is unreachable the remaining topics of that round
are skipped rather than each waiting for its own timeout. A missed ping is not
retried; the next change pings again, and hubs poll their topics anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import requests

from feeds import metrics
from feeds.config import FetchSettings
from feeds.render import FeedContext

log = logging.getLogger(__name__)

# Documents subscribers follow; archive pages never change once full, so need no ping.
TOPICS = ("statements.atom", "statements.rss", "statements.json", "counters.atom")


def changed_topics(ctx: FeedContext, written: Iterable[str]) -> list[str]:
    """Public URLs (as in each feed's ``rel="self"``) of the topic documents in ``written``."""
    changed = set(written)
    return [ctx.url(f"/feeds/{name}") for name in TOPICS if name in changed]


def ping_hub(
    session: requests.Session, hub: str, topics: Iterable[str], fetch: FetchSettings
) -> dict[str, str]:
    """POST a publish ping for each topic; returns each topic's result
    (``ok``, ``http_error``, ``timeout``, ``unreachable`` or ``skipped``)."""
    results: dict[str, str] = {}
    for topic in topics:
        if any(r in ("timeout", "unreachable") for r in results.values()):
            result = "skipped"
        else:
            result = _ping_once(session, hub, topic, fetch)
        results[topic] = result
        metrics.WEBSUB_PINGS.labels(result).inc()
    return results


def _ping_once(session: requests.Session, hub: str, topic: str, fetch: FetchSettings) -> str:
    try:
        # stream=True: the status is all we need; the body is never read into memory.
        with session.post(
            hub,
            data={"hub.mode": "publish", "hub.url": topic},
            timeout=(fetch.connect_timeout, fetch.read_timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            status, reason = response.status_code, response.reason or ""
    except requests.Timeout as exc:
        log.warning("WebSub hub did not answer the ping for %s: %s", topic, type(exc).__name__)
        return "timeout"
    except requests.RequestException as exc:
        log.warning("WebSub hub not reachable for %s: %s", topic, _short(exc))
        return "unreachable"
    if 200 <= status < 300:
        log.debug("WebSub hub accepted the ping for %s (HTTP %d)", topic, status)
        return "ok"
    log.warning("WebSub hub refused the ping for %s: HTTP %d %s", topic, status, reason)
    return "http_error"


def announce(
    session: requests.Session, ctx: FeedContext, written: Iterable[str], fetch: FetchSettings
) -> dict[str, str]:
    """Ping the feeds' hub (when one is configured) for the topic documents in ``written``."""
    topics = changed_topics(ctx, written)
    if not ctx.hub or not topics:
        return {}
    return ping_hub(session, ctx.hub, topics, fetch)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
