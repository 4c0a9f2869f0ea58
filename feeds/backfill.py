"""Walking the source's archive ("all messages") pages to store every statement.

Each page's statements are stored in one transaction together with a note
that the page was walked (and where its next page is), so an interrupted walk
resumes after the last page it finished, without fetching the walked pages
again. A finished walk clears the notes; the next one starts from page one.
Backfilled statements are history: they are stored, never pushed to anyone.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

from feeds.config import FeedsConfig
from feeds.errors import ConfigError, SourceError
from feeds.fetch import Fetcher
from feeds.model import Page
from feeds.parse import parse_page
from feeds.store import Store

log = logging.getLogger(__name__)


@dataclass
class BackfillResult:
    pages: int = 0  # fetched in this run
    skipped: int = 0  # already walked by an interrupted run
    seen: int = 0  # statements read
    new: int = 0  # statements stored for the first time
    finished: bool = False  # reached the last page (or a bound)
    error: SourceError | None = None


Progress = Callable[[BackfillResult, str], None]


def _since_filter(page: Page, since: dt.date | None) -> tuple[Page, bool]:
    """The page's statements (from ``since`` on), and whether older ones were cut.
    Counters are dropped: an archive page says nothing about today's counters."""
    kept = [e for e in page.entries if since is None or e.published is None or e.published >= since]
    cut = len(kept) < len(page.entries)
    return Page(as_of=page.as_of, counters=[], entries=kept, next_url=page.next_url), cut


def backfill(
    config: FeedsConfig,
    store: Store,
    fetcher: Fetcher,
    max_pages: int | None = None,
    since: dt.date | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> BackfillResult:
    profile = config.source.profile
    if not profile.archive_url:
        raise ConfigError(f"source.profile: profile {profile.name!r} has no [archive] url")
    walked = store.archive_progress()
    url: str | None = urljoin(config.source.url, profile.archive_url)
    result = BackfillResult()
    visited: set[str] = set()
    while url is not None:
        if url in visited:
            log.warning("archive pages link back to %s; stopping", url)
            break
        visited.add(url)
        if url in walked:  # done by an interrupted run: jump to its next page
            result.skipped += 1
            url = walked[url]
            continue
        if max_pages is not None and result.pages >= max_pages:
            store.forget_archive_progress()  # a bounded walk is complete, not interrupted
            result.finished = True
            return result
        if result.pages:
            sleep(config.fetch.article_delay)
        try:
            response = fetcher.get(url)
            page = parse_page(response.body, response.url, profile, response.content_type)
        except SourceError as exc:
            log.error("archive page %s: %s (run backfill again to resume here)", url, exc)
            result.error = exc
            return result
        page, older_cut = _since_filter(page, since)
        with store.begin() as conn:
            changes = store.apply_page(page, clock(), conn) if page.entries else None
            store.mark_archive_walked(url, page.next_url, len(page.entries), clock(), conn)
        result.pages += 1
        result.seen += len(page.entries)
        result.new += len(changes.new) if changes else 0
        if progress is not None:
            progress(result, url)
        if older_cut:
            break
        url = page.next_url
    store.forget_archive_progress()
    result.finished = True
    return result
