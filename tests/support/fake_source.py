"""A local stand-in for the statement source that serves the fixture site and misbehaves on demand.

    with FakeSource() as src:
        src.misbehave("/", "status", status=503, retry_after="2", times=1)
        fetch(src.url + "/")

URL → file: ``/`` → ``index.html``, ``/fnapr/6940`` → ``fnapr/6940.html``,
``/fnapr/?page=2`` → ``fnapr/index@page=2.html``; anything else → 404.
Stdlib only, so it runs wherever the tests run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http
import random
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "site"
HTML = "text/html; charset=utf-8"
# Fixture files never change, so they get the capture date: stable validators across runs.
FIXTURE_MTIME = int(datetime(2020, 7, 6, tzinfo=UTC).timestamp())

Kind = Literal[
    "status",
    "slow",
    "drip",
    "drip_headers",
    "huge",
    "gzip_bomb",
    "garbage",
    "not_html",
    "redirect_loop",
    "redirect",
    "wrong_charset",
    "close",
]
_REQUIRED: dict[str, tuple[str, ...]] = {
    "status": ("status",),
    "slow": ("seconds",),
    "drip": ("interval",),
    "drip_headers": ("interval",),
    "huge": ("size",),
    "redirect": ("location",),
}
_KINDS = frozenset(get_args(Kind))

_HEAD = b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>filler</title></head><body>\n'
_TAIL = b"</body></html>\n"
_PARA = b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.</p>\n"
_BLOCK = _PARA * (64 * 1024 // len(_PARA))
# Enough of each format's signature that sniffers and parsers recognise it.
_MAGIC = {
    "application/pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    b"%%EOF\n",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
    b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x00IEND\xaeB`\x82",
}


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # request target as sent, query included
    headers: dict[str, str]
    time: float  # time.monotonic()


@dataclass(frozen=True)
class Span:
    """One request from its arrival to its answer's last byte written (time.monotonic()).
    The end is when that write returned, not when the handler got round to noting it:
    by then the client may have read the answer and sent its next request."""

    path: str
    start: float
    end: float


@dataclass
class _Rule:
    kind: str
    opts: dict[str, Any]
    remaining: int | None  # None = forever


@dataclass(frozen=True)
class _Resource:
    body: bytes
    content_type: str
    mtime: int


@dataclass
class _State:
    """Everything the handler threads read; guarded by one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    overrides: dict[str, _Resource] = field(default_factory=dict)
    rules: dict[str, _Rule] = field(default_factory=dict)
    log: list[LoggedRequest] = field(default_factory=list)
    conns: set[socket.socket] = field(default_factory=set)
    spans: list[Span] = field(default_factory=list)


def most_at_once(spans: Iterable[Span]) -> int:
    """The most of these requests in flight at the same moment (one that ends as
    another starts is not at once with it)."""
    events = sorted([(s.start, 1) for s in spans] + [(s.end, -1) for s in spans])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


class _TimedWriter:
    """The handler's socket writer, noting when each write returned."""

    def __init__(self, inner: Any, handler: Any) -> None:
        self.inner = inner
        self.handler = handler

    def write(self, data: bytes) -> int:
        written: int = self.inner.write(data)
        self.handler.last_write = time.monotonic()
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def filler(size: int) -> Iterator[bytes]:
    """Exactly ``size`` bytes of plausible HTML, in ≤64 KiB chunks, never held whole."""
    if size <= len(_HEAD) + len(_TAIL):
        yield (_HEAD + _TAIL)[:size]
        return
    yield _HEAD
    left = size - len(_HEAD) - len(_TAIL)
    while left > 0:
        n = min(left, len(_BLOCK))
        yield _BLOCK[:n]
        left -= n
    yield _TAIL


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A gzip stream inflating to ``size`` bytes (HTML head + spaces); ~1000:1 at level 9."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31 = gzip container
    out = [comp.compress(_HEAD[:size])]
    left = size - min(size, len(_HEAD))
    spaces = b" " * (1 << 20)
    while left > 0:
        n = min(left, len(spaces))
        out.append(comp.compress(spaces[:n]))
        left -= n
    out.append(comp.flush())
    return b"".join(out)


def _page(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:  # odd codes like 599 are allowed on purpose
        phrase = ""
    return f"<!DOCTYPE html><html><body><h1>{status} {phrase}</h1></body></html>\n".encode()


class FakeSource:
    """Threaded HTTP server on 127.0.0.1:<free port>; starts on construction."""

    def __init__(
        self, root: Path | None = None, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        """``host``: another loopback address (127.0.0.2, …) makes another host name
        on the same machine, for tests of several hosts. ``tls``: a server context
        (its certificate loaded) makes this an HTTPS server."""
        self.root = (root or DEFAULT_ROOT).resolve()
        # Off → always 200 without ETag/Last-Modified, like a server that ignores caching.
        self.conditional = True
        self._state = _State()
        self._stopped = threading.Event()
        self._clock = 0
        self._server = _Server((host, 0), _Handler)
        self._server.source = self
        scheme = "http"
        if tls is not None:
            # The handshake happens in the handler's thread, on its first read.
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            scheme = "https"
        self.url = f"{scheme}://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-source",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> FakeSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()  # wakes "slow"/"drip" sleepers
        self._server.shutdown()
        # Kick keep-alive and mid-body connections so their threads end now, not at exit.
        with self._state.lock:
            conns = list(self._state.conns)
        for conn in conns:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- runtime control -------------------------------------------------------------

    def set_body(self, path: str, body: bytes | str, content_type: str = HTML) -> None:
        """Serve ``body`` at ``path`` (query included, e.g. "/fnapr/?page=2")."""
        _check_path(path)
        data = body.encode() if isinstance(body, str) else body
        with self._state.lock:
            # Strictly increasing, so two overrides within one second still differ by
            # Last-Modified and If-Modified-Since alone cannot hide the change.
            self._clock = max(int(time.time()), self._clock + 1)
            self._state.overrides[path] = _Resource(data, content_type, self._clock)

    def misbehave(self, path: str, kind: Kind, **opts: Any) -> None:
        """Make ``path`` misbehave; ``times=N`` limits it to the next N requests."""
        _check_path(path)
        if kind not in _KINDS:
            raise ValueError(f"unknown misbehaviour {kind!r}")
        missing = [k for k in _REQUIRED.get(kind, ()) if k not in opts]
        if missing:
            raise ValueError(f"{kind!r} needs {', '.join(missing)}")
        times = opts.pop("times", None)
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        if kind == "gzip_bomb":
            # Compressed now, not at the first request: that took a tenth of a second
            # or more, eating into the deadline of the fetch under test.
            gzip_bomb(int(opts.get("size", 50_000_000)))
        with self._state.lock:
            self._state.rules[path] = _Rule(kind, opts, times)
            if kind == "redirect_loop" and "via" in opts:  # a → via → a
                self._state.rules[opts["via"]] = _Rule(kind, {"via": path}, times)

    def clear(self) -> None:
        """Drop all overrides and misbehaviours (the request log stays)."""
        with self._state.lock:
            self._state.overrides.clear()
            self._state.rules.clear()

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.log)

    @property
    def spans(self) -> list[Span]:
        """Every request answered so far, arrival to end of answer, in order of end."""
        with self._state.lock:
            return list(self._state.spans)

    @property
    def most_in_flight(self) -> int:
        """The most requests this server has handled at once (of those answered)."""
        return most_at_once(self.spans)

    def _leave(self, path: str, start: float, end: float) -> None:
        with self._state.lock:
            self._state.spans.append(Span(path, start, end))

    def count(self, path: str, method: str = "GET") -> int:
        with self._state.lock:
            return sum(1 for r in self._state.log if r.path == path and r.method == method)

    # --- used by the handler -----------------------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._state.lock:
            self._state.log.append(LoggedRequest(method, path, headers, time.monotonic()))

    def _take_rule(self, path: str) -> _Rule | None:
        with self._state.lock:
            rule = self._state.rules.get(path)
            if rule is not None and rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    del self._state.rules[path]
            return rule

    def _resolve(self, target: str) -> _Resource | None:
        with self._state.lock:
            override = self._state.overrides.get(target)
        if override is not None:
            return override
        parts = urlsplit(target)
        name = unquote(parts.path)
        if name.endswith("/"):
            name += "index"
        if parts.query:
            name += "@" + parts.query
        file = (self.root / (name.lstrip("/") + ".html")).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            return None
        return _Resource(file.read_bytes(), HTML, FIXTURE_MTIME)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._state.lock:
            if add:
                self._state.conns.add(conn)
            else:
                self._state.conns.discard(conn)


def _check_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close() must not wait for a drip that would take minutes
    source: FakeSource

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts under test, or close() kicking them) are expected.
        exc = sys.exc_info()[1]
        # A client that refuses the certificate (ssl.SSLError) hangs up, too.
        hung_up = isinstance(exc, ConnectionError | TimeoutError | ssl.SSLError)
        if hung_up or self.source._stopped.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real site behind a proxy
    server_version = "fake-source/1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests inspect src.requests instead

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK
        # add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.source._track(self.connection, add=True)
        self.last_write = time.monotonic()
        self.wfile = _TimedWriter(self.wfile, self)  # type: ignore[assignment]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.source._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        src = self.server.source
        start = self.last_write = time.monotonic()
        try:
            self._answer()
        finally:
            src._leave(self.path, start, self.last_write)

    def _answer(self) -> None:
        src = self.server.source
        src._record(self.command, self.path, dict(self.headers.items()))
        rule = src._take_rule(self.path)
        if rule is None:
            self._serve()
            return
        o = rule.opts
        match rule.kind:
            case "close":
                self.close_connection = True  # no status line at all
            case "slow":
                if src._stopped.wait(o["seconds"]):
                    self.close_connection = True
                else:
                    self._serve()
            case "wrong_charset":
                self._serve(o.get("content_type", "text/html; charset=iso-8859-1"))
            case "status":
                status = int(o["status"])
                headers = {"Content-Type": HTML}
                if "retry_after" in o:
                    headers["Retry-After"] = str(o["retry_after"])
                self._send_bytes(status, _page(status), headers)
            case "redirect" | "redirect_loop":
                status = int(o.get("status", 302))
                location = o["location"] if rule.kind == "redirect" else o.get("via", self.path)
                if location.startswith("/"):
                    location = src.url + location
                self._send_bytes(
                    status, _page(status), {"Content-Type": HTML, "Location": location}
                )
            case "drip":
                body = b"".join(filler(int(o.get("size", 100_000))))
                headers = {"Content-Type": HTML, "Content-Length": str(len(body))}
                chunks = self._drip(body, int(o.get("chunk", 64)), float(o["interval"]))
                self._send(200, headers, chunks)
            case "drip_headers":
                # Status line and headers a few bytes at a time (default one), then the
                # page: every read is quick, but the response never seems to start.
                self._drip_headers(int(o.get("chunk", 1)), float(o["interval"]))
            case "huge":
                size = int(o["size"])
                headers = {"Content-Type": HTML}
                close = False
                if o.get("content_length", True):
                    headers["Content-Length"] = str(size)
                elif o.get("chunked", False):
                    headers["Transfer-Encoding"] = "chunked"
                else:
                    close = True  # body ends when the connection does
                self._send(200, headers, filler(size), close=close)
            case "gzip_bomb":
                headers = {"Content-Type": HTML, "Content-Encoding": "gzip"}
                self._send_bytes(200, gzip_bomb(int(o.get("size", 50_000_000))), headers)
            case "garbage":
                # Seeded so a failing test sees the same bytes on rerun.
                body = random.Random(o.get("seed", 0)).randbytes(int(o.get("size", 4096)))
                self._send_bytes(200, body, {"Content-Type": o.get("content_type", HTML)})
            case "not_html":
                ctype = o.get("content_type", "application/pdf")
                body = o.get("body") or _MAGIC.get(ctype, b"\x00\x01binary\x02\x03")
                self._send_bytes(200, body, {"Content-Type": ctype})
            case _:  # pragma: no cover - misbehave() validates kinds
                raise AssertionError(rule.kind)

    def _serve(self, content_type: str | None = None) -> None:
        src = self.server.source
        res = src._resolve(self.path)
        if res is None:
            self._send_bytes(404, _page(404), {"Content-Type": HTML})
            return
        headers = {"Content-Type": content_type or res.content_type}
        if src.conditional:
            etag = '"' + hashlib.sha1(res.body).hexdigest() + '"'
            headers["ETag"] = etag
            headers["Last-Modified"] = formatdate(res.mtime, usegmt=True)
            if self._not_modified(etag, res.mtime):
                self._send(304, headers)
                return
        self._send_bytes(200, res.body, headers)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:  # RFC 9110 §13.1.3: If-None-Match wins over If-Modified-Since
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is None:
            return False
        try:
            when = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False  # unparseable dates are ignored, as real servers do
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp() >= mtime

    def _drip(self, body: bytes, chunk: int, interval: float) -> Iterator[bytes]:
        for start in range(0, len(body), chunk):
            if start and self.server.source._stopped.wait(interval):
                self.close_connection = True  # body is short of Content-Length now
                return
            yield body[start : start + chunk]

    def _drip_headers(self, chunk: int, interval: float) -> None:
        res = self.server.source._resolve(self.path)
        body = res.body if res is not None else _page(200)
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {HTML}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        for part in self._drip(head, chunk, interval):
            self.wfile.write(part)
        if self.close_connection:  # stopped mid-headers
            return
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_bytes(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self._send(status, {**headers, "Content-Length": str(len(body))}, (body,))

    def _send(
        self,
        status: int,
        headers: dict[str, str],
        chunks: Iterable[bytes] = (),
        *,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD" or status == 304:
            return
        chunked = headers.get("Transfer-Encoding") == "chunked"
        for data in chunks:
            if chunked:
                data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
            self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
