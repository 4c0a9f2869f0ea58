"""HTTP fetching with requests, made safe for polling a site we do not control.

requests alone has no default timeout, no total deadline, no size limit and
trusts ``Retry-After`` blindly, so this module adds each of them:

* one deadline for the whole fetch (connect, headers, body, redirects, retries
  and the waits between them): requests' timeouts hold per socket read, so a
  server sending a byte at a time never trips them; a watchdog shuts the socket
  down when the deadline passes, or at once when the ``cancel`` event is set;
* a size cap that holds after decompression (urllib3 >= 2.6 inflates streamed
  gzip in bounded steps, so a gzip bomb is refused after ``max_bytes``);
* retries with exponential back-off for connection errors, 429 and 5xx, that
  honour ``Retry-After`` in seconds or as an HTTP date, up to a cap and never
  past the deadline;
* conditional GET (``If-None-Match`` / ``If-Modified-Since``);
* redirects followed by hand so every hop is checked (loops, hosts, addresses):
  the source's own host:port is trusted wherever it lives, any other host must
  resolve to public addresses.

Every failure leaves as one of the named errors in ``feeds.errors``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import functools
import ipaddress
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.poolmanager

from feeds.config import FetchSettings
from feeds.errors import (
    AddressNotAllowed,
    FetchCancelled,
    FetchError,
    SourceHTTPError,
    SourceNotHTML,
    SourceTimeout,
    SourceTooLarge,
    SourceUnreachable,
    TooManyRedirects,
)

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
ACCEPTED_TYPES = (
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "application/xml",
    "text/xml",
    # sources that already publish a feed (kind = "feed")
    "application/atom+xml",
    "application/rss+xml",
    "application/feed+json",
    "application/json",
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CANCEL_CHECK = 0.1  # seconds between the watchdog's looks at the cancel event
DEFAULT_PORTS = {"http": 80, "https": 443}
HOST_POOLS = 256  # hosts whose connections are kept for reuse


@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    elapsed: float  # the whole fetch, retries included

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone accepts "²" and "٣"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@functools.lru_cache(maxsize=4096)  # pure, and asked of the same few URLs every poll
def origin(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, the port filled in from the scheme; else None."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:  # a port that is not a number, or out of range
        return None
    return parts.hostname.lower(), port


# --- the watchdog ----------------------------------------------------------------------


class _Guard:
    """One fetch's deadline and stop event, and the connection it is using now."""

    def __init__(self, seconds: float, cancel: threading.Event | None) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.cancel = cancel
        self.reason: str | None = None  # "deadline" or "cancelled" once it has fired
        self.conn: urllib3.connection.HTTPConnection | None = None
        self.over = False  # the fetch has ended: its connection is not ours to shut

    def remaining(self) -> float:
        return self.ends - time.monotonic()


class _Watchdog:
    """Ends fetches at their deadline, or when their stop event is set, by shutting
    the socket each is reading: a blocked read then returns at once, however slowly
    the server sends. The fetch's own thread turns that into SourceTimeout or
    FetchCancelled. One thread per Fetcher, asleep while no fetch runs.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._guards: set[_Guard] = set()
        self._thread: threading.Thread | None = None  # the one watching; None once closed
        self._wakes_at: float | None = None  # when the watching thread looks next; None: idle

    def begin(self, seconds: float, cancel: threading.Event | None) -> _Guard:
        guard = _Guard(seconds, cancel)
        with self._cond:
            self._guards.add(guard)
            if self._thread is None:  # first fetch, or the first after close()
                self._thread = threading.Thread(
                    target=self._run, name="fetch-watchdog", daemon=True
                )
                self._thread.start()
            # Wake the watcher only when it would look too late for this fetch: waking
            # it for every fetch cost two thread switches per poll.
            if self._wakes_at is None or self._wakes_at > _look_at(guard, time.monotonic()):
                self._cond.notify()
        return guard

    def end(self, guard: _Guard) -> None:
        with self._cond:
            guard.over = True
            guard.conn = None
            self._guards.discard(guard)

    def watch(self, guard: _Guard, conn: urllib3.connection.HTTPConnection) -> None:
        """The connection the fetch uses now (a new one per hop or attempt)."""
        with self._cond:
            guard.conn = conn
            if guard.reason is not None:
                _shut(conn)

    def close(self) -> None:
        with self._cond:
            thread, self._thread = self._thread, None
            self._wakes_at = None
            self._cond.notify()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        me = threading.current_thread()
        with self._cond:
            while self._thread is me:
                now = time.monotonic()
                wait: float | None = None  # no fetch running: sleep until one begins
                for guard in list(self._guards):
                    if guard.cancel is not None and guard.cancel.is_set():
                        self._fire(guard, "cancelled")
                    elif now >= guard.ends:
                        self._fire(guard, "deadline")
                    else:
                        left = _look_at(guard, now) - now
                        wait = left if wait is None else min(wait, left)
                self._wakes_at = None if wait is None else now + wait
                self._cond.wait(wait)

    def _fire(self, guard: _Guard, reason: str) -> None:
        guard.reason = reason
        self._guards.discard(guard)
        if guard.conn is not None and not guard.over:
            _shut(guard.conn)


def _look_at(guard: _Guard, now: float) -> float:
    """When the watchdog must next look at ``guard``: at its deadline, or within a
    tenth of a second when it has a stop event (an Event cannot wake the watcher)."""
    return guard.ends if guard.cancel is None else min(guard.ends, now + CANCEL_CHECK)


def _shut(conn: urllib3.connection.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also for TLS: it only wakes the reader,
            # and leaves the TLS object to the thread that is using it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The fetch running on this thread, for the connections it opens and reuses.
_current = threading.local()


def _watched(conn: urllib3.connection.HTTPConnection) -> None:
    running: tuple[_Watchdog, _Guard] | None = getattr(_current, "fetch", None)
    if running is not None:
        running[0].watch(running[1], conn)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """Shows itself to the running fetch's watchdog when it connects or sends."""

    def connect(self) -> None:
        _watched(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections the watchdog can end (proxied ones too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.poolmanager.ProxyManager:  # SOCKS pools are left as is
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class _EnvironmentOnce(requests.Session):
    """requests' Session, reading the environment's settings (proxies and
    ``no_proxy``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, ``~/.netrc``) once per
    origin instead of on every request: requests re-reads them each time, which was
    a fifth of the CPU of an unchanged (304) poll. The process's environment does
    not change while it runs."""

    MAX_ORIGINS = 1024  # distinct origins remembered (sources, statement hosts)

    def __init__(self) -> None:
        super().__init__()
        # The lookups below replace requests' own, which run when this is True.
        self.trust_env = False
        self._found: dict[tuple[str, str, int | None], _Environment] = {}
        self._prepared: dict[tuple[str, tuple[tuple[str, str], ...]], _Prepared] = {}
        self._adapters = {}
        for scheme in ("http", "https"):
            # One pool per host kept open across polls: requests' default of 10 pools
            # would reconnect every poll once more than ten hosts are polled.
            adapter = self._adapters[scheme] = _WatchedAdapter(pool_connections=HOST_POOLS)
            self.mount(f"{scheme}://", adapter)

    def _environment(self, url: str) -> _Environment:
        parts = urlsplit(url)
        try:
            key = (parts.scheme, (parts.hostname or "").lower(), parts.port)
        except ValueError:  # not a port: let requests refuse the URL
            key = (parts.scheme, parts.netloc, None)
        found = self._found.get(key)
        if found is None:
            if len(self._found) >= self.MAX_ORIGINS:
                self._found.clear()
            found = self._found[key] = _Environment(
                proxies=requests.utils.get_environ_proxies(url),
                ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"),
                netrc=requests.utils.get_netrc_auth(url),
            )
        return found

    def merge_environment_settings(  # type: ignore[override]  # the stubs' private TypedDict
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        env = self._environment(url)
        proxies = dict(proxies or {})
        for scheme, proxy in env.proxies.items():
            proxies.setdefault(scheme, proxy)
        verify = env.verify(verify)
        return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))

    def get_again(
        self, url: str, headers: dict[str, str], timeout: tuple[float, float]
    ) -> urllib3.BaseHTTPResponse:
        """GET ``url`` (no redirect followed, the body not read yet): urllib3's response.

        The request is prepared once and sent again while nothing it carries can
        change: a poll asks the same page with the same validators time after time,
        and preparing it anew was a tenth of an unchanged poll's CPU. While requests
        adds nothing to it (no cookie in the jar, no proxy, no credentials) it goes
        straight to the adapter's connection pool: requests' own send and response
        were a third of an unchanged poll's fetch."""
        ready = self.plain(url, headers)
        if ready is None:
            response = self.get(
                url, headers=headers, stream=True, timeout=timeout, allow_redirects=False
            )
            raw: urllib3.BaseHTTPResponse = response.raw
            return raw
        adapter = ready.adapter
        prepared = ready.request
        # The pool is looked up each time: the pool manager may have let it go.
        pool = adapter.poolmanager.connection_from_host(**ready.host, pool_kwargs=ready.tls)
        raw = pool.urlopen(
            "GET",
            prepared.path_url,
            headers=prepared.headers,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=adapter.max_retries,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        )
        if "Set-Cookie" in raw.headers:  # a CDN's clearance: later requests carry it
            requests.cookies.extract_cookies_to_jar(self.cookies, prepared, raw)  # type: ignore[no-untyped-call]
        return raw

    def plain(self, url: str, headers: dict[str, str]) -> _Prepared | None:
        """The GET of ``url`` prepared, when requests adds nothing to it (no cookie in
        the jar, no proxy, no credentials): what goes on the wire is then these
        headers alone. None otherwise."""
        if self.cookies or self.auth:  # a cookie may arrive with any response
            return None
        key = (url, tuple(headers.items()))
        ready = self._prepared.get(key)  # only ever holds plain GETs
        if ready is not None:
            return ready
        env = self._environment(url)
        parts = urlsplit(url)
        adapter = self._adapters.get(parts.scheme)
        if adapter is None or env.proxies or env.netrc or "@" in parts.netloc:
            return None
        if len(self._prepared) >= self.MAX_ORIGINS:
            self._prepared.clear()
        prepared = self.prepare_request(requests.Request("GET", url, headers=headers))
        verify = env.verify(self.verify)
        host, tls = adapter.build_connection_pool_key_attributes(prepared, verify, None)
        ready = self._prepared[key] = _Prepared(
            prepared, dict(prepared.headers), adapter, host, tls, verify
        )
        return ready

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if not request.auth and not self.auth:
            user, password = requests.utils.get_auth_from_url(request.url)
            if not (user or password):  # credentials in the URL win over .netrc
                request.auth = self._environment(request.url).netrc
        return super().prepare_request(request)


@dataclass(frozen=True)
class _Prepared:
    """A GET ready to send again: the request, and the key of its connection pool."""

    request: requests.PreparedRequest
    headers: dict[str, str]  # the request's, as sent
    adapter: _WatchedAdapter
    host: Any  # scheme, host, port (the stubs name a private type)
    tls: Any  # certificate checks
    verify: bool | str  # check certificates (against this CA bundle, when a path)


@dataclass(frozen=True)
class PlainGet:
    """A GET as the fetcher sends it: nothing else goes with it."""

    url: str  # as requests quotes it
    headers: dict[str, str]  # all of them, as sent
    verify: bool | str  # check the certificate (against this CA bundle, when a path)


@dataclass(frozen=True)
class _Environment:
    proxies: dict[str, str]
    ca_bundle: str | None
    netrc: tuple[str, str] | None

    def verify(self, verify: bool | str | None) -> bool | str:
        """Certificate checking as asked, against the environment's CA bundle when
        it names one and nothing else was asked."""
        if verify is True or verify is None:
            return self.ca_bundle or True
        return verify


# --- the fetcher -----------------------------------------------------------------------


class Fetcher:
    """One requests Session for the life of the process (connection reuse, one User-Agent).

    ``cancel`` is the process's stop event: once set, a running fetch ends within
    about a tenth of a second and every later one fails at once, with FetchCancelled.
    ``sleep`` replaces the wait between retries (tests record it instead of waiting).
    """

    def __init__(
        self,
        settings: FetchSettings,
        sleep: Callable[[float], None] | None = None,
        resolve: Callable[[str], Iterable[str]] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.cancel = cancel
        self.session = _EnvironmentOnce()
        self.session.headers["User-Agent"] = settings.user_agent
        self.session.headers["Accept"] = (
            "text/html,application/xhtml+xml,application/atom+xml,application/rss+xml,"
            "application/feed+json,text/plain;q=0.8,application/xml;q=0.8"
        )
        self.session.max_redirects = settings.max_redirects
        self._sleep = sleep
        self._resolve = resolve or self._resolve_host
        self._watchdog = _Watchdog()

    def close(self) -> None:
        self.session.close()
        self._watchdog.close()

    @staticmethod
    def _resolve_host(host: str) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise SourceUnreachable(f"cannot resolve {host}: {exc}") from None
        return [str(info[4][0]) for info in infos]

    def check_address(
        self, url: str, allowed_hosts: Iterable[str] | None, source_url: str | None = None
    ) -> None:
        """Refuse a URL off the allowed hosts, or one that resolves to a private address.

        The source's own host:port (``source_url``) passes whatever its address: the
        operator chose it. Any other host must be in ``allowed_hosts`` (when given)
        and resolve only to public addresses (unless private ones are allowed).
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        where = origin(url)
        if parts.scheme not in DEFAULT_PORTS or not host or where is None:
            raise AddressNotAllowed(f"not an http(s) URL: {url}")
        if source_url is not None and where == origin(source_url):
            return
        if allowed_hosts is not None and host not in {h.lower() for h in allowed_hosts}:
            raise AddressNotAllowed(f"{host} is not an allowed host for statement pages")
        if self.settings.allow_private_addresses:
            return
        for address in self._resolve(host):
            if not _is_public(address):
                raise AddressNotAllowed(f"{host} resolves to a non-public address ({address})")

    def plain_get(self, url: str, etag: str | None, last_modified: str | None) -> PlainGet | None:
        """The GET of ``url`` with these validators as this fetcher sends it, when
        nothing else goes with it (no cookie, proxy or credentials): another HTTP
        client can then ask exactly what this one would. None otherwise, or once
        the process is stopping."""
        if self.cancel is not None and self.cancel.is_set():
            return None
        ready = self.session.plain(url, _conditional_headers(etag, last_modified))
        if ready is None:
            return None
        return PlainGet(str(ready.request.url), ready.headers, ready.verify)

    def get(
        self,
        url: str,
        etag: str | None = None,
        last_modified: str | None = None,
        allowed_hosts: Iterable[str] | None = None,
        source_url: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Response:
        """GET ``url`` with retries, all within ``settings.deadline``.

        Every hop is checked (``check_address``) when ``allowed_hosts`` or ``source_url``
        is given; with neither, ``url`` is the operator's own and is fetched as is.
        ``cancel`` overrides the Fetcher's stop event for this call.
        """
        hosts = None if allowed_hosts is None else tuple(allowed_hosts)
        stop = cancel or self.cancel
        if stop is not None and stop.is_set():
            raise FetchCancelled(f"{url}: not fetched, stopping")
        guard = self._watchdog.begin(self.settings.deadline, stop)
        _current.fetch = (self._watchdog, guard)
        try:
            return self._get(url, etag, last_modified, hosts, source_url, guard)
        finally:
            _current.fetch = None
            self._watchdog.end(guard)

    def _get(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        allowed_hosts: tuple[str, ...] | None,
        source_url: str | None,
        guard: _Guard,
    ) -> Response:
        attempt = 0
        while True:
            try:
                return self._get_once(url, etag, last_modified, allowed_hosts, source_url, guard)
            except (SourceHTTPError, SourceUnreachable, SourceTimeout) as exc:
                if guard.reason is not None:
                    raise
                wait = self._retry_wait(exc, attempt)
                if wait is None or wait >= guard.remaining():
                    raise  # no time left to try again: the poll's back-off takes over
                attempt += 1
                log.info("retrying %s in %.1fs after %s (attempt %d)", url, wait, exc, attempt)
                self._pause(wait, guard)
                _check(url, guard)

    def _pause(self, seconds: float, guard: _Guard) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif guard.cancel is not None:
            guard.cancel.wait(seconds)
        else:
            time.sleep(seconds)

    def _retry_wait(self, exc: FetchError, attempt: int) -> float | None:
        s = self.settings
        if attempt >= s.retries:
            return None
        backoff = min(30.0, 0.5 * 2.0**attempt) * random.uniform(0.5, 1.0)
        if isinstance(exc, SourceHTTPError):
            if exc.status not in RETRY_STATUSES:
                return None
            if exc.retry_after is not None:
                if exc.retry_after > s.max_retry_after:
                    return None  # too long to hold a poll open: the scheduler backs off instead
                return max(float(exc.retry_after), 0.0)
        return backoff

    def _get_once(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        allowed_hosts: tuple[str, ...] | None,
        source_url: str | None,
        guard: _Guard,
    ) -> Response:
        s = self.settings
        headers = _conditional_headers(etag, last_modified)
        checked = allowed_hosts is not None or source_url is not None
        seen: set[str] = set()
        for _hop in range(s.max_redirects + 1):
            if checked:
                self.check_address(url, allowed_hosts, source_url)
            seen.add(url)
            _check(url, guard)
            remaining = guard.remaining()
            try:
                response = self.session.get_again(
                    url,
                    headers,
                    (min(s.connect_timeout, remaining), min(s.read_timeout, remaining)),
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                _check(url, guard)  # the watchdog's shutdown looks like a dropped connection
                if (waiting := _timeout(exc)) is not None:
                    raise SourceTimeout(f"{url}: timed out {waiting}") from None
                raise SourceUnreachable(f"{url}: {_short(exc)}") from None
            # After a whole body the connection is back in its pool already (urllib3
            # hands it back at the end); one left half read is closed.
            with contextlib.closing(response):
                if response.status in REDIRECT_STATUSES and "Location" in response.headers:
                    target = urljoin(url, response.headers["Location"])
                    if target in seen:
                        raise TooManyRedirects(f"{url}: redirect loop back to {target}")
                    url = target
                    continue
                return self._read(url, response, guard)
        raise TooManyRedirects(f"{url}: more than {s.max_redirects} redirects")

    def _read(self, url: str, response: urllib3.BaseHTTPResponse, guard: _Guard) -> Response:
        s = self.settings
        status = response.status
        if status >= 400:
            raise SourceHTTPError(
                f"{url}: HTTP {status} {response.reason or ''}".strip(),
                status,
                parse_retry_after(response.headers.get("Retry-After")),
            )
        content_type = response.headers.get("Content-Type")
        if status != 304:
            mime = (content_type or "").split(";", 1)[0].strip().lower()
            if mime and mime not in ACCEPTED_TYPES:
                raise SourceNotHTML(f"{url}: content type {mime} is not a web page")
            declared = response.headers.get("Content-Length", "")
            encoded = response.headers.get("Content-Encoding", "identity").lower()
            if declared.isdigit() and int(declared) > s.max_bytes and encoded == "identity":
                raise SourceTooLarge(
                    f"{url}: {int(declared):,} bytes declared, limit {s.max_bytes:,}"
                )
        body = bytearray()
        try:
            # read1() returns what has arrived and inflates gzip/deflate in bounded
            # steps: the cap below is checked on decompressed bytes before more is
            # inflated.
            while chunk := response.read1(CHUNK, decode_content=True):
                body += chunk
                if len(body) > s.max_bytes:
                    raise SourceTooLarge(f"{url}: body over the limit of {s.max_bytes:,} bytes")
                _check(url, guard)
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            _check(url, guard)
            raise SourceTimeout(f"{url}: read timed out") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            _check(url, guard)
            raise SourceUnreachable(f"{url}: {_short(exc)}") from None
        # A body that "ended" because the watchdog shut the socket is cut short.
        _check(url, guard)
        return Response(
            url=url,
            status=status,
            body=bytes(body),
            content_type=content_type,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            elapsed=guard.seconds - guard.remaining(),
        )


def _conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """The headers of a conditional GET."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _check(url: str, guard: _Guard) -> None:
    """Raise the fetch's end, if its deadline has passed or it was cancelled."""
    if guard.reason == "cancelled" or (guard.cancel is not None and guard.cancel.is_set()):
        raise FetchCancelled(f"{url}: fetch cancelled, stopping")
    if guard.reason == "deadline" or guard.remaining() <= 0:
        raise SourceTimeout(f"{url}: no complete answer within {guard.seconds:g}s")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps, outermost first (urllib3 wraps a cause in ``reason``)."""
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            return
        yield cause
        inner = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__
        cause = inner if isinstance(inner, BaseException) else None


def _timeout(exc: BaseException) -> str | None:
    """Which wait ran out, "connecting" or "reading", if ``exc`` is a timeout, through
    a proxy too. (urllib3 counts a refused connection as a kind of connect timeout,
    which is no timeout.)"""
    for cause in _causes(exc):
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            return None
        if isinstance(cause, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
            return "connecting"
        if isinstance(cause, (requests.Timeout, TimeoutError, urllib3.exceptions.TimeoutError)):
            return "reading"
    return None


def _short(exc: BaseException) -> str:
    """What went wrong, in words an operator reads at a glance: the innermost cause
    (a name that does not resolve, a refused connection) rather than urllib3's
    "Max retries exceeded" wrapper around it."""
    innermost = exc
    for cause in _causes(exc):
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            return f"cannot resolve {cause.conn.host}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        innermost = cause
    if "Connection refused" in str(innermost):
        return "connection refused"
    text = f"{type(innermost).__name__}: {innermost}"
    return text if len(text) <= 200 else text[:197] + "..."
