"""The fake statement source itself: mapping, validators and a few misbehaviours."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.fake_source import DEFAULT_ROOT, FakeSource


@pytest.fixture
def src() -> Iterator[FakeSource]:
    with FakeSource() as source:
        yield source


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _file(rel: str) -> bytes:
    return (DEFAULT_ROOT / rel).read_bytes()


@pytest.mark.parametrize(
    ("path", "rel"),
    [
        ("/", "index.html"),
        ("/fnapr/", "fnapr/index.html"),
        ("/fnapr/6940", "fnapr/6940.html"),
        ("/fnapr/?page=2", "fnapr/index@page=2.html"),
    ],
)
def test_maps_urls_to_fixture_files(
    src: FakeSource, http: requests.Session, path: str, rel: str
) -> None:
    with http.get(src.url + path, timeout=5) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert r.content == _file(rel)
    assert src.count(path) == 1
    assert src.requests[-1].path == path


@pytest.mark.parametrize("path", ["/fnapr/9999", "/fnapr/?page=99", "/nope/", "/%2e%2e/README.md"])
def test_unknown_paths_are_404(src: FakeSource, http: requests.Session, path: str) -> None:
    with http.get(src.url + path, timeout=5) as r:
        assert r.status_code == 404


def test_conditional_get(src: FakeSource, http: requests.Session) -> None:
    with http.get(src.url + "/", timeout=5) as r:
        etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert etag.startswith('"') and modified == "Mon, 06 Jul 2020 00:00:00 GMT"
    for headers in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
        with http.get(src.url + "/", headers=headers, timeout=5) as r:
            assert r.status_code == 304
            assert r.content == b""
    with http.get(src.url + "/", headers={"If-None-Match": '"other"'}, timeout=5) as r:
        assert r.status_code == 200

    src.set_body("/", "<html><body>new</body></html>")
    with http.get(src.url + "/", headers={"If-None-Match": etag}, timeout=5) as r:
        assert r.status_code == 200
        assert r.text == "<html><body>new</body></html>"
        assert r.headers["ETag"] != etag

    src.conditional = False
    with http.get(src.url + "/", headers={"If-None-Match": etag}, timeout=5) as r:
        assert r.status_code == 200
        assert "ETag" not in r.headers and "Last-Modified" not in r.headers


def test_status_once_then_normal(src: FakeSource, http: requests.Session) -> None:
    src.misbehave("/", "status", status=503, retry_after="2", times=1)
    with http.get(src.url + "/", timeout=5) as r:
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "2"
    with http.get(src.url + "/", timeout=5) as r:
        assert r.status_code == 200
    assert src.count("/") == 2


def test_gzip_bomb_is_small_on_the_wire(src: FakeSource, http: requests.Session) -> None:
    src.misbehave("/", "gzip_bomb")
    with http.get(src.url + "/", stream=True, timeout=10) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        raw = r.raw.read(decode_content=False)
    assert len(raw) < 100_000
    assert len(gzip.decompress(raw)) == 50_000_000


def test_close_and_redirect_loop(src: FakeSource, http: requests.Session) -> None:
    src.misbehave("/", "close", times=1)
    with pytest.raises(requests.ConnectionError):
        http.get(src.url + "/", timeout=5)
    src.misbehave("/fnapr/", "redirect_loop", via="/fnapr/6940")
    with pytest.raises(requests.TooManyRedirects):
        http.get(src.url + "/fnapr/", timeout=5)
    src.clear()
    with http.get(src.url + "/fnapr/", timeout=5) as r:
        assert r.status_code == 200


def test_drip_beats_read_timeout_and_close_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html></html>")
    src = FakeSource(root=tmp_path)
    src.misbehave("/", "drip", interval=0.05)
    with requests.Session() as http:
        r = http.get(src.url + "/", stream=True, timeout=1)
        with r:
            assert int(r.headers["Content-Length"]) == 100_000
            got = 0
            start = time.monotonic()
            for chunk in r.iter_content(64):  # each chunk well within the 1 s read timeout
                got += len(chunk)
                if time.monotonic() - start > 0.3:
                    break
            assert 0 < got < 100_000
            start = time.monotonic()
            src.close()  # mid-body: must return promptly, not after the drip ends
            assert time.monotonic() - start < 2
