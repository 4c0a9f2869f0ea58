"""The HTTP server: feeds (with ETag, Last-Modified and 304s), pages, health, metrics.

Feed documents are served from the files the pipeline publishes, held in
memory and re-read only when a file's stat changes, so a feed request costs a
``stat`` and a dictionary lookup. A gzip copy is kept beside each body.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import gzip
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics as bot_metrics
from bot.store import BotStore
from feedbot.settings import Settings
from feeds import metrics as feed_metrics
from feeds import render
from feeds.clock import LONDON
from feeds.publish import etag_of
from feeds.store import Store

log = logging.getLogger(__name__)
VERSION = "0.1.0"
CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
}
_STATEMENT = re.compile(r"^/statements/(\d{1,18})$")
_FEED_NAME = re.compile(r"^(?:archive/)?[a-z0-9][a-z0-9.-]*\.(?:atom|rss|json)$")


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
    and a feed that changed is served a fraction of a second later."""

    def __init__(self, folder: Path, recheck_seconds: float = 0.0) -> None:
        self.folder = str(folder)
        self.recheck_seconds = recheck_seconds
        self._cache: dict[str, FeedFile] = {}
        self._checked: dict[str, float] = {}

    def get(self, name: str) -> FeedFile | None:
        cached = self._cache.get(name)
        if cached is None and (not _FEED_NAME.match(name) or ".." in name):
            return None
        now = time.monotonic()
        if cached is not None and now - self._checked.get(name, 0.0) < self.recheck_seconds:
            return cached
        self._checked[name] = now
        path = os.path.join(self.folder, name)  # str paths: pathlib costs more than the stat
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if cached is not None and cached.key == key:
            return cached
        with open(path, "rb") as handle:
            body = handle.read()
        cached = feed_file(name, body, etag_of(body), st.st_mtime, key)
        self._cache[name] = cached
        return cached


def feed_file(name: str, body: bytes, etag: str, mtime: float, key: Any) -> FeedFile:
    return FeedFile(
        key=key,
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0),
        etag=etag,
        gzip_etag=f'{etag[:-1]}-gz"',
        last_modified=email.utils.formatdate(mtime, usegmt=True),
        mtime=int(mtime),
        content_type=CONTENT_TYPES[os.path.splitext(name)[1]],
    )


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


WebhookHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WorkerView:
    """What the web server may ask of the worker in its process (nothing without one)."""

    state: Callable[[], str | None] = lambda: None  # "active" | "standby" | None
    bot_username: Callable[[], str | None] = lambda: None
    webhook_route: Callable[[], tuple[str, WebhookHandler] | None] = lambda: None


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
        self.worker = worker or WorkerView()
        self.pages = {"/": self.index, "/healthz": self.healthz, "/metrics": self.metrics}
        self.started = time.time()
        self.cache_control = f"public, max-age={min(settings.feeds.source.poll_seconds, 300)}"
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("feedbot", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    async def telegram_webhook(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self.worker.webhook_route()
        if route is None:
            return web.Response(status=503, text="the bot is not running\n")
        path, receive = route
        if request.path != path:
            return web.Response(status=404, text="404: Not Found\n")
        response: web.StreamResponse = await receive(request)
        return response

    def server(self) -> web.Server:
        """aiohttp's low-level server around ``handle``: the Application layer
        (router, middlewares, signals) costs more per request than a feed answer
        itself, and there are only a handful of routes."""
        return web.Server(self.handle)

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
        return web.Response(status=404, text="404: Not Found\n")

    def feed(self, request: web.BaseRequest, name: str) -> web.Response:
        f = self.files.get(name)
        if f is None:
            return web.Response(status=404, text="no such feed (has the first poll finished?)\n")
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

    def _status(self) -> dict[str, Any]:
        store = self.store
        state = store.source_state(self.settings.feeds.source.url)
        last = store.last_poll()
        now = time.time()
        reference = state.last_success_at.timestamp() if state.last_success_at else self.started
        limit = self.settings.http.unhealthy_after_seconds
        healthy = now - reference <= limit
        doc: dict[str, Any] = {
            "status": "ok" if healthy else "failing",
            "version": VERSION,
            "source": self.settings.feeds.source.url,
            "last_poll": None
            if last is None
            else {
                "started_at": last.started_at.isoformat(),
                "finished_at": last.finished_at.isoformat(),
                "result": last.result,
                "error": last.error,
                "new_statements": last.new_statements,
            },
            "last_success_at": state.last_success_at.isoformat() if state.last_success_at else None,
            "consecutive_failures": state.consecutive_failures,
            "statements": store.count_statements(),
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
        )
        return doc

    async def healthz(self, request: web.BaseRequest) -> web.Response:
        doc = await asyncio.to_thread(self._status)
        return web.json_response(doc, status=200 if doc["status"] == "ok" else 503)

    def _refresh_gauges(self) -> None:
        # Gauges that describe the database, read when scraped so that every
        # instance (and a `serve` without a worker) reports the same numbers.
        outbox = self.bot_store.outbox_counts()
        bot_metrics.OUTBOX_BACKLOG.set(outbox.get("pending", 0) + outbox.get("sending", 0))
        bot_metrics.SUBSCRIBERS.set(self.bot_store.subscriber_counts()["total"])
        feed_metrics.STATEMENTS_STORED.set(self.store.count_statements())

    async def metrics(self, request: web.BaseRequest) -> web.Response:
        await asyncio.to_thread(self._refresh_gauges)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _index_context(self) -> dict[str, Any]:
        store = self.store
        today = dt.datetime.now(LONDON).date()
        counters = store.counters()
        return {
            "title": self.settings.feeds.publish.title,
            "subtitle": self.settings.feeds.publish.subtitle,
            "source_url": self.settings.feeds.source.url,
            "statements": store.statements(limit=30),
            "counters": [
                {"days": c.days_on(today), "subject": c.subject, "note": c.note, "since": c.since}
                for c in counters
            ],
            "today": today,
            "status": self._status(),
            "bot_username": self.worker.bot_username(),
            "feeds": [
                ("Atom", "/feeds/statements.atom", "application/atom+xml"),
                ("RSS", "/feeds/statements.rss", "application/rss+xml"),
                ("JSON Feed", "/feeds/statements.json", "application/feed+json"),
                ("Counters (Atom)", "/feeds/counters.atom", "application/atom+xml"),
            ],
            "render": render,
        }

    async def index(self, request: web.BaseRequest) -> web.Response:
        context = await asyncio.to_thread(self._index_context)
        body = self.templates.get_template("index.html").render(**context)
        return web.Response(text=body, content_type="text/html", charset="utf-8")

    async def statement(self, seq: int) -> web.Response:
        found = await asyncio.to_thread(self.store.statement_by_seq, seq)
        if found is None:
            return web.Response(status=404, text="no such statement\n")
        versions = await asyncio.to_thread(self.store.versions, found.id)
        body = self.templates.get_template("statement.html").render(
            title=self.settings.feeds.publish.title, s=found, versions=versions, render=render
        )
        return web.Response(text=body, content_type="text/html", charset="utf-8")
