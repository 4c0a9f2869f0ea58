"""The HTTP server: feeds (with ETag, Last-Modified and 304s), pages, health, metrics.

Feed documents are served from the files the pipeline publishes, held in
memory and re-read only when a file's stat changes, so a feed request costs a
``stat`` and a dictionary lookup. A gzip copy is kept beside each body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email.utils
import errno
import gzip
import hashlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from lxml import etree
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics as bot_metrics
from bot.store import BotStore
from feedbot.settings import Settings
from feeds import metrics as feed_metrics
from feeds import render
from feeds.clock import LONDON
from feeds.config import SourceSettings
from feeds.errors import ConfigError
from feeds.links import safe_link
from feeds.model import StoredCounter
from feeds.pipeline import feed_context, source_labels
from feeds.publish import etag_of
from feeds.render import FeedContext, SourceLabel, counter_source
from feeds.store import Store
from feeds.urls import masked, masked_in_text, without_credentials

log = logging.getLogger(__name__)
VERSION = "0.1.0"
CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
}
_STATEMENT = re.compile(r"^/statements/(\d{1,18})$")
_SOURCE = re.compile(r"^/sources/([a-z0-9][a-z0-9-]{0,31})$")
OPML_TYPE = "text/x-opml; charset=utf-8"
# The shapes of the names the publisher writes (a folder level for archives or a
# source's own feeds), short enough for any file system: anything else is a 404
# without a look at the disk.
_FEED_NAME = re.compile(
    r"^(?:[a-z0-9][a-z0-9-]{0,63}/){0,2}[a-z0-9][a-z0-9.-]{0,63}\.(?:atom|rss|json)$"
)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
# The documents a reader may subscribe to before the first poll: answered empty
# (and valid) until the publisher has written them (also under each source's <id>/).
CURRENT_FEEDS = ("statements.atom", "statements.rss", "statements.json", "counters.atom")
FEED_KINDS = (
    ("Atom", "statements.atom", "application/atom+xml"),
    ("RSS", "statements.rss", "application/rss+xml"),
    ("JSON Feed", "statements.json", "application/feed+json"),
    ("Counters (Atom)", "counters.atom", "application/atom+xml"),
)

# Per source, read from the database when scraped (cheap: a few indexed queries each).
SOURCE_UP = Gauge(
    "feedbot_source_up",
    "1 when the source's last poll succeeded (read or not modified), 0 when it failed",
    ["source"],
)
SOURCE_STATEMENTS = Gauge("feedbot_source_statements", "Statements stored, by source", ["source"])
SOURCE_FAILURES = Gauge(
    "feedbot_source_consecutive_failures", "Polls failed in a row, by source", ["source"]
)


@dataclass(frozen=True)
class FeedFile:
    key: tuple[int, int, int]
    body: bytes
    gzipped: bytes
    etag: str
    gzip_etag: str  # the gzip copy is another representation, so it has its own tag
    last_modified: str
    mtime: float
    content_type: str


class FeedSource(Protocol):
    def get(self, name: str) -> FeedFile | None: ...


class FeedFiles:
    """Feed files by name, read once per change. A file is looked at (``stat``) at
    most every ``recheck_seconds``: the stat is a tenth of a feed answer's cost,
    and a feed that changed is served a fraction of a second later.

    Only files that exist are remembered, so the memory held is bounded by what
    the publisher wrote, however many other names clients ask for."""

    def __init__(self, folder: Path, recheck_seconds: float = 0.0) -> None:
        self.folder = str(folder)
        self.recheck_seconds = recheck_seconds
        self._cache: dict[str, tuple[FeedFile, float]] = {}  # name -> (file, when checked)

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, name: str) -> FeedFile | None:
        entry = self._cache.get(name)
        now = time.monotonic()
        if entry is not None:
            if now - entry[1] < self.recheck_seconds:
                return entry[0]
        elif not _FEED_NAME.match(name):  # also keeps out "..", "/x" and "x//y"
            return None
        path = os.path.join(self.folder, name)  # str paths: pathlib costs more than the stat
        try:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            if entry is not None and entry[0].key == key:
                self._cache[name] = (entry[0], now)
                return entry[0]
            with open(path, "rb") as handle:
                body = handle.read()
        except OSError:  # gone, a folder, unreadable: not a feed (and nothing to log)
            self._cache.pop(name, None)
            return None
        found = feed_file(name, body, etag_of(body), st.st_mtime, key)
        self._cache[name] = (found, now)
        return found


def feed_file(
    name: str, body: bytes, etag: str, mtime: float, key: Any, content_type: str | None = None
) -> FeedFile:
    return FeedFile(
        key=key,
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0),
        etag=etag,
        gzip_etag=f'{etag[:-1]}-gz"',
        last_modified=email.utils.formatdate(mtime, usegmt=True),
        mtime=int(mtime),
        content_type=content_type or CONTENT_TYPES[os.path.splitext(name)[1]],
    )


class EmptyFeeds:
    """The subscription documents with no entries, for the time before the
    publisher first wrote them: a reader subscribing then gets a valid feed, not
    a 404 it may give up on. The same bytes the publisher writes for an empty
    store, rendered once each.

    ``sets``: (prefix, context, has counters) of each set of documents: the
    combined ones at the top level (prefix ""), each source's under ``<id>/``."""

    def __init__(self, sets: list[tuple[str, FeedContext, bool]], counter_days: int) -> None:
        self.counter_days = counter_days
        self._known = {
            f"{prefix}{name}": (ctx, name)
            for prefix, ctx, counters in sets
            for name in CURRENT_FEEDS
            if counters or name != "counters.atom"
        }
        self._made: dict[str, FeedFile] = {}

    def get(self, name: str) -> FeedFile | None:
        known = self._known.get(name)
        if known is None:
            return None
        made = self._made.get(name)
        if made is None:
            body = self._render(known[0], known[1], f"/feeds/{name}")
            when = render.EPOCH.timestamp()
            made = self._made[name] = feed_file(name, body, etag_of(body), when, etag_of(body))
        return made

    def _render(self, ctx: FeedContext, kind: str, path: str) -> bytes:
        if kind == "statements.atom":
            return render.statements_atom([], ctx, path, render.ArchiveLinks())
        if kind == "statements.rss":
            return render.statements_rss([], ctx, path)
        if kind == "statements.json":
            return render.statements_json([], ctx, path)
        today = dt.datetime.now(LONDON).date()  # no counters: the date shows nowhere
        return render.counters_atom([], ctx, path, today, self.counter_days)


FeedLink = tuple[str, str, str]  # (label, public address, media type)


def opml(title: str, groups: list[tuple[str, str, list[FeedLink]]]) -> bytes:
    """OPML 2.0 subscription list: one outline per group (text, page address), a
    ``type="rss"`` outline per feed in it (OPML's type for any feed format)."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = render.xml_text(title)
    body = etree.SubElement(root, "body")
    for text, page, links in groups:
        group = etree.SubElement(body, "outline", text=render.xml_text(text))
        for label, href, _type in links:
            name = render.xml_text(f"{text} ({label})")
            etree.SubElement(
                group, "outline", type="rss", text=name, title=name, xmlUrl=href, htmlUrl=page
            )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


class DatabaseFeeds:
    """Feed documents from the database, for web instances on several machines:
    all of them answer the same bytes and ETags. Held in memory and refreshed in
    the background once a second, so a request never waits for the database."""

    def __init__(self, store: Store, refresh_seconds: float = 1.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, FeedFile] = {}

    def get(self, name: str) -> FeedFile | None:
        return self._cache.get(name)

    def _load(self) -> dict[str, FeedFile]:
        fresh: dict[str, FeedFile] = {}
        for name, (etag, changed_at) in self.store.document_versions().items():
            cached = self._cache.get(name)
            if cached is not None and cached.etag == etag:
                fresh[name] = cached
                continue
            found = self.store.document(name)
            if found is not None and name.endswith(tuple(CONTENT_TYPES)):
                body, etag, changed_at = found
                fresh[name] = feed_file(name, body, etag, changed_at.timestamp(), etag)
        return fresh

    async def refresh(self) -> None:
        self._cache = await asyncio.to_thread(self._load)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:
                log.exception("could not read the feeds from the database")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_seconds)


def accepts_gzip(header: str) -> bool:
    """``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it)."""
    if "gzip" not in header:
        return False
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower().removeprefix("q=").strip()
            try:
                return not params or float(q) > 0
            except ValueError:
                return True
    return False


def not_modified(request: web.BaseRequest, etag: str, mtime: float) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since."""
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        if inm == etag:  # the usual case: a reader sending back what it got
            return True
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags or f'{etag[:-1]}-gz"' in tags
    ims = request.headers.get("If-Modified-Since")
    if ims:
        try:
            since = email.utils.parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return mtime <= since
    return False


TakeUpdate = Callable[[object, str | None], Awaitable[str]]
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 32\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
    b"too many connections, try later\n"
)


class LimitedServer(web.Server):
    """aiohttp's low-level server, with what it lacks against many slow clients:
    a cap on open connections (each holds an open file; past the process's limit
    nothing, not even the database, can open one) and a deadline for a new
    connection's first request head. Idle kept-alive connections are closed by
    aiohttp itself after ``idle_timeout``, which it also counts from the moment a
    connection opens."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_connections: int,
        idle_timeout: float,
        header_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(self._handle_request, keepalive_timeout=idle_timeout, **kwargs)
        self.handle = handler
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.refused = 0  # connections turned away since start
        self._warned_at = -60.0
        self._awaiting_head: dict[RequestHandler, asyncio.TimerHandle] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if len(self._connections) >= self.max_connections:
            # Answered at once and closed: the file is free again straight away,
            # and the client is told to come back rather than left hanging.
            self.refused += 1
            transport.write(BUSY)
            transport.close()
            now = time.monotonic()
            if now - self._warned_at >= 60:  # at most a line a minute, however many come
                self._warned_at = now
                log.warning(
                    "http.max_connections (%d) reached: turning connections away (%d so far)",
                    self.max_connections,
                    self.refused,
                )
            return
        super().connection_made(handler, transport)
        self._awaiting_head[handler] = asyncio.get_running_loop().call_later(
            self.header_timeout, self._too_slow, handler
        )

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        timer = self._awaiting_head.pop(handler, None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(handler, exc)

    def _too_slow(self, handler: RequestHandler) -> None:
        if self._awaiting_head.pop(handler, None) is not None:
            handler.force_close()

    async def _handle_request(self, request: web.BaseRequest) -> web.StreamResponse:
        timer = self._awaiting_head.pop(request.protocol, None)
        if timer is not None:
            timer.cancel()
        return await self.handle(request)


@dataclass(frozen=True)
class WorkerView:
    """What the web server may ask of the worker in its process (nothing without one)."""

    state: Callable[[], str | None] = lambda: None  # "active" | "standby" | None
    bot: Callable[[], str | None] = lambda: None  # "connected" | "connecting" | None
    bot_username: Callable[[], str | None] = lambda: None
    # (the secret path, take(payload, secret header) -> "ok" | "forbidden" | "bad")
    webhook: Callable[[], tuple[str, TakeUpdate] | None] = lambda: None


class WebApp:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bot_store: BotStore,
        worker: WorkerView | None = None,
        feeds: FeedSource | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bot_store = bot_store
        http = settings.http
        self.files: FeedSource = feeds or FeedFiles(
            settings.feeds.publish.folder, http.feed_recheck_seconds
        )
        self.feed_ctx = feed_context(settings.feeds)
        # Every configured source, the primary first; a deployment of one source shows
        # its pages and feeds as before several sources existed (no source named).
        self.sources = settings.feeds.sources
        self.several = len(self.sources) > 1
        self.labels: dict[str, SourceLabel] = source_labels(settings.feeds)
        self.source_ctx = {s.id: feed_context(settings.feeds, s) for s in self.sources}
        self.empty = EmptyFeeds(
            [
                ("", self.feed_ctx, True),
                *((f"{s.id}/", self.source_ctx[s.id], s.counters) for s in self.sources),
            ],
            settings.feeds.publish.counter_days,
        )
        self.worker = worker or WorkerView()
        self.pages = {
            "/": self.index,
            "/healthz": self.healthz,
            "/metrics": self.metrics,
            "/feeds.opml": self.opml,
        }
        self.started = time.time()
        self.cache_control = f"public, max-age={min(settings.feeds.source.poll_seconds, 300)}"
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("feedbot", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals["safe_link"] = safe_link
        # The pages' only style sheet is inline in base.html; the policy allows exactly it.
        digest = base64.b64encode(hashlib.sha256(self._style().encode()).digest()).decode()
        self.page_headers = {
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self'; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
        }
        # Links between the pages keep the public address's path (``https://host/prefix/``
        # behind a proxy that strips it); feed addresses are given whole, for readers.
        self.prefix = urlsplit(self.feed_ctx.public_url).path.rstrip("/")
        self.feed_links = self._links(self.feed_ctx, "", counters=True)
        self.source_links = {
            s.id: self._links(self.source_ctx[s.id], f"{s.id}/", s.counters) for s in self.sources
        }
        self.opml_url = self.feed_ctx.url("/feeds.opml")
        self.opml_file = self._opml_file()

    def _links(self, ctx: FeedContext, prefix: str, counters: bool) -> list[FeedLink]:
        return [
            (label, ctx.url(f"/feeds/{prefix}{name}"), kind)
            for label, name, kind in FEED_KINDS
            if counters or name != "counters.atom"
        ]

    def _opml_file(self) -> FeedFile:
        """Every feed, grouped by source (one source: its feeds at the top level, the
        same statements as its own copies); made once, the settings being fixed."""
        title = self.settings.feeds.publish.title
        if self.several:
            groups = [(f"{title}: all sources", self.feed_ctx.url("/"), self.feed_links)]
            groups += [
                (s.name, self.feed_ctx.url(f"/sources/{s.id}"), self.source_links[s.id])
                for s in self.sources
            ]
        else:
            groups = [(title, self.feed_ctx.url("/"), self.feed_links)]
        body = opml(title, groups)
        etag = etag_of(body)
        return feed_file("feeds.opml", body, etag, self.started, etag, OPML_TYPE)

    def _style(self) -> str:
        """The text of base.html's ``<style>`` element, as sent (it holds no template code)."""
        loader = self.templates.loader
        assert loader is not None
        source = loader.get_source(self.templates, "base.html")[0]
        found = _STYLE.search(source)
        assert found is not None, "base.html has no <style> element"
        return found.group(1)

    async def telegram_webhook(self, request: web.BaseRequest) -> web.StreamResponse:
        hook = self.worker.webhook()
        if hook is None:
            return web.Response(status=503, text="the bot is not running\n")
        path, take = hook
        if request.path != path:
            return web.Response(status=404, text="404: Not Found\n")
        try:
            payload = await request.json()
        except ValueError:
            return web.Response(status=400, text="not JSON\n")
        result = await take(payload, request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        status = {"ok": 200, "forbidden": 403}.get(result, 400)
        return web.Response(status=status, text=f"{result}\n")

    def server(self, max_connections: int | None = None) -> LimitedServer:
        """aiohttp's low-level server around ``handle``: the Application layer
        (router, middlewares, signals) costs more per request than a feed answer
        itself, and there are only a handful of routes."""
        http = self.settings.http
        return LimitedServer(
            self.handle,
            max_connections=max_connections or http.max_connections,
            idle_timeout=http.idle_timeout,
            header_timeout=http.header_timeout,
        )

    async def listen(
        self, host: str, port: int, max_connections: int | None = None
    ) -> web.ServerRunner:
        """The server started on ``host:port`` (``runner.addresses`` says where).
        An address that cannot be taken is a configuration error: one line, exit 2."""
        runner = web.ServerRunner(
            self.server(max_connections), access_log=None, handle_signals=False
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror or str(exc)
            if exc.errno == errno.EADDRINUSE:
                reason = "the address is already in use (another feedbot, or another server?)"
            raise ConfigError(f"http.port: cannot listen on {host}:{port}: {reason}") from None
        return runner

    def app(self) -> web.Application:
        """The same handler as an Application, for aiohttp's test utilities."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if request.method not in ("GET", "HEAD"):
            if request.method == "POST" and path.startswith("/telegram/"):
                return await self.telegram_webhook(request)
            return web.Response(
                status=405, text="405: Method Not Allowed\n", headers={"Allow": "GET, HEAD"}
            )
        if path.startswith("/feeds/"):
            return self.feed(request, path[len("/feeds/") :])
        page = self.pages.get(path)
        if page is not None:
            return await page(request)
        if (match := _STATEMENT.match(path)) is not None:
            return await self.statement(int(match.group(1)))
        if (match := _SOURCE.match(path)) is not None:
            return await self.source_page(match.group(1))
        return web.Response(status=404, text="404: Not Found\n")

    async def opml(self, request: web.BaseRequest) -> web.Response:
        return self.send(request, self.opml_file)

    def feed(self, request: web.BaseRequest, name: str) -> web.Response:
        f = self.files.get(name) or self.empty.get(name)
        if f is None:
            return web.Response(status=404, text="no such feed\n")
        return self.send(request, f)

    def send(self, request: web.BaseRequest, f: FeedFile) -> web.Response:
        """A document with its validators: 304 to a conditional request that matches."""
        gz = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        headers = {
            "ETag": f.gzip_etag if gz else f.etag,
            "Last-Modified": f.last_modified,
            "Cache-Control": self.cache_control,
            "Vary": "Accept-Encoding",
        }
        if not_modified(request, f.etag, f.mtime):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = f.content_type
        if gz:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=f.gzipped if gz else f.body, headers=headers)

    def _source_status(self, source: SourceSettings) -> dict[str, Any]:
        """One source's health: its last poll, failures in a row, statements."""
        store = self.store.view(source.key)
        state = store.source_state(source.url)
        last = store.last_poll()
        reference = state.last_success_at.timestamp() if state.last_success_at else self.started
        healthy = time.time() - reference <= self.settings.http.unhealthy_after_seconds
        return {
            "status": "ok" if healthy else "failing",
            "name": source.name,
            "kind": source.kind,
            "source": masked(source.url),
            "last_poll": None
            if last is None
            else {
                "started_at": last.started_at.isoformat(),
                "finished_at": last.finished_at.isoformat(),
                "result": last.result,
                "error": masked_in_text(last.error) if last.error else None,
                "new_statements": last.new_statements,
            },
            "last_success_at": state.last_success_at.isoformat() if state.last_success_at else None,
            "consecutive_failures": state.consecutive_failures,
            "statements": store.count_statements(),
            # selectors, or text-layout when the profile no longer fits the site
            "reader": store.last_reader(),
            # statement pages, apart from the source's health: pending, failing, skipped
            "full_texts": store.full_text_counts(self.settings.feeds.fetch.article_attempts),
        }

    def _status(self) -> dict[str, Any]:
        """The service's health. The top-level keys are the primary source's (as
        before several sources), ``sources`` has every source's by id; the status
        (and the 503) follows the primary source, each source has its own."""
        sources = {s.id: self._source_status(s) for s in self.sources}
        primary = sources[self.sources[0].id]
        doc: dict[str, Any] = {
            "status": primary["status"],
            "version": VERSION,
            **{k: v for k, v in primary.items() if k not in ("status", "name", "kind")},
        }
        subscribers = self.bot_store.subscriber_counts()
        outbox = self.bot_store.outbox_counts()
        doc.update(
            subscribers=subscribers["total"],
            outbox_backlog=outbox.get("pending", 0) + outbox.get("sending", 0),
            deliveries_failed=outbox.get("failed", 0),
            alerts=[
                {"at": at.isoformat(), "kind": kind, "text": text}
                for at, kind, text in self.bot_store.recent_alerts(5)
            ],
            worker=self.worker.state(),
            bot=self.worker.bot(),
            sources=sources,
        )
        return doc

    async def healthz(self, request: web.BaseRequest) -> web.Response:
        try:
            doc = await asyncio.to_thread(self._status)
        except SQLAlchemyError as exc:
            # The database is away: unhealthy, said in one line, never a 500.
            reason = masked_in_text(str(exc).splitlines()[0])[:300]
            doc = {"status": "failing", "version": VERSION, "reason": f"database: {reason}"}
        return web.json_response(doc, status=200 if doc["status"] == "ok" else 503)

    def _refresh_gauges(self) -> None:
        # Gauges that describe the database, read when scraped so that every
        # instance (and a `serve` without a worker) reports the same numbers.
        outbox = self.bot_store.outbox_counts()
        bot_metrics.OUTBOX_BACKLOG.set(outbox.get("pending", 0) + outbox.get("sending", 0))
        bot_metrics.SUBSCRIBERS.set(self.bot_store.subscriber_counts()["total"])
        feed_metrics.STATEMENTS_STORED.set(self.store.view(None).count_statements())
        full_texts = self.store.full_text_counts(self.settings.feeds.fetch.article_attempts)
        for state, count in full_texts.items():
            feed_metrics.FULL_TEXTS.labels(state).set(count)
        for source in self.sources:
            store = self.store.view(source.key)
            SOURCE_STATEMENTS.labels(source.id).set(store.count_statements())
            SOURCE_FAILURES.labels(source.id).set(
                store.source_state(source.url).consecutive_failures
            )
            last = store.last_poll()
            if last is not None:
                SOURCE_UP.labels(source.id).set(last.result in ("ok", "not_modified"))

    async def metrics(self, request: web.BaseRequest) -> web.Response:
        await asyncio.to_thread(self._refresh_gauges)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _counters(self, store: Store, today: dt.date) -> list[dict[str, Any]]:
        """The counters to show (of sources that have them), each with its source."""
        shown = {s.key: s.counters for s in self.sources}
        found: list[StoredCounter] = store.counters()
        return [
            {
                "days": c.days_on(today),
                "subject": c.subject,
                "note": c.note,
                "since": c.since,
                "source": self.labels.get(counter_source(c.key, shown)),
            }
            for c in found
            if shown.get(counter_source(c.key, shown), False)
        ]

    def _index_context(self) -> dict[str, Any]:
        everything = self.store.view(None)
        today = dt.datetime.now(LONDON).date()
        status = self._status()
        return {
            "subtitle": self.settings.feeds.publish.subtitle,
            "source_url": without_credentials(self.settings.feeds.source.url),
            "statements": everything.statements(limit=30),
            "counters": self._counters(everything, today),
            "today": today,
            "status": status,
            "stored": everything.count_statements(),
            "bot_username": self.worker.bot_username(),
            "sources": [
                {
                    "id": s.id,
                    "name": s.name,
                    "url": without_credentials(s.url),
                    **status["sources"][s.id],
                }
                for s in self.sources
            ],
        }

    def _source_context(self, source: SourceSettings) -> dict[str, Any]:
        store = self.store.view(source.key)
        today = dt.datetime.now(LONDON).date()
        return {
            "source": source,
            "source_url": without_credentials(source.url),
            "statements": store.statements(limit=30),
            "counters": self._counters(store, today) if source.counters else [],
            "today": today,
            "status": self._source_status(source),
        }

    def _page(self, template: str, **context: Any) -> web.Response:
        values: dict[str, Any] = {
            "title": self.settings.feeds.publish.title,
            "feeds": self.feed_links,
            "opml": self.opml_url,
            "prefix": self.prefix,
            "render": render,
            "several": self.several,
            # a statement's source, named only where there are several
            "labels": self.labels if self.several else {},
        }
        body = self.templates.get_template(template).render(values | context)
        return web.Response(
            text=body, content_type="text/html", charset="utf-8", headers=self.page_headers
        )

    async def index(self, request: web.BaseRequest) -> web.Response:
        return self._page("index.html", **await asyncio.to_thread(self._index_context))

    async def statement(self, seq: int) -> web.Response:
        found = await asyncio.to_thread(self.store.statement_by_seq, seq)
        if found is None:
            return web.Response(status=404, text="no such statement\n")
        versions = await asyncio.to_thread(self.store.versions, found.id)
        return self._page("statement.html", s=found, versions=versions)

    async def source_page(self, source_id: str) -> web.Response:
        found = next((s for s in self.sources if s.id == source_id), None)
        if found is None:
            return web.Response(status=404, text="no such source\n")
        context = await asyncio.to_thread(self._source_context, found)
        return self._page("source.html", feeds=self.source_links[found.id], **context)
