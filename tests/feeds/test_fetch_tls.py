"""HTTPS sources: certificates are checked the same way by the fetcher (requests)
and by the event loop's conditional GET (feeds.recheck) — a second HTTP client
must not be a way round the first one's checks."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from feeds.config import FetchSettings
from feeds.errors import SourceUnreachable
from feeds.fetch import Fetcher
from feeds.recheck import Recheck
from tests.support.fake_source import FakeSource

SETTINGS = FetchSettings(connect_timeout=2, read_timeout=2, deadline=5, retries=0)


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_source(authority: trustme.CA) -> Iterator[FakeSource]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with FakeSource(tls=context) as source:
        yield source


@pytest.fixture
def ca_bundle(authority: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


async def test_a_certificate_nobody_vouches_for_is_refused_by_both(
    https_source: FakeSource, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = https_source.url + "/"
    # The page's validators, learnt while its authority was trusted: without them the
    # source would answer 200, which the event loop's client leaves to the fetcher anyway.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
    trusting = Fetcher(SETTINGS)
    etag = trusting.get(url).etag
    trusting.close()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    fetcher, recheck = Fetcher(SETTINGS), Recheck(SETTINGS)
    asked = len(https_source.requests)
    try:
        with pytest.raises(SourceUnreachable, match=r"(?i)certificate"):
            fetcher.get(url, etag=etag)
        assert await recheck.unchanged(fetcher, url, etag, None) is None
        assert len(https_source.requests) == asked  # neither got past the handshake
    finally:
        fetcher.close()
        await recheck.close()


async def test_the_environments_ca_bundle_is_trusted_by_both(
    https_source: FakeSource, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
    fetcher, recheck = Fetcher(SETTINGS), Recheck(SETTINGS)
    url = https_source.url + "/"
    try:
        page = fetcher.get(url)
        assert page.status == 200 and page.etag
        assert fetcher.get(url, etag=page.etag).status == 304
        answer = await recheck.unchanged(fetcher, url, page.etag, None)
        assert answer is not None and answer.status == 304
        by_fetcher, by_recheck = [r.headers for r in https_source.requests][-2:]
        assert by_recheck == by_fetcher
    finally:
        fetcher.close()
        await recheck.close()
