"""The fetcher a source's settings ask for: plain HTTP, or a headless browser."""

from __future__ import annotations

import threading
from typing import TypeAlias

from feeds.browser import BrowserFetcher
from feeds.config import FeedsConfig, SourceSettings
from feeds.fetch import Fetcher

# What the pipeline, backfill and `feedbot parse` may be handed.
AnyFetcher: TypeAlias = Fetcher | BrowserFetcher


def make_fetcher(
    config: FeedsConfig,
    stop: threading.Event | None = None,
    source: SourceSettings | None = None,
) -> AnyFetcher:
    """``fetch = "http"`` (default) or ``"browser"`` for ``source`` (default: the
    primary source); ConfigError if the browser cannot be had (the extra not
    installed, no Chromium at ``browser_path``). ``stop`` (the process's stop event)
    ends a fetch in flight at once."""
    source = source or config.source
    if source.fetch != "browser":
        return Fetcher(config.fetch, cancel=stop)
    profile = source.profile
    # The page is ready once it shows a statement list (home, archive) or an article text.
    ready = ", ".join(s.css for s in (profile.list.item, profile.article.text) if s is not None)
    return BrowserFetcher(
        config.fetch,
        source.browser_path,
        wait_for=ready or None,
        hosts=profile.allowed_hosts,
    )
