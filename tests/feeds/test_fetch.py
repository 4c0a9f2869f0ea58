"""The real Fetcher against the local fake source: what a user of the poller would notice.

Retries never really wait: the Fetcher gets a ``sleep`` that only records how long it
was asked to sleep, so back-off and ``Retry-After`` are asserted on those numbers.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.config import FeedsConfig, FetchSettings, load_feeds_file
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
from feeds.fetch import Fetcher, parse_retry_after
from feeds.parse import parse_page
from tests.support.fake_source import DEFAULT_ROOT, FakeSource, gzip_bomb

INDEX = (DEFAULT_ROOT / "index.html").read_bytes()

BASE = FetchSettings(
    user_agent="feedbot-tests/1.0 (+https://feeds.test/about)",
    connect_timeout=1.0,
    read_timeout=0.5,
    deadline=1.5,
    max_bytes=1_000_000,
    retries=2,
    max_retry_after=10.0,
    max_redirects=5,
    article_delay=0,
    allow_private_addresses=True,
)


@dataclass
class Client:
    fetcher: Fetcher
    slept: list[float] = field(default_factory=list)


MakeClient = Callable[..., Client]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """A Fetcher over BASE with overrides; its sleeps are recorded, never waited."""
    made: list[Fetcher] = []

    def make(resolve: Callable[[str], Iterable[str]] | None = None, **overrides: object) -> Client:
        slept: list[float] = []
        fetcher = Fetcher(replace(BASE, **overrides), sleep=slept.append, resolve=resolve)
        made.append(fetcher)
        return Client(fetcher, slept)

    yield make
    for fetcher in made:
        fetcher.close()


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def fails(exc_type: type[BaseException], call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(exc_type) as info:
        call()
    return info.value, time.monotonic() - started


# --- headers and validators ---------------------------------------------------------


def test_sends_the_configured_user_agent(settings: FeedsConfig, source: FakeSource) -> None:
    fetcher = Fetcher(settings.fetch, sleep=lambda _s: None)
    try:
        response = fetcher.get(source.url + "/")
    finally:
        fetcher.close()
    assert response.status == 200
    sent = source.requests[-1].headers
    assert sent["User-Agent"] == settings.fetch.user_agent
    assert sent["User-Agent"].startswith("feedbot/")
    assert "python-requests" not in sent["User-Agent"]
    assert "text/html" in sent["Accept"]


def test_user_agent_comes_from_the_settings_file(
    make_config: Callable[..., object], source: FakeSource
) -> None:
    agent = "statement-watcher/2.3 (+mailto:ops@feeds.test)"
    path = make_config(source.url + "/", fetch={"user_agent": agent})
    settings = load_feeds_file(path, env={})  # type: ignore[arg-type]
    fetcher = Fetcher(settings.fetch, sleep=lambda _s: None)
    try:
        fetcher.get(source.url + "/fnapr/6940")
    finally:
        fetcher.close()
    assert source.requests[-1].headers["User-Agent"] == agent


@pytest.mark.parametrize("validators", ["both", "etag", "last_modified"])
def test_conditional_get_answers_not_modified(
    make_client: MakeClient, source: FakeSource, validators: str
) -> None:
    client = make_client()
    first = client.fetcher.get(source.url + "/")
    assert first.status == 200
    assert first.body == INDEX
    assert first.etag and first.last_modified
    etag = first.etag if validators in ("both", "etag") else None
    last_modified = first.last_modified if validators in ("both", "last_modified") else None

    second = client.fetcher.get(source.url + "/", etag=etag, last_modified=last_modified)

    assert second.not_modified
    assert second.status == 304
    assert second.body == b""
    sent = source.requests[-1].headers
    assert sent.get("If-None-Match") == etag
    assert sent.get("If-Modified-Since") == last_modified
    assert client.slept == []


def test_changed_page_is_fetched_again_despite_validators(
    make_client: MakeClient, source: FakeSource
) -> None:
    client = make_client()
    first = client.fetcher.get(source.url + "/")
    source.set_body("/", INDEX.replace(b"6 July 2020", b"7 July 2020"))
    second = client.fetcher.get(
        source.url + "/", etag=first.etag, last_modified=first.last_modified
    )
    assert second.status == 200
    assert b"7 July 2020" in second.body
    assert second.etag != first.etag


# --- retries ---------------------------------------------------------------------------


def test_a_500_once_is_retried_and_succeeds(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client()
    source.misbehave("/", "status", status=500, times=1)
    response = client.fetcher.get(source.url + "/")
    assert response.status == 200
    assert response.body == INDEX
    assert source.count("/") == 2
    assert len(client.slept) == 1
    assert 0 < client.slept[0] <= 30


@pytest.mark.parametrize("retries", [0, 2, 3])
def test_a_503_forever_gives_up_after_the_retries(
    make_client: MakeClient, source: FakeSource, retries: int
) -> None:
    client = make_client(retries=retries, deadline=60.0)  # back-off up to 2 s must fit
    source.misbehave("/", "status", status=503)
    exc, _ = fails(SourceHTTPError, lambda: client.fetcher.get(source.url + "/"))
    assert isinstance(exc, SourceHTTPError)
    assert exc.status == 503
    assert exc.label == "http_503"
    assert source.count("/") == retries + 1
    assert len(client.slept) == retries
    assert all(0 < s <= 30 for s in client.slept)


def test_retry_after_in_seconds_is_honoured(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client(deadline=10.0)  # room for the wait: the deadline covers it too
    source.misbehave("/", "status", status=429, retry_after="2", times=1)
    response = client.fetcher.get(source.url + "/")
    assert response.status == 200
    assert client.slept == [2.0]
    assert source.count("/") == 2


def test_retry_after_as_an_http_date_is_honoured(
    make_client: MakeClient, source: FakeSource
) -> None:
    client = make_client(deadline=10.0)
    source.misbehave(
        "/", "status", status=503, retry_after=formatdate(time.time() + 3, usegmt=True), times=1
    )
    response = client.fetcher.get(source.url + "/")
    assert response.status == 200
    assert len(client.slept) == 1
    # The date has whole seconds: 3 s ahead, less what has passed since it was written.
    assert 1.5 <= client.slept[0] <= 3.5
    assert source.count("/") == 2


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_retry_after_beyond_the_cap_is_not_waited_for(
    make_client: MakeClient, source: FakeSource, form: str
) -> None:
    client = make_client(max_retry_after=10.0, retries=3)
    value = "600" if form == "seconds" else formatdate(time.time() + 600, usegmt=True)
    source.misbehave("/", "status", status=503, retry_after=value)
    exc, elapsed = fails(SourceHTTPError, lambda: client.fetcher.get(source.url + "/"))
    assert isinstance(exc, SourceHTTPError)
    assert exc.status == 503
    assert exc.retry_after is not None
    assert 590 <= exc.retry_after <= 600  # handed on, so the scheduler can back off
    assert client.slept == []
    assert source.count("/") == 1
    assert elapsed < 1.0


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_client_errors_are_not_retried(
    make_client: MakeClient, source: FakeSource, status: int
) -> None:
    client = make_client(retries=3)
    path = "/missing" if status == 404 else "/"
    if status != 404:
        source.misbehave(path, "status", status=status)
    exc, _ = fails(SourceHTTPError, lambda: client.fetcher.get(source.url + path))
    assert isinstance(exc, SourceHTTPError)
    assert exc.status == status
    assert source.count(path) == 1
    assert client.slept == []


# --- time limits -----------------------------------------------------------------------


def test_slow_headers_time_out(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client(read_timeout=0.5, retries=0)
    source.misbehave("/", "slow", seconds=10)
    _, elapsed = fails(SourceTimeout, lambda: client.fetcher.get(source.url + "/"))
    assert elapsed < 0.5 + 1.0


def test_slow_once_is_retried(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client(read_timeout=0.3, retries=1)
    source.misbehave("/", "slow", seconds=10, times=1)
    response = client.fetcher.get(source.url + "/")
    assert response.body == INDEX
    assert len(client.slept) == 1
    assert source.count("/") == 2


def test_drip_is_cut_at_the_deadline(make_client: MakeClient, source: FakeSource) -> None:
    # 64 bytes every 0.1 s: every read is well within the read timeout, but the
    # 100 kB body would take minutes.
    deadline = 1.5
    client = make_client(read_timeout=0.5, deadline=deadline, retries=0)
    source.misbehave("/", "drip", interval=0.1, chunk=64, size=100_000)
    exc, elapsed = fails(SourceTimeout, lambda: client.fetcher.get(source.url + "/"))
    assert "within" in str(exc)
    assert elapsed < deadline + 2.0
    assert elapsed >= deadline - 0.1


# --- size limits -----------------------------------------------------------------------


def test_declared_huge_body_is_refused_without_reading_it(
    make_client: MakeClient, source: FakeSource
) -> None:
    client = make_client(max_bytes=1_000_000)
    source.misbehave("/", "huge", size=2_000_000_000)
    exc, elapsed = fails(SourceTooLarge, lambda: client.fetcher.get(source.url + "/"))
    assert "declared" in str(exc)
    assert elapsed < 1.0  # 2 GB were never read
    assert source.count("/") == 1


@pytest.mark.parametrize("framing", ["close", "chunked"])
def test_undeclared_huge_body_is_cut_after_max_bytes(
    make_client: MakeClient, source: FakeSource, framing: str
) -> None:
    client = make_client(max_bytes=1_000_000)
    source.misbehave(
        "/", "huge", size=2_000_000_000, content_length=False, chunked=framing == "chunked"
    )
    tracemalloc.start()
    try:
        exc, elapsed = fails(SourceTooLarge, lambda: client.fetcher.get(source.url + "/"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "over the limit" in str(exc)
    assert elapsed < 2.0
    assert peak < 10_000_000  # about max_bytes held, not the 2 GB on offer
    assert source.count("/") == 1


def test_gzip_bomb_is_refused_in_small_memory(make_client: MakeClient, source: FakeSource) -> None:
    gzip_bomb(50_000_000)  # the server's copy is built (and cached) outside the measurement
    client = make_client(max_bytes=5_000_000)
    source.misbehave("/", "gzip_bomb", size=50_000_000)
    tracemalloc.start()
    try:
        _, elapsed = fails(SourceTooLarge, lambda: client.fetcher.get(source.url + "/"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000
    assert elapsed < 5.0


def test_small_gzip_body_is_inflated(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client(max_bytes=5_000_000)
    source.misbehave("/", "gzip_bomb", size=2_000_000)
    response = client.fetcher.get(source.url + "/")
    assert len(response.body) == 2_000_000
    assert response.body.startswith(b"<!DOCTYPE html>")


# --- redirects, content types, connections ---------------------------------------------


def test_redirect_loop_to_itself(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client()
    source.misbehave("/", "redirect_loop")
    fails(TooManyRedirects, lambda: client.fetcher.get(source.url + "/"))
    assert source.count("/") == 1
    assert client.slept == []


def test_redirect_loop_between_two_pages(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client()
    source.misbehave("/a", "redirect_loop", via="/b")
    fails(TooManyRedirects, lambda: client.fetcher.get(source.url + "/a"))
    assert source.count("/a") == 1
    assert source.count("/b") == 1


def test_redirect_chain_longer_than_allowed(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client(max_redirects=2)
    for n in range(5):
        source.misbehave(f"/r{n}", "redirect", location=f"/r{n + 1}")
    fails(TooManyRedirects, lambda: client.fetcher.get(source.url + "/r0"))
    assert source.count("/r3") == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_followed_to_the_final_url(
    make_client: MakeClient, source: FakeSource, status: int
) -> None:
    client = make_client()
    source.misbehave("/old-home", "redirect", location="/fnapr/6940", status=status)
    response = client.fetcher.get(source.url + "/old-home")
    assert response.status == 200
    assert response.url == source.url + "/fnapr/6940"
    assert b"article-text" in response.body


def test_redirect_off_the_allowed_hosts_is_refused(
    make_client: MakeClient, source: FakeSource
) -> None:
    client = make_client()
    source.misbehave("/fnapr/6940", "redirect", location="http://elsewhere.invalid/x")
    fails(
        AddressNotAllowed,
        lambda: client.fetcher.get(source.url + "/fnapr/6940", allowed_hosts=["127.0.0.1"]),
    )
    assert client.slept == []


@pytest.mark.parametrize("content_type", ["application/pdf", "image/png", "application/zip"])
def test_non_html_is_refused(
    make_client: MakeClient, source: FakeSource, content_type: str
) -> None:
    client = make_client()
    source.misbehave("/", "not_html", content_type=content_type)
    exc, _ = fails(SourceNotHTML, lambda: client.fetcher.get(source.url + "/"))
    assert content_type in str(exc)
    assert source.count("/") == 1


def test_connection_closed_without_an_answer(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client(retries=1)
    source.misbehave("/", "close")
    fails(SourceUnreachable, lambda: client.fetcher.get(source.url + "/"))
    assert source.count("/") == 2  # a dropped connection is worth one more try
    assert len(client.slept) == 1


def test_closed_once_then_answers(make_client: MakeClient, source: FakeSource) -> None:
    client = make_client(retries=1)
    source.misbehave("/", "close", times=1)
    assert client.fetcher.get(source.url + "/").body == INDEX


def test_nothing_listening(make_client: MakeClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(retries=1)
    exc, elapsed = fails(SourceUnreachable, lambda: client.fetcher.get(f"http://127.0.0.1:{port}/"))
    assert isinstance(exc, FetchError)
    assert len(client.slept) == 1
    assert elapsed < 3.0


# --- character sets --------------------------------------------------------------------

RU_TITLES = [
    "Заявление МИД России о ситуации вокруг Договора по открытому небу",
    "Комментарий официального представителя МИД России М.В.Захаровой",
]
RU_LEAD = "Посольство России в Великобритании — ёлка, щука, объявление"


def russian_page(charset_meta: str | None) -> str:
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    items = "\n".join(
        f"""<li class="news-item">
  <span class="news-date">0{n + 1}.07.2020</span> -
  <a class="news-title" href="/fnapr/70{n}">{title}</a>
  <p class="news-lead">{RU_LEAD}</p>
</li>"""
        for n, title in enumerate(RU_TITLES)
    )
    return f"""<!DOCTYPE html>
<html lang="ru"><head>{meta}<title>Посольство</title></head>
<body><main><ul class="news-list">
{items}
</ul></main></body></html>
"""


def test_utf8_page_with_a_wrong_charset_header(
    make_client: MakeClient, source: FakeSource, settings: FeedsConfig
) -> None:
    client = make_client()
    source.set_body("/ru", russian_page(None).encode("utf-8"))
    source.misbehave("/ru", "wrong_charset")  # Content-Type: text/html; charset=iso-8859-1
    response = client.fetcher.get(source.url + "/ru")
    assert response.content_type is not None
    assert "iso-8859-1" in response.content_type
    page = parse_page(response.body, response.url, settings.source.profile, response.content_type)
    assert [e.title for e in page.entries] == RU_TITLES
    assert page.entries[0].summary == RU_LEAD
    assert page.entries[0].published == dt.date(2020, 7, 1)
    assert page.entries[1].url == source.url + "/fnapr/701"


def test_windows_1251_page_declared_in_meta_only(
    make_client: MakeClient, source: FakeSource, settings: FeedsConfig
) -> None:
    client = make_client()
    body = russian_page("windows-1251").encode("cp1251")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")  # the page really is not UTF-8
    source.set_body("/ru", body, content_type="text/html")
    response = client.fetcher.get(source.url + "/ru")
    assert response.content_type == "text/html"
    page = parse_page(response.body, response.url, settings.source.profile, response.content_type)
    assert [e.title for e in page.entries] == RU_TITLES
    assert all(e.summary == RU_LEAD for e in page.entries)


# --- address checks --------------------------------------------------------------------

ALLOWED = ["www.rusemb.org.uk", "rusemb.org.uk"]


def resolver(*addresses: str) -> Callable[[str], list[str]]:
    def resolve(_host: str) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/fnapr/1",
        "https://www.rusemb.org.uk.evil.example/fnapr/1",
        "ftp://www.rusemb.org.uk/fnapr/1",
        "file:///etc/passwd",
        "https:///fnapr/1",
    ],
)
def test_links_off_the_allowed_hosts_are_refused(make_client: MakeClient, url: str) -> None:
    client = make_client(allow_private_addresses=False, resolve=resolver("93.184.216.34"))
    with pytest.raises(AddressNotAllowed):
        client.fetcher.check_address(url, ALLOWED)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.4",
        "::1",
        "169.254.169.254",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "fc00::5",
    ],
)
def test_allowed_host_resolving_to_a_private_address_is_refused(
    make_client: MakeClient, address: str
) -> None:
    client = make_client(allow_private_addresses=False, resolve=resolver(address))
    with pytest.raises(AddressNotAllowed) as info:
        client.fetcher.check_address("https://www.rusemb.org.uk/fnapr/6940", ALLOWED)
    assert "non-public" in str(info.value)


def test_one_private_address_among_public_ones_is_refused(make_client: MakeClient) -> None:
    client = make_client(
        allow_private_addresses=False, resolve=resolver("93.184.216.34", "10.0.0.7")
    )
    with pytest.raises(AddressNotAllowed):
        client.fetcher.check_address("https://rusemb.org.uk/fnapr/6940", ALLOWED)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_allowed_host_with_a_public_address_passes(make_client: MakeClient, address: str) -> None:
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return [address]

    client = make_client(allow_private_addresses=False, resolve=resolve)
    client.fetcher.check_address("https://WWW.RUSEMB.ORG.UK/fnapr/6940", ALLOWED)
    assert asked == ["www.rusemb.org.uk"]


def test_private_addresses_allowed_when_configured(make_client: MakeClient) -> None:
    client = make_client(allow_private_addresses=True, resolve=resolver("127.0.0.1"))
    client.fetcher.check_address("http://www.rusemb.org.uk/fnapr/6940", ALLOWED)
    with pytest.raises(AddressNotAllowed):
        client.fetcher.check_address("http://evil.example/", ALLOWED)


def test_private_address_refused_before_any_request(
    make_client: MakeClient, source: FakeSource
) -> None:
    client = make_client(allow_private_addresses=False)  # the real resolver: 127.0.0.1
    with pytest.raises(AddressNotAllowed):
        client.fetcher.get(source.url + "/fnapr/6940", allowed_hosts=["127.0.0.1"])
    assert source.count("/fnapr/6940") == 0


# --- parse_retry_after -----------------------------------------------------------------

NOW = dt.datetime(2015, 10, 21, 7, 28, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 08:28:00 GMT", 3600.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: no wait
        ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0),  # obsolete RFC 850 form
        ("Wed Oct 21 07:28:20 2015", 20.0),  # asctime form, no zone: GMT
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("1e3", None),
        ("0x10", None),
        ("²", None),  # a digit to str.isdigit(), not a number
        ("٣", None),  # Arabic-Indic three: not delta-seconds
        ("Wed, 21 Oct 99999999999 07:28:00 GMT", None),
        ("Wed, 21 Oct 2015 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@given(st.integers(min_value=0, max_value=10**15))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)


@given(st.text(max_size=60))
def test_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, now=NOW)
    assert result is None or (isinstance(result, float) and result >= 0)
    if not any(c.isdigit() for c in value):
        assert result is None  # neither seconds nor a date without a digit


@given(st.text(alphabet=st.characters(exclude_categories=("Nd", "No")), min_size=1))
def test_retry_after_garbage_is_none(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


@given(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(["GMT", "+0000", "-2400", "+9999", "UT", "XYZ", ""]),
)
def test_retry_after_date_like_values_never_raise(year: int, hour: int, zone: str) -> None:
    result = parse_retry_after(f"Wed, 21 Oct {year} {hour}:00:00 {zone}", now=NOW)
    assert result is None or result >= 0


def test_an_unreachable_source_is_said_in_plain_words() -> None:
    fetcher = Fetcher(FetchSettings(retries=0, deadline=5))
    try:
        with pytest.raises(
            SourceUnreachable, match=r"^http://127\.0\.0\.1:1/: connection refused$"
        ):
            fetcher.get("http://127.0.0.1:1/")
        with pytest.raises(SourceUnreachable, match=r"cannot resolve no-such-host\.invalid$"):
            fetcher.get("http://no-such-host.invalid/")
    finally:
        fetcher.close()
