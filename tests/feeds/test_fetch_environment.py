"""What the Fetcher takes from its surroundings, now that it reads them once per origin
and sends a prepared conditional GET again: an operator's proxy (and its exceptions),
and the cookies a source (or the CDN in front of it) sets, still hold on every poll.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from feeds.config import FetchSettings
from feeds.fetch import Fetcher
from tests.support.fake_source import DEFAULT_ROOT, FakeSource

PAGE = b"<!DOCTYPE html><html><body><p>statements</p></body></html>"
SETTINGS = FetchSettings(
    user_agent="feedbot-tests/1.0",
    connect_timeout=1.0,
    read_timeout=1.0,
    deadline=3.0,
    retries=0,
    allow_private_addresses=True,
)


@dataclass
class Seen:
    """What a little server was asked: the request line's target and chosen headers."""

    targets: list[str] = field(default_factory=list)
    cookies: list[str | None] = field(default_factory=list)
    validators: list[str | None] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    peers: list[int] = field(default_factory=list)  # the client's port: its connection


@contextmanager
def serve(seen: Seen, set_cookie: str | None = None, cookie_at: int = 1) -> Iterator[str]:
    """A server answering every GET with PAGE (ETag "v1"), or 304 to a request that
    sends that ETag back; with ``set_cookie``, answer number ``cookie_at`` sets it."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.targets.append(self.path)
            seen.cookies.append(self.headers.get("Cookie"))
            seen.validators.append(self.headers.get("If-None-Match"))
            seen.auth.append(self.headers.get("Authorization"))
            seen.peers.append(self.client_address[1])
            cookie = set_cookie if len(seen.targets) == cookie_at else None
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                if cookie:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("ETag", '"v1"')
            if cookie:
                self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    made = Fetcher(SETTINGS)
    yield made
    made.close()


def test_polls_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = Seen()
    with serve(seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        fetcher = Fetcher(SETTINGS)
        try:
            url = "http://statements.example/home/"
            first = fetcher.get(url, source_url=url)
            again = fetcher.get(url, first.etag, source_url=url)
        finally:
            fetcher.close()
    assert first.body == PAGE
    assert again.not_modified
    # A proxy is asked for the absolute URL, on every poll (not only the first).
    assert seen.targets == [url, url]


def test_hosts_in_no_proxy_are_fetched_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = Seen()
    with serve(seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.3")
        with FakeSource(DEFAULT_ROOT, host="127.0.0.3") as source:
            fetcher = Fetcher(SETTINGS)
            try:
                url = source.url + "/"
                first = fetcher.get(url, source_url=url)
                again = fetcher.get(url, first.etag, first.last_modified, source_url=url)
            finally:
                fetcher.close()
            assert source.count("/") == 2
    assert first.status == 200 and again.not_modified
    assert seen.targets == []


def test_a_cookie_the_source_sets_goes_back_with_every_later_poll(fetcher: Fetcher) -> None:
    """Set on an unchanged poll's answer (a CDN's), after that poll was first asked:
    the polls after it carry the cookie all the same."""
    seen = Seen()
    with serve(seen, set_cookie="edge=abc123; Path=/", cookie_at=3) as base:
        url = base + "/home/"
        first = fetcher.get(url, source_url=url)
        answers = [fetcher.get(url, first.etag, source_url=url) for _ in range(4)]
    assert all(a.not_modified for a in answers)
    assert seen.cookies == [None, None, None, "edge=abc123", "edge=abc123"]


def test_each_poll_sends_the_validators_it_is_given(fetcher: Fetcher) -> None:
    """A request prepared once is sent again only while it asks the same thing: new
    validators (the page changed) go out as given."""
    seen = Seen()
    with serve(seen) as base:
        url = base + "/home/"
        fetcher.get(url, '"v0"', source_url=url)
        fetcher.get(url, '"v0"', source_url=url)
        fetcher.get(url, '"v1"', source_url=url)
        fetcher.get(url, source_url=url)
    assert seen.validators == ['"v0"', '"v0"', '"v1"', None]


def test_unchanged_polls_share_one_kept_alive_connection(fetcher: Fetcher) -> None:
    seen = Seen()
    with serve(seen) as base:
        url = base + "/home/"
        first = fetcher.get(url, source_url=url)
        answers = [fetcher.get(url, first.etag, source_url=url) for _ in range(5)]
    assert first.body == PAGE and all(a.not_modified for a in answers)
    assert len(set(seen.peers)) == 1


@pytest.mark.parametrize("where", ["netrc", "url"])
def test_credentials_go_with_every_poll(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    """Basic credentials for the source, from ~/.netrc or written in its URL, are sent
    with each poll, the unchanged ones too."""
    seen = Seen()
    with serve(seen) as base:
        url = base + "/home/"
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login reader password s3cret\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc) if where == "netrc" else str(tmp_path / "none"))
        if where == "url":
            url = url.replace("http://", "http://reader:s3cret@")
        fetcher = Fetcher(SETTINGS)
        try:
            first = fetcher.get(url, source_url=url)
            again = fetcher.get(url, first.etag, source_url=url)
        finally:
            fetcher.close()
    assert again.not_modified
    basic = "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert seen.auth == [basic, basic]
