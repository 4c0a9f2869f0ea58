"""Reading a page's text in its declared charset, where one bad byte costs one character.

Pages are served by the local fake source and fetched by the real Fetcher, so the
bytes and Content-Type are what the parser really gets; the properties run
decode() alone, on many more pages than a server round trip would allow.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.config import FeedsConfig, FetchSettings
from feeds.encoding import decode
from feeds.fetch import Fetcher
from feeds.parse import parse_page
from tests.support.fake_source import FakeSource

# Our own text, in the shapes of the source: Cyrillic titles and leads, dashes, ё.
TITLES = [
    "Заявление посольства о визовых вопросах на летний период",
    "Комментарий пресс-службы в связи с публикацией в местной прессе",
]
LEAD = (
    "Посольство напоминает: приём документов — по предварительной записи, ёмкость зала ограничена"
)


def page(meta: str | None = None, titles: list[str] = TITLES) -> str:
    head = f'<meta charset="{meta}">' if meta else ""
    items = "\n".join(
        f'<li class="news-item"><span class="news-date">0{n + 1}.07.2020</span> - '
        f'<a class="news-title" href="/fnapr/80{n}">{title}</a>'
        f'<p class="news-lead">{LEAD}</p></li>'
        for n, title in enumerate(titles)
    )
    return (
        f'<!DOCTYPE html>\n<html lang="ru"><head>{head}<title>Новости</title></head>\n'
        f'<body><main><ul class="news-list">\n{items}\n</ul></main></body></html>\n'
    )


def with_bad_byte(text: str, after: str, byte: bytes = b"\xff") -> bytes:
    """``text`` as UTF-8 with one invalid byte in place of the first byte after ``after``."""
    data = text.encode("utf-8")
    at = data.index(after.encode("utf-8")) + len(after.encode("utf-8"))
    return data[:at] + byte + data[at + 1 :]


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    f = Fetcher(FetchSettings(allow_private_addresses=True, retries=0), sleep=lambda _s: None)
    yield f
    f.close()


def served(source: FakeSource, fetcher: Fetcher, body: bytes, content_type: str) -> str:
    """The text the parser gets for ``body`` served with ``content_type``."""
    source.set_body("/page", body, content_type=content_type)
    response = fetcher.get(source.url + "/page")
    assert response.body == body
    return decode(response.body, response.content_type)


# --- one bad byte ----------------------------------------------------------------------

# The first "Посольство " with its space replaced: the letters around it stay as they were.
DAMAGED = page().replace("Посольство напоминает", "Посольство\ufffdнапоминает", 1)


@pytest.mark.parametrize(
    ("meta", "content_type"),
    [
        (None, "text/html; charset=utf-8"),  # declared in the header
        ("utf-8", "text/html"),  # declared in <meta> only
        (None, "text/html"),  # not declared at all
        ("utf-8", "text/html; charset=UTF8"),
    ],
)
def test_one_bad_byte_among_cyrillic_costs_one_character(
    source: FakeSource, fetcher: Fetcher, meta: str | None, content_type: str
) -> None:
    body = with_bad_byte(page(meta), "Посольство")
    text = served(source, fetcher, body, content_type)
    assert text == DAMAGED.replace("<head>", f'<head><meta charset="{meta}">' if meta else "<head>")
    assert text.count("\ufffd") == 1
    assert all(title in text for title in TITLES)


def test_one_bad_byte_leaves_every_title_readable(
    source: FakeSource, fetcher: Fetcher, settings: FeedsConfig
) -> None:
    body = with_bad_byte(page("utf-8"), "Посольство")
    source.set_body("/page", body, content_type="text/html; charset=utf-8")
    response = fetcher.get(source.url + "/page")
    parsed = parse_page(response.body, response.url, settings.source.profile, response.content_type)
    assert [e.title for e in parsed.entries] == TITLES
    assert parsed.entries[0].summary.startswith("Посольство\ufffdнапоминает: приём")


def test_a_bad_byte_in_a_one_word_page_declared_utf8(source: FakeSource, fetcher: Fetcher) -> None:
    # Almost all ASCII: nothing but the declaration says UTF-8, and it is believed.
    body = b"<html><body><p>Embassy \xd0 notice</p></body></html>"
    text = served(source, fetcher, body, "text/html; charset=utf-8")
    assert text == "<html><body><p>Embassy \ufffd notice</p></body></html>"


# --- declared charsets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")],
)
@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=utf-8"])
def test_utf16_with_a_bom_is_read(
    source: FakeSource, fetcher: Fetcher, bom: bytes, codec: str, content_type: str
) -> None:
    text = served(source, fetcher, bom + page().encode(codec), content_type)
    assert text == page()  # the BOM wins over any header, and is not part of the text


def test_utf16_declared_in_the_header_without_a_bom(source: FakeSource, fetcher: Fetcher) -> None:
    body = page().encode("utf-16-le")
    assert served(source, fetcher, body, "text/html; charset=utf-16le") == page()
    assert served(source, fetcher, body, "text/html; charset=UTF-16") == page()


def test_a_utf16_header_on_a_utf8_page_is_a_mistake(source: FakeSource, fetcher: Fetcher) -> None:
    assert served(source, fetcher, page().encode(), "text/html; charset=utf-16") == page()


def test_utf8_bom_wins_over_a_header(source: FakeSource, fetcher: Fetcher) -> None:
    body = codecs.BOM_UTF8 + page().encode()
    assert served(source, fetcher, body, "text/html; charset=windows-1251") == page()


def test_windows_1251_declared_in_meta(source: FakeSource, fetcher: Fetcher) -> None:
    text = page("windows-1251")
    assert served(source, fetcher, text.encode("cp1251"), "text/html") == text


def test_windows_1251_declared_in_meta_as_http_equiv(source: FakeSource, fetcher: Fetcher) -> None:
    text = page().replace(
        "<head>", '<head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    )
    assert served(source, fetcher, text.encode("cp1251"), "text/html") == text


@pytest.mark.parametrize(
    ("header", "meta", "codec"),
    [
        ("windows-1251", "utf-8", "cp1251"),  # a template's <meta>, a transcoding server
        ("koi8-r", "windows-1251", "koi8-r"),
        ("windows-1251", "koi8-r", "cp1251"),
    ],
)
def test_header_charset_wins_over_meta(
    source: FakeSource, fetcher: Fetcher, header: str, meta: str, codec: str
) -> None:
    text = page(meta).replace("—", "-")  # KOI8-R has no dash
    assert served(source, fetcher, text.encode(codec), f"text/html; charset={header}") == text


def test_a_utf8_header_on_a_windows_1251_page_is_caught(
    source: FakeSource, fetcher: Fetcher
) -> None:
    # Every Cyrillic byte is invalid UTF-8: the header is wrong, the <meta> is right.
    text = page("windows-1251")
    assert served(source, fetcher, text.encode("cp1251"), "text/html; charset=utf-8") == text


def test_valid_utf8_under_a_latin1_header_is_utf8(source: FakeSource, fetcher: Fetcher) -> None:
    assert served(source, fetcher, page().encode(), "text/html; charset=iso-8859-1") == page()


def test_latin1_label_reads_curly_quotes_as_browsers_do(
    source: FakeSource, fetcher: Fetcher
) -> None:
    body = b"<p>The \x93Embassy\x94 \x96 a note</p>"
    text = served(source, fetcher, body, "text/html; charset=ISO-8859-1")
    assert text == "<p>The \u201cEmbassy\u201d \u2013 a note</p>"


def test_an_unknown_charset_label_is_ignored(source: FakeSource, fetcher: Fetcher) -> None:
    assert served(source, fetcher, page().encode(), "text/html; charset=x-no-such") == page()


def test_undeclared_windows_1251_is_recognised(source: FakeSource, fetcher: Fetcher) -> None:
    text = page()
    assert served(source, fetcher, text.encode("cp1251"), "text/html") == text


# --- properties ------------------------------------------------------------------------


def damage(text: str, index: int, byte: int) -> tuple[bytes, str, str]:
    """``<p>text</p>`` as UTF-8, one byte replaced; with the text before and after
    the one character that byte belonged to."""
    html = f"<p>{text}</p>"
    data = bytearray(html.encode("utf-8"))
    at = index % len(data)
    if data[at] == byte:
        byte ^= 0x01
    data[at] = byte
    start = 0
    for n, char in enumerate(html):
        width = len(char.encode("utf-8"))
        if start + width > at:
            return bytes(data), html[:n], html[n + 1 :]
        start += width
    raise AssertionError("index past the end")


def assert_one_place(decoded: str, before: str, after: str) -> None:
    assert decoded.startswith(before)
    assert decoded.endswith(after)
    # The damaged character becomes at most four (a broken 4-byte sequence, each
    # orphaned byte one U+FFFD); nothing else changes.
    assert 0 <= len(decoded) - len(before) - len(after) <= 4


@given(
    st.text(st.characters(codec="utf-8"), max_size=200),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=255),
)
def test_one_bad_byte_in_declared_utf8_changes_one_place(text: str, index: int, byte: int) -> None:
    body, before, after = damage(text, index, byte)
    assert_one_place(decode(body, "text/html; charset=utf-8"), before, after)


@given(
    st.text(st.characters(min_codepoint=0x410, max_codepoint=0x44F), min_size=40, max_size=200),
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=255),
)
def test_one_bad_byte_in_undeclared_cyrillic_changes_one_place(
    cyrillic: str, extra: str, index: int, byte: int
) -> None:
    body, before, after = damage(cyrillic + extra, index, byte)
    assert_one_place(decode(body, "text/html"), before, after)


@given(st.text(st.characters(codec="utf-8"), max_size=200))
def test_valid_utf8_reads_back_whatever_the_header_says(text: str) -> None:
    html = f"<p>{text}</p>"
    for content_type in ("text/html", "text/html; charset=windows-1251", None):
        assert decode(html.encode("utf-8"), content_type) == html


@given(st.text(st.characters(codec="cp1251"), max_size=200))
def test_declared_windows_1251_reads_back(text: str) -> None:
    html = f'<meta charset="windows-1251"><p>{text}</p>'
    body = html.encode("cp1251")
    for content_type in ("text/html", "text/html; charset=windows-1251"):
        decoded = decode(body, content_type)
        # Text that is also valid UTF-8 is read as UTF-8 (see the module's notes);
        # otherwise it is exactly what was written.
        try:
            expected = body.decode("utf-8")
        except UnicodeDecodeError:
            expected = html
        assert decoded == expected
