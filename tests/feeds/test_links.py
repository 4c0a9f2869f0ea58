"""Which stored links may be shown as links (pages, Telegram buttons): the cases
people tried, and properties over any text a page could have put there."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feeds.links import safe_link

SCRIPTS = [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01 javascript:alert(1)",
    "javascript\r:alert(1)",
    "java&#x09;script:alert(1)",  # left undecoded: not a web address either
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x",  # no scheme: a page would resolve it; a button cannot
    "/fnapr/1",
    "https:evil.example",
    "http://",
    "https://:80/",
    "http://host:port/",
    "https://ex ample.org/",
    "https://example.org/a\x00b",
    "",
    None,
]


@pytest.mark.parametrize("url", SCRIPTS)
def test_anything_but_an_http_address_is_refused(url: str | None) -> None:
    assert safe_link(url) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://www.rusemb.org.uk/fnapr/6940", "https://www.rusemb.org.uk/fnapr/6940"),
        ("HTTPS://Example.org/A?b=1#c", "https://Example.org/A?b=1#c"),
        ("  http://example.org/x\n", "http://example.org/x"),
        ("http://exa\tmple.org/x", "http://example.org/x"),
        ("https://example.org:8443/%20x", "https://example.org:8443/%20x"),
        ("https://[2001:db8::1]/x", "https://[2001:db8::1]/x"),
    ],
)
def test_http_addresses_are_kept_as_a_browser_reads_them(url: str, shown: str) -> None:
    assert safe_link(url) == shown


_cases = st.sampled_from(["", "\t", "\n", "\r", " ", "\x00", "\x1f"])


@st.composite
def disguised(draw: st.DrawFn, word: str) -> str:
    """``word`` with random case and whitespace/controls around and inside it."""
    out = draw(st.lists(_cases, max_size=3).map("".join))
    for ch in word:
        out += ch.upper() if draw(st.booleans()) else ch
        out += draw(st.lists(st.sampled_from(["", "\t", "\n", "\r"]), max_size=2).map("".join))
    return out


@given(disguised("javascript:"), st.text(max_size=40))
@example("JAVASCRIPT:", "alert(1)")
def test_a_disguised_script_is_never_a_link(scheme: str, rest: str) -> None:
    assert safe_link(scheme + rest) is None


@given(st.text(max_size=200))
@example("https://example.org/")
def test_whatever_is_stored_what_is_shown_is_a_clean_http_address(url: str) -> None:
    shown = safe_link(url)
    if shown is None:
        return
    assert shown.startswith(("http://", "https://"))
    assert not any(ord(c) < 0x21 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert safe_link(shown) == shown  # showing it again changes nothing


@given(
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.from_regex(r"(/[A-Za-z0-9._~%-]{0,12}){0,4}", fullmatch=True),
)
def test_every_plain_web_address_is_kept(scheme: str, host: str, path: str) -> None:
    url = f"{scheme}://{host}{path}"
    assert safe_link(url) == f"{scheme.lower()}://{host}{path}"
