"""The fetch's one deadline, its stop, and which hosts a fetch may reach.

All against the real Fetcher and the local fake source: a server that drips its
headers, drips its body or never answers; a second server standing in for
another private host.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from feeds.config import FetchSettings
from feeds.errors import (
    AddressNotAllowed,
    FetchCancelled,
    SourceHTTPError,
    SourceTimeout,
    error_label,
)
from feeds.fetch import Fetcher
from tests.support.fake_source import DEFAULT_ROOT, FakeSource

INDEX = (DEFAULT_ROOT / "index.html").read_bytes()
ARTICLE = (DEFAULT_ROOT / "fnapr" / "6940.html").read_bytes()

BASE = FetchSettings(
    user_agent="feedbot-tests/1.0",
    connect_timeout=1.0,
    read_timeout=0.5,
    deadline=1.5,
    max_bytes=1_000_000,
    retries=2,
    max_retry_after=10.0,
    article_delay=0,
    allow_private_addresses=True,
)
SLACK = 0.5  # how far past its deadline a fetch may end


@pytest.fixture
def make_fetcher() -> Iterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(
        sleep: Callable[[float], None] | None = lambda _s: None,
        resolve: Callable[[str], Iterable[str]] | None = None,
        cancel: threading.Event | None = None,
        **overrides: Any,
    ) -> Fetcher:
        fetcher = Fetcher(replace(BASE, **overrides), sleep=sleep, resolve=resolve, cancel=cancel)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


@pytest.fixture
def other() -> Iterator[FakeSource]:
    """Another server on a private address: a host that is not the source."""
    with FakeSource() as src:
        yield src


def fails(exc_type: type[BaseException], call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(exc_type) as info:
        call()
    return info.value, time.monotonic() - started


def cancel_after(seconds: float) -> threading.Event:
    event = threading.Event()
    timer = threading.Timer(seconds, event.set)
    timer.daemon = True
    timer.start()
    return event


@contextlib.contextmanager
def never_accepting() -> Iterator[str]:
    """A host whose listen queue is full: a new connection is never taken (the SYN
    goes unanswered), as with a firewall that drops packets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    waiting = []
    for _ in range(3):  # fill the queue
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(server.getsockname())
        waiting.append(client)
    try:
        yield url
    finally:
        for client in [*waiting, server]:
            client.close()


@pytest.mark.parametrize("route", ["direct", "proxy"])
def test_a_host_that_never_takes_the_connection_is_a_connect_timeout(
    make_fetcher: Callable[..., Fetcher], monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    with never_accepting() as url:
        if route == "proxy":  # the proxy the environment names is the silent one
            monkeypatch.setenv("HTTP_PROXY", url)
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            url = "http://statements.example"
        fetcher = make_fetcher(connect_timeout=0.5, deadline=3.0, retries=0)
        exc, elapsed = fails(SourceTimeout, lambda: fetcher.get(url + "/"))
    assert "timed out connecting" in str(exc)
    assert 0.4 <= elapsed < 0.5 + SLACK
    assert error_label(exc) == "timeout"


# --- one deadline for the whole fetch --------------------------------------------------


@pytest.mark.parametrize("retries", [0, 2])
def test_headers_dripped_a_byte_at_a_time_end_at_the_deadline(
    make_fetcher: Callable[..., Fetcher], source: FakeSource, retries: int
) -> None:
    # Each byte comes well within the read timeout; the headers alone would take ~20 s.
    deadline = 1.5
    fetcher = make_fetcher(read_timeout=0.5, deadline=deadline, retries=retries)
    source.misbehave("/", "drip_headers", interval=0.2)
    exc, elapsed = fails(SourceTimeout, lambda: fetcher.get(source.url + "/"))
    assert f"within {deadline:g}s" in str(exc)
    assert deadline - 0.1 <= elapsed < deadline + SLACK
    assert source.count("/") == 1  # no time was left for a retry
    assert error_label(exc) == "timeout"


def test_dripped_headers_that_finish_in_time_give_the_page(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    fetcher = make_fetcher(deadline=5.0)
    source.misbehave("/", "drip_headers", interval=0.002, chunk=4)
    assert fetcher.get(source.url + "/").body == INDEX


def test_body_drip_with_retries_ends_within_one_deadline(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    deadline = 1.0
    fetcher = make_fetcher(read_timeout=0.5, deadline=deadline, retries=2)
    source.misbehave("/", "drip", interval=0.05, chunk=64, size=100_000)
    _, elapsed = fails(SourceTimeout, lambda: fetcher.get(source.url + "/"))
    assert elapsed < deadline + SLACK  # not one deadline per attempt
    assert source.count("/") == 1


def test_retries_share_the_deadline(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    # Each attempt waits out its 0.6 s read timeout; many retries are allowed, but
    # the third attempt gets only what is left of the 1.5 s.
    deadline = 1.5
    fetcher = make_fetcher(read_timeout=0.6, deadline=deadline, retries=10)
    source.misbehave("/", "slow", seconds=30)
    _, elapsed = fails(SourceTimeout, lambda: fetcher.get(source.url + "/"))
    assert elapsed < deadline + SLACK
    assert 2 <= source.count("/") <= 3


def test_a_retry_wait_past_the_deadline_is_not_taken(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    slept: list[float] = []
    fetcher = make_fetcher(sleep=slept.append, deadline=1.5, max_retry_after=10.0)
    source.misbehave("/", "status", status=503, retry_after="5")
    exc, elapsed = fails(SourceHTTPError, lambda: fetcher.get(source.url + "/"))
    assert isinstance(exc, SourceHTTPError)
    assert exc.retry_after == 5.0  # handed on: the poll's back-off waits instead
    assert slept == []
    assert source.count("/") == 1
    assert elapsed < 0.5


def test_the_next_fetch_after_a_deadline_works(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    fetcher = make_fetcher(deadline=0.8, retries=0)
    source.misbehave("/", "drip_headers", interval=0.2, times=1)
    fails(SourceTimeout, lambda: fetcher.get(source.url + "/"))
    response = fetcher.get(source.url + "/")
    assert response.status == 200
    assert response.body == INDEX


def watchdogs() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "fetch-watchdog")


def test_one_watchdog_per_fetcher_ended_by_close(source: FakeSource) -> None:
    before = watchdogs()
    fetcher = Fetcher(BASE, sleep=lambda _s: None)
    for path in ["/", "/fnapr/6940", "/missing", "/"]:
        with contextlib.suppress(SourceHTTPError):  # /missing is a 404
            fetcher.get(source.url + path)
    assert watchdogs() == before + 1  # not one per fetch
    fetcher.close()
    assert watchdogs() == before
    assert fetcher.get(source.url + "/").body == INDEX  # usable again, as requests is
    fetcher.close()
    assert watchdogs() == before


# --- a stop ends a running fetch at once -----------------------------------------------


@pytest.mark.parametrize(
    ("kind", "opts"),
    [
        ("slow", {"seconds": 30}),  # no answer at all
        ("drip_headers", {"interval": 0.2}),
        ("drip", {"interval": 0.05, "chunk": 64, "size": 1_000_000}),
    ],
)
def test_a_stop_ends_a_hanging_fetch_within_a_second(
    make_fetcher: Callable[..., Fetcher], source: FakeSource, kind: str, opts: dict[str, object]
) -> None:
    stop = cancel_after(0.3)
    fetcher = make_fetcher(cancel=stop, read_timeout=20.0, deadline=25.0)
    source.misbehave("/", kind, **opts)  # type: ignore[arg-type]
    exc, elapsed = fails(FetchCancelled, lambda: fetcher.get(source.url + "/"))
    assert elapsed < 0.3 + 1.0
    assert error_label(exc) == "cancelled"


def test_a_stop_ends_a_retry_wait(make_fetcher: Callable[..., Fetcher], source: FakeSource) -> None:
    stop = cancel_after(0.3)
    # The real wait (no sleep stand-in): Retry-After 8 s is within every limit.
    fetcher = make_fetcher(sleep=None, cancel=stop, deadline=20.0, max_retry_after=10.0)
    source.misbehave("/", "status", status=503, retry_after="8")
    _, elapsed = fails(FetchCancelled, lambda: fetcher.get(source.url + "/"))
    assert elapsed < 0.3 + 1.0
    assert source.count("/") == 1


def test_a_stop_given_to_one_fetch_ends_it(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    fetcher = make_fetcher(read_timeout=20.0, deadline=25.0)
    source.misbehave("/", "slow", seconds=30)
    stop = cancel_after(0.3)
    _, elapsed = fails(FetchCancelled, lambda: fetcher.get(source.url + "/", cancel=stop))
    assert elapsed < 0.3 + 1.0


def test_a_stop_ends_a_fetch_begun_while_another_hangs(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    # The watchdog sleeps until the hanging fetch's deadline; the second fetch's stop
    # must still be seen within a tenth of a second, not at that deadline.
    fetcher = make_fetcher(read_timeout=20.0, deadline=3.0, retries=0)
    source.misbehave("/", "slow", seconds=30)
    source.misbehave("/fnapr/6940", "slow", seconds=30)
    with ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(fails, SourceTimeout, lambda: fetcher.get(source.url + "/"))
        while source.count("/") == 0:
            time.sleep(0.01)
        stop = cancel_after(0.3)
        _, elapsed = fails(
            FetchCancelled, lambda: fetcher.get(source.url + "/fnapr/6940", cancel=stop)
        )
        assert elapsed < 0.3 + 1.0
        _, hung = hanging.result()  # and the hanging fetch still ends at its own deadline
        assert 3.0 - 0.1 <= hung < 3.0 + SLACK


def test_after_a_stop_nothing_more_is_fetched(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    stop = threading.Event()
    fetcher = make_fetcher(cancel=stop)
    assert fetcher.get(source.url + "/").status == 200
    stop.set()
    fails(FetchCancelled, lambda: fetcher.get(source.url + "/fnapr/6940"))
    assert source.count("/fnapr/6940") == 0


# --- the source's own host is trusted, other hosts must be public ----------------------


def test_links_on_the_source_host_are_fetched_on_a_private_address(
    make_fetcher: Callable[..., Fetcher], source: FakeSource
) -> None:
    fetcher = make_fetcher(allow_private_addresses=False)
    response = fetcher.get(
        source.url + "/fnapr/6940", allowed_hosts=["127.0.0.1"], source_url=source.url + "/"
    )
    assert response.status == 200
    assert response.body == ARTICLE


def test_another_private_host_is_still_refused(
    make_fetcher: Callable[..., Fetcher], source: FakeSource, other: FakeSource
) -> None:
    # Same address, another port: another service, not the source.
    fetcher = make_fetcher(allow_private_addresses=False)
    with pytest.raises(AddressNotAllowed, match="non-public"):
        fetcher.get(
            other.url + "/fnapr/6940", allowed_hosts=["127.0.0.1"], source_url=source.url + "/"
        )
    port = source.url.rsplit(":", 1)[1]
    with pytest.raises(AddressNotAllowed, match="non-public"):
        fetcher.get(
            f"http://localhost:{port}/fnapr/6940",
            allowed_hosts=["127.0.0.1", "localhost"],
            source_url=source.url + "/",
        )
    assert other.count("/fnapr/6940") == 0
    assert source.count("/fnapr/6940") == 0


def test_a_redirect_from_the_source_host_to_a_private_host_is_refused(
    make_fetcher: Callable[..., Fetcher], source: FakeSource, other: FakeSource
) -> None:
    fetcher = make_fetcher(allow_private_addresses=False)
    source.misbehave("/fnapr/6940", "redirect", location=other.url + "/fnapr/6940")
    with pytest.raises(AddressNotAllowed, match="non-public"):
        fetcher.get(
            source.url + "/fnapr/6940", allowed_hosts=["127.0.0.1"], source_url=source.url + "/"
        )
    assert other.count("/fnapr/6940") == 0


def test_the_source_page_itself_may_not_redirect_to_a_private_host(
    make_fetcher: Callable[..., Fetcher], source: FakeSource, other: FakeSource
) -> None:
    fetcher = make_fetcher(allow_private_addresses=False)
    source.misbehave("/home", "redirect", location="/")  # on its own host: followed
    assert fetcher.get(source.url + "/home", source_url=source.url + "/home").body == INDEX
    source.misbehave("/", "redirect", location=other.url + "/")
    with pytest.raises(AddressNotAllowed):
        fetcher.get(source.url + "/", source_url=source.url + "/")
    assert other.count("/") == 0


def resolver(table: dict[str, str]) -> Callable[[str], list[str]]:
    return lambda host: [table[host]]


@pytest.mark.parametrize(
    ("url", "passes"),
    [
        ("http://news.intranet.test:8080/fnapr/1", True),  # the source's host:port
        ("http://NEWS.intranet.test:8080/fnapr/2", True),
        ("http://news.intranet.test/fnapr/1", False),  # port 80: another service
        ("http://files.intranet.test:8080/fnapr/1", False),  # another private host
        ("https://mirror.example/fnapr/1", True),  # an allowed public host
        ("https://elsewhere.example/fnapr/1", False),  # public, but not allowed
    ],
)
def test_which_links_an_intranet_source_may_follow(
    make_fetcher: Callable[..., Fetcher], url: str, passes: bool
) -> None:
    fetcher = make_fetcher(
        allow_private_addresses=False,
        resolve=resolver(
            {
                "news.intranet.test": "10.1.2.3",
                "files.intranet.test": "10.1.2.4",
                "mirror.example": "93.184.216.34",
                "elsewhere.example": "93.184.216.35",
            }
        ),
    )
    hosts = ["news.intranet.test", "files.intranet.test", "mirror.example"]
    source = "http://news.intranet.test:8080/"
    if passes:
        fetcher.check_address(url, hosts, source_url=source)
    else:
        with pytest.raises(AddressNotAllowed):
            fetcher.check_address(url, hosts, source_url=source)
