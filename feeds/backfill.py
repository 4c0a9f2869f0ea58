"""Walking the source's archive lists to store every statement.

The walk starts where the home page's own "all messages" link points (else at
the profile's first list), then walks each chosen list in turn. From one page
to the next it goes by, in order: the page's next link, its pager line
(``Pages: ««« :: 1 2 3 … :: »»»``), or the page's offset plus the page size. A
list ends when its pager shows no further page, when a page brings no
statement that earlier pages of the list did not, when ``--since`` is reached,
or when a page guessed from the offset is missing or empty (the end of an
offset-paged list). A page the site links to that fails to load or read stops
the walk with the error.

Each page's statements are stored in one transaction together with a note
that the page was walked and where the walk goes after it (no URL: its list
ended there), so an interrupted walk — an error, or ``max_pages`` reached —
resumes after the last page it finished, without fetching the walked pages
again. A finished walk clears the notes; the next one starts from page one.
Backfilled statements are history: they are stored, never pushed to anyone.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from feeds.archive import all_messages_link, next_in_pager, offset_of, pager_links, with_offset
from feeds.config import FeedsConfig
from feeds.errors import ConfigError, ParseError, SourceError, SourceHTTPError
from feeds.fetch import Response
from feeds.fetch_factory import AnyFetcher
from feeds.model import Page
from feeds.parse import parse_page
from feeds.profile import ArchiveList, SourceProfile
from feeds.store import Store

log = logging.getLogger(__name__)

ALL_LISTS = "all"
# Answers that mean "no such page" for a page guessed from the offset: the list's end.
_GONE = (404, 410)


@dataclass
class BackfillResult:
    pages: int = 0  # fetched in this run
    skipped: int = 0  # already walked by an interrupted run
    seen: int = 0  # statements read
    new: int = 0  # statements stored for the first time
    finished: bool = False  # every chosen list walked to its end: the notes are cleared
    bounded: bool = False  # stopped at max_pages; run again to go on
    error: SourceError | None = None
    lists: list[str] = field(default_factory=list)  # the lists walked, in order


Progress = Callable[[BackfillResult, str], None]


def choose_lists(profile: SourceProfile, names: Sequence[str] | None) -> list[ArchiveList]:
    """The profile's lists to walk: ``names`` (``"all"`` for every list), else its ``walk``."""
    archive = profile.archive
    by_name = {a.name: a for a in archive.lists}
    if not by_name:
        raise ConfigError(f"source.profile: profile {profile.name!r} has no [archive] lists")
    wanted = list(names) if names else list(archive.walk)
    if ALL_LISTS in wanted:
        return list(archive.lists)
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ConfigError(
            f"no archive list {', '.join(map(repr, unknown))} in profile {profile.name!r} "
            f"(it has {', '.join(by_name)}, or {ALL_LISTS!r})"
        )
    return [by_name[n] for n in dict.fromkeys(wanted)]


def _since_filter(page: Page, since: dt.date | None) -> tuple[Page, bool]:
    """The page's statements (from ``since`` on), and whether older ones were cut.
    Counters are dropped: an archive page says nothing about today's counters."""
    kept = [e for e in page.entries if since is None or e.published is None or e.published >= since]
    cut = len(kept) < len(page.entries)
    return Page(as_of=page.as_of, counters=[], entries=kept, next_url=page.next_url), cut


def backfill(
    config: FeedsConfig,
    store: Store,
    fetcher: AnyFetcher,
    max_pages: int | None = None,
    since: dt.date | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    lists: Sequence[str] | None = None,
    restart: bool = False,
) -> BackfillResult:
    """Walk the chosen archive lists (``lists``: names from the profile, ``"all"``,
    or None for the profile's ``walk``) and store every statement on them.

    ``restart`` forgets an interrupted walk and starts from page one. Raises
    ConfigError for a profile without archive lists or an unknown list name."""
    walk = _Walk(config, store, fetcher, max_pages, since, progress, sleep, clock)
    chosen = choose_lists(config.source.profile, lists)
    if restart:
        store.forget_archive_progress()
    walk.walked = store.archive_progress()
    first_list = config.source.profile.archive.lists[0]
    for archive_list in chosen:
        walk.result.lists.append(archive_list.name)
        try:
            start = walk.start_of(archive_list, is_first=archive_list == first_list)
        except SourceError as exc:
            return walk.failed(config.source.url, exc)
        if not walk.walk_list(start):
            return walk.result
    store.forget_archive_progress()
    walk.result.finished = True
    return walk.result


class _Walk:
    """One run of the walk: the settings, the notes of earlier runs, and the tally."""

    def __init__(
        self,
        config: FeedsConfig,
        store: Store,
        fetcher: AnyFetcher,
        max_pages: int | None,
        since: dt.date | None,
        progress: Progress | None,
        sleep: Callable[[float], None],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.config = config
        self.profile = config.source.profile
        self.store = store
        self.fetcher = fetcher
        self.max_pages = max_pages
        self.since = since
        self.progress = progress
        self.sleep = sleep
        self.clock = clock
        self.walked: dict[str, str | None] = {}
        self.visited: set[str] = set()
        self.result = BackfillResult()
        self.fetches = 0
        # Archive links lead to the source's own host (or a host the profile allows).
        self.hosts = (urlsplit(config.source.url).hostname or "", *self.profile.allowed_hosts)

    def start_of(self, archive_list: ArchiveList, is_first: bool) -> str:
        """Where a list's walk begins: for the profile's first list, the home page's
        "all messages" link when it has one (noted, so a resumed walk needs no home page)."""
        archive = self.profile.archive
        default = urljoin(self.config.source.url, archive_list.first_page(archive.first))
        home = self.config.source.url
        if not is_first or archive.all_messages is None:
            return default
        noted = self.walked.get(home)
        if noted:
            return noted
        response = self._get(home)
        link = all_messages_link(
            response.body, response.url, archive.all_messages, response.content_type
        )
        if link is None:
            log.info("no %r link on %s; walking %s", archive.all_messages.pattern, home, default)
            return default
        self._note(home, link, 0)
        return link

    def walk_list(self, url: str | None) -> bool:
        """Walk one list from ``url``; False when the walk stopped (error or bound)."""
        ids_seen: set[str] = set()  # statements on this list's pages fetched in this run
        guessed = False  # the URL came from offset arithmetic, not from a link on the site
        while url is not None:
            if url in self.visited:
                log.warning("archive pages link back to %s; ending this list", url)
                return True
            self.visited.add(url)
            if url in self.walked:  # done by an interrupted run: jump to where it went next
                self.result.skipped += 1
                url, guessed = self.walked[url], False
                continue
            if self.max_pages is not None and self.result.pages >= self.max_pages:
                self.result.bounded = True
                return False
            try:
                response = self._get(url)
                page = parse_page(response.body, response.url, self.profile, response.content_type)
            except (SourceHTTPError, ParseError) as exc:
                gone = isinstance(exc, ParseError) or exc.status in _GONE
                if guessed and gone:  # past the end of an offset-paged list
                    log.info("archive list ends before %s (%s)", url, exc)
                    self._note(url, None, 0)
                    return True
                self.failed(url, exc)
                return False
            except SourceError as exc:
                self.failed(url, exc)
                return False
            page, older_cut = _since_filter(page, self.since)
            ids = {e.id for e in page.entries}
            brings_new = bool(ids - ids_seen)
            ids_seen |= ids
            after, guessed = self._next_url(response, page.next_url)
            if older_cut or not brings_new:
                after = None  # this list ends here
            with self.store.begin() as conn:
                changes = self.store.apply_page(page, self.clock(), conn) if page.entries else None
                self.store.mark_archive_walked(url, after, len(page.entries), self.clock(), conn)
            self.result.pages += 1
            self.result.seen += len(page.entries)
            self.result.new += len(changes.new) if changes else 0
            if self.progress is not None:
                self.progress(self.result, url)
            url = after
        return True

    def _next_url(self, response: Response, next_link: str | None) -> tuple[str | None, bool]:
        """The page after this one, and whether it is only guessed from the offset."""
        archive = self.profile.archive
        if next_link:
            return next_link, False
        if archive.pager is not None:
            links = pager_links(
                response.body, response.url, archive.pager, archive.offset, response.content_type
            )
            if links is not None:
                current = offset_of(response.url, archive.offset)
                return next_in_pager(links, archive.first if current is None else current), False
        current = offset_of(response.url, archive.offset)
        if current is None:
            return None, False
        return with_offset(response.url, archive.offset, current + archive.step), True

    def _get(self, url: str) -> Response:
        if self.fetches:
            self.sleep(self.config.fetch.article_delay)
        self.fetches += 1
        return self.fetcher.get(url, allowed_hosts=self.hosts, source_url=self.config.source.url)

    def _note(self, url: str, after: str | None, count: int) -> None:
        with self.store.begin() as conn:
            self.store.mark_archive_walked(url, after, count, self.clock(), conn)

    def failed(self, url: str, exc: SourceError) -> BackfillResult:
        log.error("archive page %s: %s (run backfill again to resume here)", url, exc)
        self.result.error = exc
        return self.result
