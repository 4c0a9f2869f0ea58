"""HTTP fetching with requests, made safe for polling a site we do not control.

requests alone has no default timeout, no total deadline, no size limit and
trusts ``Retry-After`` blindly, so this module adds each of them:

* connect/read timeouts on every request and a total deadline per response,
  checked while streaming (a server dripping bytes cannot hold a poll forever);
* a size cap that holds after decompression (urllib3 >= 2.6 inflates streamed
  gzip in bounded steps, so a gzip bomb is refused after ``max_bytes``);
* retries with exponential back-off for connection errors, 429 and 5xx, that
  honour ``Retry-After`` in seconds or as an HTTP date, up to a cap;
* conditional GET (``If-None-Match`` / ``If-Modified-Since``);
* redirects followed by hand so every hop is checked (loops, private addresses).

Every failure leaves as one of the named errors in ``feeds.errors``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions

from feeds.config import FetchSettings
from feeds.errors import (
    AddressNotAllowed,
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
ACCEPTED_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    elapsed: float

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


class Fetcher:
    """One requests Session for the life of the process (connection reuse, one User-Agent)."""

    def __init__(
        self,
        settings: FetchSettings,
        sleep: Callable[[float], None] = time.sleep,
        resolve: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        self.settings = settings
        self.session = requests.Session()
        self.session.headers["User-Agent"] = settings.user_agent
        self.session.headers["Accept"] = "text/html,application/xhtml+xml,text/plain;q=0.8"
        self.session.max_redirects = settings.max_redirects
        self._sleep = sleep
        self._resolve = resolve or self._resolve_host

    def close(self) -> None:
        self.session.close()

    @staticmethod
    def _resolve_host(host: str) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise SourceUnreachable(f"cannot resolve {host}: {exc}") from None
        return [str(info[4][0]) for info in infos]

    def check_address(self, url: str, allowed_hosts: Iterable[str]) -> None:
        """Refuse a URL off the allowed hosts, or one that resolves to a private address."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise AddressNotAllowed(f"not an http(s) URL: {url}")
        if host not in {h.lower() for h in allowed_hosts}:
            raise AddressNotAllowed(f"{host} is not an allowed host for statement pages")
        if self.settings.allow_private_addresses:
            return
        for address in self._resolve(host):
            if not _is_public(address):
                raise AddressNotAllowed(f"{host} resolves to a non-public address ({address})")

    def get(
        self,
        url: str,
        etag: str | None = None,
        last_modified: str | None = None,
        allowed_hosts: Iterable[str] | None = None,
    ) -> Response:
        """GET ``url`` with retries; with ``allowed_hosts`` every hop must pass check_address."""
        attempt = 0
        while True:
            try:
                return self._get_once(url, etag, last_modified, allowed_hosts)
            except (SourceHTTPError, SourceUnreachable, SourceTimeout) as exc:
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    raise
                attempt += 1
                log.info("retrying %s in %.1fs after %s (attempt %d)", url, wait, exc, attempt)
                self._sleep(wait)

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
        allowed_hosts: Iterable[str] | None,
    ) -> Response:
        s = self.settings
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        seen: set[str] = set()
        for _hop in range(s.max_redirects + 1):
            if allowed_hosts is not None:
                self.check_address(url, allowed_hosts)
            seen.add(url)
            remaining = s.deadline - (time.monotonic() - started)
            if remaining <= 0:
                raise SourceTimeout(f"{url}: no answer within {s.deadline:g}s")
            try:
                response = self.session.get(
                    url,
                    headers=headers,
                    timeout=(s.connect_timeout, min(s.read_timeout, remaining)),
                    stream=True,
                    allow_redirects=False,
                )
            except requests.Timeout as exc:
                raise SourceTimeout(f"{url}: timed out ({type(exc).__name__})") from None
            except (requests.ConnectionError, urllib3.exceptions.HTTPError) as exc:
                raise SourceUnreachable(f"{url}: {type(exc).__name__}: {_short(exc)}") from None
            except requests.RequestException as exc:
                raise SourceUnreachable(f"{url}: {_short(exc)}") from None
            with response:
                if response.is_redirect:
                    target = urljoin(url, response.headers.get("Location", ""))
                    if target in seen:
                        raise TooManyRedirects(f"{url}: redirect loop back to {target}")
                    url = target
                    continue
                return self._read(url, response, started)
        raise TooManyRedirects(f"{url}: more than {s.max_redirects} redirects")

    def _read(self, url: str, response: requests.Response, started: float) -> Response:
        s = self.settings
        status = response.status_code
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
            # read1() returns what has arrived (stream() blocks until a whole CHUNK
            # is in, so a drip was never checked against the deadline), and inflates
            # gzip/deflate in bounded steps: the cap below is checked on decompressed
            # bytes before more is inflated.
            while chunk := response.raw.read1(CHUNK, decode_content=True):
                body += chunk
                if len(body) > s.max_bytes:
                    raise SourceTooLarge(f"{url}: body over the limit of {s.max_bytes:,} bytes")
                if time.monotonic() - started > s.deadline:
                    raise SourceTimeout(f"{url}: body not complete within {s.deadline:g}s")
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            raise SourceTimeout(f"{url}: read timed out") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SourceUnreachable(f"{url}: {type(exc).__name__}: {_short(exc)}") from None
        return Response(
            url=url,
            status=status,
            body=bytes(body),
            content_type=content_type,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            elapsed=time.monotonic() - started,
        )


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."
