"""Fetching a page through a real browser, for sources the plain fetcher cannot read:
lists written by a script, or a CDN's check page that sets a cookie and reloads.

``source.fetch = "browser"`` selects this. It drives Debian's headless Chromium
with Playwright (the optional ``browser`` extra); Playwright never downloads a
browser here. The fetcher keeps the same limits as ``feeds.fetch.Fetcher``:

* the whole render (navigation, the page's scripts, a challenge's reload) must
  finish within ``fetch.deadline``, else SourceTimeout;
* no single response may bring in more than ``fetch.max_bytes``, and neither may
  the rendered document, else SourceTooLarge;
* the page may load only from its own host and the profile's allowed hosts;
  images, fonts, media and service workers are refused, downloads are cancelled;
* a 4xx/5xx main document is SourceHTTPError, a non-page one SourceNotHTML.

Playwright's sync API belongs to the thread that started it, while the pipeline
calls ``get()`` from whichever worker thread runs the poll: every browser call
therefore runs on one thread of our own. The browser is launched at the first
``get()``, kept for later polls (cookies too, so a CDN's clearance is reused),
relaunched if it died, and shut down by ``close()``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from feeds.config import DEFAULT_BROWSER_PATH, FetchSettings
from feeds.errors import (
    AddressNotAllowed,
    ConfigError,
    FetchError,
    SourceHTTPError,
    SourceNotHTML,
    SourceTimeout,
    SourceTooLarge,
    SourceUnreachable,
    TooManyRedirects,
)
from feeds.fetch import ACCEPTED_TYPES, Fetcher, Response, parse_retry_after

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Request, Route
    from playwright.sync_api import Response as PageResponse

log = logging.getLogger(__name__)

MISSING_EXTRA = "source.fetch = \"browser\" needs the browser extra: pip install 'feedbot[browser]'"
BROWSER_ARGS = (
    "--headless",
    "--no-sandbox",  # containers and CI run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LAUNCH_SECONDS = 30.0
# Requests the page never gets: nothing in them can hold a statement.
BLOCKED_TYPES = frozenset({"image", "media", "font", "manifest", "eventsource", "websocket"})
# A main document with one of these may be a CDN's check page that reloads into
# the real one, so it is given the same time to settle as a 200.
CHALLENGE_STATUSES = frozenset({403, 429, 503})
TEXT_TYPES = frozenset(ACCEPTED_TYPES) - {"text/html", "application/xhtml+xml"}
HTML_UTF8 = "text/html; charset=utf-8"
STEP = 0.25  # seconds between looks at a settling page
QUIET = 2.0  # a quiet network this long, and still no statements: the page is done


def _playwright() -> Any:
    """The sync API module, imported only when a browser is asked for."""
    try:
        from playwright import sync_api
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None
    return sync_api


@dataclass
class _Visit:
    """What one get() saw happen in the page, filled in by the page's event handlers."""

    url: str
    hosts: set[str]
    max_bytes: int
    documents: list[PageResponse] = field(default_factory=list)  # main-frame, in order
    received: dict[str, int] = field(default_factory=dict)  # bytes per request id
    too_large: str | None = None
    refused: list[str] = field(default_factory=list)  # requests off the allowed hosts


class BrowserFetcher:
    """``Fetcher``'s interface (``get``, ``close``, ``session``), answered by headless Chromium.

    ``wait_for`` is a CSS selector the page is given up to ``settle`` seconds to
    show (the profile's statement list): it lets a script or a challenge's reload
    finish. ``hosts`` are hosts the page may load from besides its own.
    """

    def __init__(
        self,
        settings: FetchSettings,
        browser_path: str = DEFAULT_BROWSER_PATH,
        *,
        wait_for: str | None = None,
        hosts: Iterable[str] = (),
        settle: float = 15.0,
    ) -> None:
        self._api = _playwright()
        if not Path(browser_path).is_file():
            raise ConfigError(
                f"source.browser_path: {browser_path} does not exist"
                " (install Debian's chromium, or point this at a Chromium binary)"
            )
        self.settings = settings
        self.browser_path = browser_path
        self.wait_for = wait_for
        self.hosts = frozenset(h.lower() for h in hosts)
        self.settle = settle
        # Address checks and a plain session for what is not a page (WebSub pings).
        self._http = Fetcher(settings)
        self.session = self._http.session
        self._thread = self._new_thread()
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._closed = False
        self._launch_seconds = 0.0

    @staticmethod
    def _new_thread() -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="feedbot-browser")

    # --- the Fetcher interface ----------------------------------------------------------

    def get(
        self,
        url: str,
        etag: str | None = None,  # noqa: ARG002 - see below
        last_modified: str | None = None,  # noqa: ARG002
        allowed_hosts: Iterable[str] | None = None,
        source_url: str | None = None,
        cancel: threading.Event | None = None,  # noqa: ARG002 - the deadline bounds a render
    ) -> Response:
        """Render ``url`` and return the resulting document as UTF-8 HTML.

        ``etag``/``last_modified`` are ignored: what a script writes can change while
        the HTML stays the same, so every poll renders (and never answers 304).
        """
        if self._closed:
            raise RuntimeError("BrowserFetcher is closed")
        hosts = None if allowed_hosts is None else [h.lower() for h in allowed_hosts]
        if hosts is not None or source_url is not None:
            self._http.check_address(url, hosts, source_url)
        future = self._thread.submit(self._render, url, hosts, time.monotonic())
        # Playwright's own timeouts end a render at the deadline; this only guards
        # against a browser that stops answering altogether.
        backstop = self.settings.deadline + LAUNCH_SECONDS + 15
        try:
            return future.result(timeout=backstop)
        except concurrent.futures.TimeoutError:
            log.error("browser did not answer within %.0fs; starting a new one", backstop)
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread = self._new_thread()
            self._pw = self._browser = self._context = None  # abandoned with the stuck thread
            raise SourceTimeout(f"{url}: browser did not answer within {backstop:g}s") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(concurrent.futures.TimeoutError):
            self._thread.submit(self._shutdown).result(timeout=LAUNCH_SECONDS)
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    # --- on the browser thread ----------------------------------------------------------

    def _shutdown(self) -> None:
        for closer in (self._context, self._browser):
            if closer is not None:
                with contextlib.suppress(Exception):  # already gone with a crashed browser
                    closer.close()
        if self._pw is not None:
            with contextlib.suppress(Exception):
                self._pw.stop()
        self._pw = self._browser = self._context = None

    def _ensure_browser(self) -> BrowserContext:
        if self._context is not None and self._browser is not None and self._browser.is_connected():
            return self._context
        if self._browser is not None:
            log.warning("the browser has gone away; launching a new one")
        self._shutdown()
        api = self._api
        launching = time.monotonic()
        try:
            self._pw = api.sync_playwright().start()
            self._browser = self._pw.chromium.launch(
                executable_path=self.browser_path,
                headless=True,
                args=list(BROWSER_ARGS),
                timeout=LAUNCH_SECONDS * 1000,
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
            self._context = self._browser.new_context(
                user_agent=self.settings.user_agent,
                accept_downloads=False,
                service_workers="block",
            )
        except Exception as exc:  # Playwright's driver fails in several ways
            self._shutdown()
            raise SourceUnreachable(
                f"cannot start the browser {self.browser_path}: {_short(exc)}"
            ) from None
        self._launch_seconds += time.monotonic() - launching
        log.info("browser started: %s %s", self.browser_path, self._browser.version)
        return self._context

    def _new_page(self) -> Page:
        context = self._ensure_browser()
        try:
            return context.new_page()
        except self._api.Error:
            # Crashed since the last poll, before Playwright noticed: start afresh once.
            self._shutdown()
            return self._ensure_browser().new_page()

    def _render(self, url: str, allowed_hosts: list[str] | None, asked: float) -> Response:
        self._launch_seconds = 0.0
        page = self._new_page()
        # The deadline runs from the call, less the time a (re)launch took.
        started = asked + self._launch_seconds
        host = (urlsplit(url).hostname or "").lower()
        visit = _Visit(
            url=url,
            hosts={host, *self.hosts, *(allowed_hosts or ())},
            max_bytes=self.settings.max_bytes,
        )
        try:
            return self._visit(page, visit, started, allowed_hosts)
        except self._api.Error as exc:
            if page.is_closed() or not (self._browser and self._browser.is_connected()):
                self._shutdown()  # the browser crashed mid-render: the next get() relaunches
            raise SourceUnreachable(f"{url}: browser failed: {_short(exc)}") from None
        finally:
            with contextlib.suppress(Exception):
                page.close()

    def _visit(
        self, page: Page, visit: _Visit, started: float, allowed_hosts: list[str] | None
    ) -> Response:
        api = self._api
        s = self.settings
        url = visit.url

        def left_ms() -> float:
            left = s.deadline - (time.monotonic() - started)
            if left <= 0:
                raise SourceTimeout(f"{url}: page not rendered within {s.deadline:g}s")
            return left * 1000

        self._watch(page, visit, follow_redirects=allowed_hosts is None)
        try:
            page.goto(url, wait_until="load", timeout=left_ms())
        except api.TimeoutError:
            _raise_if_refused(visit)
            raise SourceTimeout(f"{url}: page not loaded within {s.deadline:g}s") from None
        except api.Error as exc:
            _raise_if_refused(visit)
            raise _navigation_error(url, exc) from None
        _raise_if_refused(visit)
        main = visit.documents[-1] if visit.documents else None
        if main is None:
            raise SourceUnreachable(f"{url}: the browser got no document")
        if main.status >= 400 and main.status not in CHALLENGE_STATUSES:
            raise _http_error(main)
        _check_type(url, main)  # a PDF or an image need not settle

        self._settle(page, left_ms)
        html = self._content(page, url, left_ms)
        _raise_if_refused(visit)

        main = visit.documents[-1]
        if main.status >= 400:
            raise _http_error(main)
        redirects = _redirect_count(main.request)
        if redirects > s.max_redirects:
            raise TooManyRedirects(f"{url}: more than {s.max_redirects} redirects")
        final_url = page.url if page.url.startswith(("http:", "https:")) else main.url
        if allowed_hosts is not None:
            self._http.check_address(final_url, allowed_hosts)
        content_type = main.headers.get("content-type")
        if _check_type(url, main) in TEXT_TYPES:
            body = main.body()  # a text capture is read as text, not as the browser's <pre>
        else:
            body, content_type = html.encode("utf-8"), HTML_UTF8
        if len(body) > s.max_bytes:
            raise SourceTooLarge(
                f"{url}: rendered page of {len(body):,} bytes, limit {s.max_bytes:,}"
            )
        if visit.refused:
            log.info("%s: refused %d requests off the allowed hosts", url, len(visit.refused))
        return Response(
            url=final_url,
            status=main.status,
            body=body,
            content_type=content_type,
            etag=None,
            last_modified=None,
            elapsed=time.monotonic() - started,
        )

    def _settle(self, page: Page, left_ms: Callable[[], float]) -> None:
        """Give scripts, and a check page's reload, time to put the statements in.

        Ends as soon as the page shows ``wait_for`` (the wait survives a reload); a
        page that never does gets until its network has been quiet for QUIET
        seconds, and at most ``settle`` seconds in all.
        """
        api = self._api
        until = time.monotonic() + self.settle
        quiet_since: float | None = None
        while (now := time.monotonic()) < until:
            step = max(1.0, min(left_ms(), STEP * 1000, (until - now) * 1000))
            if self.wait_for:
                try:
                    page.wait_for_selector(self.wait_for, state="attached", timeout=step)
                    return
                except api.TimeoutError:
                    pass
            try:
                # Returns at once once this document's network has gone idle.
                page.wait_for_load_state("networkidle", timeout=step if not self.wait_for else 1)
            except api.TimeoutError:
                quiet_since = None
                continue
            if not self.wait_for:
                return
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= QUIET:
                return

    def _content(self, page: Page, url: str, left_ms: Callable[[], float]) -> str:
        """The rendered document; a reload under way is waited out, up to the deadline."""
        api = self._api
        while True:
            try:
                page.wait_for_load_state("load", timeout=left_ms())
                return str(page.content())
            except api.TimeoutError:
                raise SourceTimeout(
                    f"{url}: page not rendered within {self.settings.deadline:g}s"
                ) from None
            except api.Error as exc:
                if "navigat" not in str(exc):
                    raise
                # The page navigated between the wait and the read: wait again.

    def _watch(self, page: Page, visit: _Visit, follow_redirects: bool) -> None:
        """Event handlers that keep the page within bounds and note what it loaded."""

        def route(route: Route, request: Request) -> None:
            if request.resource_type in BLOCKED_TYPES:
                route.abort("blockedbyclient")
                return
            host = (urlsplit(request.url).hostname or "").lower()
            if host not in visit.hosts:
                visit.refused.append(request.url)
                route.abort("blockedbyclient")
                return
            route.continue_()

        def on_response(response: PageResponse) -> None:
            if response.frame == page.main_frame and response.request.is_navigation_request():
                visit.documents.append(response)
                if follow_redirects:  # the operator's URL redirected: its new host is the page's
                    visit.hosts.add((urlsplit(response.url).hostname or "").lower())
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > visit.max_bytes:
                    stop(f"{response.url}: {int(declared):,} bytes declared")

        def on_data(event: dict[str, Any]) -> None:
            request_id = str(event.get("requestId"))
            total = visit.received.get(request_id, 0) + int(event.get("dataLength", 0))
            visit.received[request_id] = total
            if total > visit.max_bytes:
                stop(f"a response of the page went over {visit.max_bytes:,} bytes")

        def stop(reason: str) -> None:
            if visit.too_large is None:
                visit.too_large = reason
                # Navigating away ends the transfer and lets goto() return at once.
                with contextlib.suppress(Exception):
                    cdp.send("Page.navigate", {"url": "about:blank"})

        def on_download(download: Any) -> None:
            log.warning("%s: refused a download of %s", visit.url, download.url)
            with contextlib.suppress(Exception):
                download.cancel()

        page.route("**/*", route)
        page.on("response", on_response)
        page.on("download", on_download)
        page.on("popup", lambda popup: popup.close())
        assert page.context is not None
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on("Network.dataReceived", on_data)


def _raise_if_refused(visit: _Visit) -> None:
    if visit.too_large is not None:
        raise SourceTooLarge(f"{visit.url}: {visit.too_large}, limit {visit.max_bytes:,}")


def _check_type(url: str, main: PageResponse) -> str:
    """The main document's media type; SourceNotHTML unless it is a page or text."""
    mime = (main.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if mime and mime not in ACCEPTED_TYPES:
        raise SourceNotHTML(f"{url}: content type {mime} is not a web page")
    return mime


def _http_error(main: PageResponse) -> SourceHTTPError:
    return SourceHTTPError(
        f"{main.url}: HTTP {main.status} {main.status_text or ''}".strip(),
        main.status,
        parse_retry_after(main.headers.get("retry-after")),
    )


def _redirect_count(request: Request) -> int:
    count = 0
    previous = request.redirected_from
    while previous is not None:
        count += 1
        previous = previous.redirected_from
    return count


def _navigation_error(url: str, exc: Exception) -> FetchError:
    """Chromium's net::ERR_* names, mapped onto the fetcher's errors."""
    text = str(exc)
    if "ERR_TOO_MANY_REDIRECTS" in text:
        return TooManyRedirects(f"{url}: redirect loop")
    if "Download is starting" in text:
        return SourceNotHTML(f"{url}: the address is a download, not a web page")
    if "ERR_BLOCKED_BY_CLIENT" in text:
        return AddressNotAllowed(f"{url}: led off the allowed hosts")
    if "ERR_TIMED_OUT" in text or "ERR_CONNECTION_TIMED_OUT" in text:
        return SourceTimeout(f"{url}: timed out ({_short(exc)})")
    return SourceUnreachable(f"{url}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
