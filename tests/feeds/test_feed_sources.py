"""Sources that are not the embassy's page: a feed read as it is (Atom, RSS, JSON
Feed), and a public Telegram channel's web preview read by its page profile.

The feeds are read by the real ``parse_feed`` on real bytes (fixtures written in
the shapes the sources publish, invented entries); the Telegram page by the real
``parse_page`` with ``config/sources/telegram-channel.toml``; conditional GET by
the real Fetcher against the local fake source.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds.clock import LONDON
from feeds.config import FetchSettings
from feeds.entries import make_entry, merge_duplicates
from feeds.errors import ConfigError, ParseError
from feeds.feedpage import parse_feed
from feeds.fetch import Fetcher
from feeds.model import Entry, Page, page_json
from feeds.parse import parse_page
from feeds.profile import SourceProfile, load_profile
from feeds.render import xml_text
from feeds.text import clean, shorten
from tests.conftest import FIXTURES, ROOT
from tests.support.fake_source import FakeSource

FEEDS = FIXTURES / "feeds"
TELEGRAM = FIXTURES / "telegram"
GOVUK_URL = (
    "https://www.gov.uk/search/news-and-communications.atom"
    "?organisations%5B%5D=foreign-commonwealth-development-office"
)
OFFICE_RSS = "https://office.example/statements.rss"
OFFICE_JSON = "https://office.example/statements.json"
CHANNEL_URL = "https://t.me/s/examplechannel"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


def _profile(path: Path) -> SourceProfile:
    with path.open("rb") as f:
        return load_profile(tomllib.load(f), where=path.name)


TELEGRAM_PROFILE = _profile(ROOT / "config" / "sources" / "telegram-channel.toml")


def _read(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def _seen(page: Page) -> list[tuple[str, str, str | None, str, str | None, str | None]]:
    """What a reader of the feed notices of each entry, in order."""
    return [
        (
            e.id,
            e.title,
            e.published.isoformat() if e.published else None,
            e.summary,
            e.url,
            e.content,
        )
        for e in page.entries
    ]


# --- the three feed formats -------------------------------------------------------------


def test_govuk_atom_feed_reads_as_its_entries() -> None:
    page = parse_feed(_read("govuk-fcdo.atom"), GOVUK_URL, ATOM_TYPE)

    assert (page.kind, page.reader, page.as_of, page.counters) == ("list", "feed", None, [])
    news = "https://www.gov.uk/government/news/"
    assert _seen(page) == [
        (
            news + "example-minister-visits-the-lighthouse-service",
            "Example Minister visits the lighthouse service & meets its keepers",
            "2020-07-06",
            "The minister’s visit marked the service’s anniversary & its new coastal stations.",
            news + "example-minister-visits-the-lighthouse-service",
            None,
        ),
        (
            "https://www.gov.uk/government/speeches/statement-to-an-invented-assembly",
            "Statement to an invented assembly: “fair shares”",
            # 23:30 UTC on 5 July is 00:30 on 6 July in London (BST).
            "2020-07-06",
            "A speech delivered late in the evening, London time just past midnight.",
            "https://www.gov.uk/government/speeches/statement-to-an-invented-assembly",
            None,
        ),
        (
            # A relative link resolves against the feed's own address.
            news + "winter-travel-notice",
            "Winter travel notice",
            "2020-01-05",  # GMT: 23:30 UTC is still the same London day
            "Travel notice for an invented region. Second paragraph of the lead.",
            news + "winter-travel-notice",
            None,
        ),
    ]


def test_rss_feed_reads_as_its_entries() -> None:
    page = parse_feed(_read("statements.rss"), OFFICE_RSS, "application/rss+xml")

    untitled = "An item with no title of its own: the first line of its text stands in."
    assert _seen(page) == [
        (
            "https://office.example/statements/301",
            "Fish & chips: a statement on the fisheries talks",  # double-escaped, as RSS often is
            "2020-07-06",
            "The office comments on the fisheries talks.",
            "https://office.example/statements/301",
            # content:encoded is the full text, as paragraphs; its script is no text.
            "The office comments on the fisheries talks.\n\nThe talks resume next week.",
        ),
        (
            "https://office.example/statements/300",
            "Note on a relative link",
            "2020-07-06",  # 23:45 GMT on 5 July, in BST
            "Plain text lead < with a less-than sign.",
            "https://office.example/statements/300",
            None,
        ),
        (
            make_entry(untitled, dt.date(2020, 7, 3), untitled, None).id,  # no link: a tag: id
            untitled,
            "2020-07-03",
            untitled,
            None,
            None,
        ),
    ]
    assert page.entries[2].id.startswith("tag:")


def test_json_feed_reads_as_its_entries() -> None:
    page = parse_feed(_read("statements.json"), OFFICE_JSON, "application/feed+json")

    unlinked = make_entry("Statement without a link", dt.date(2020, 7, 3), "", None)
    assert _seen(page) == [
        (
            "https://office.example/statements/401",
            "Statement on <harbour> dues & fees",  # JSON Feed titles are plain text
            "2020-07-06",
            "Harbour dues are to change.",
            "https://office.example/statements/401",
            "First paragraph about the harbour dues.\n\nSecond paragraph.",
        ),
        (
            "https://office.example/statements/400",
            "Late statement with a bell",  # the control character is dropped
            "2020-07-06",  # published, not modified
            "Only plain text. In two paragraphs.",
            "https://office.example/statements/400",
            "Only plain text.\n\nIn two paragraphs.",
        ),
        (
            unlinked.id,
            "Statement without a link",
            "2020-07-03",
            "No url: the id is a tag over the date and title.",
            None,
            None,
        ),
    ]


def test_json_feed_is_known_by_its_body_when_served_as_text() -> None:
    by_type = parse_feed(_read("statements.json"), OFFICE_JSON, "application/feed+json")
    by_body = parse_feed(_read("statements.json"), OFFICE_JSON, "text/plain")
    assert by_body.entries == by_type.entries


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None, "application/xml"])
def test_an_html_page_is_refused_as_a_feed_with_one_clear_line(content_type: str | None) -> None:
    home = (FIXTURES / "site" / "index.html").read_bytes()

    with pytest.raises(ParseError) as caught:
        parse_feed(home, "https://office.example/news", content_type)

    message = str(caught.value)
    assert message == (
        "https://office.example/news answers an HTML page, not a feed: is the URL a feed's?"
    )


def test_a_feed_served_as_html_is_still_read_as_a_feed() -> None:
    page = parse_feed(_read("statements.rss"), OFFICE_RSS, "text/html")
    assert len(page.entries) == 3


MALFORMED = {
    "truncated atom": _read("govuk-fcdo.atom")[:300],
    "binary": b"\x00\x01\x02\xff\xfe not a document",
    "broken json": b'{"version": "https://jsonfeed.org/version/1.1", "items": [',
    "json that is no feed": b'{"data": [{"title": "x"}]}',
    "json feed without items": b'{"version": "https://jsonfeed.org/version/1.1"}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_feed_is_a_parse_error_naming_the_source(body: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(body, OFFICE_RSS)
    message = str(caught.value)
    assert message.startswith(OFFICE_RSS) and "\n" not in message


EMPTY = {
    "atom": b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
    b"<title>t</title><id>tag:office.example,2020:f</id></feed>",
    "rss": b'<rss version="2.0"><channel><title>t</title><link>https://office.example/</link>'
    b"</channel></rss>",
    "json": b'{"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": []}',
}


@pytest.mark.parametrize("body", EMPTY.values(), ids=EMPTY.keys())
def test_a_feed_with_no_entries_is_a_parse_error(body: bytes) -> None:
    # As with a page: no statement read is a loud error, never an empty feed.
    with pytest.raises(ParseError, match="holds no entries"):
        parse_feed(body, OFFICE_RSS)


# --- conditional GET --------------------------------------------------------------------

FETCH = FetchSettings(
    connect_timeout=1.0, read_timeout=1.0, deadline=3.0, retries=0, article_delay=0
)


def test_a_feed_is_fetched_conditionally_by_the_existing_fetcher() -> None:
    atom = _read("govuk-fcdo.atom")
    fetcher = Fetcher(FETCH, sleep=lambda _s: None)
    with FakeSource() as src:
        # Served as XML: the Fetcher refuses application/atom+xml today (see the report).
        src.set_body("/fcdo.atom", atom, content_type="application/xml; charset=utf-8")
        url = src.url + "/fcdo.atom"
        try:
            first = fetcher.get(url)
            again = fetcher.get(url, etag=first.etag, last_modified=first.last_modified)
            src.set_body(
                "/fcdo.atom", atom.replace(b"Winter travel", b"Spring travel"), "application/xml"
            )
            changed = fetcher.get(url, etag=first.etag, last_modified=first.last_modified)
        finally:
            fetcher.close()
        sent = [r.headers.get("If-None-Match") for r in src.requests]

    assert first.status == 200 and first.etag
    assert len(parse_feed(first.body, first.url, first.content_type).entries) == 3
    assert again.not_modified and again.body == b""  # nothing to read: the poll stops here
    assert sent == [None, first.etag, first.etag]
    assert changed.status == 200 and changed.etag != first.etag
    titles = [e.title for e in parse_feed(changed.body, changed.url, changed.content_type).entries]
    assert titles[-1] == "Spring travel notice"


# --- the Telegram channel's web preview ---------------------------------------------------


def test_telegram_channel_page_reads_as_its_golden_entries_newest_first() -> None:
    page = parse_page((TELEGRAM / "channel.html").read_bytes(), CHANNEL_URL, TELEGRAM_PROFILE)

    doc = page_json(page)
    for entry_doc, entry in zip(doc["entries"], page.entries, strict=True):
        entry_doc["content"] = entry.content
    doc["next_url"] = page.next_url
    assert doc == json.loads((TELEGRAM / "channel.json").read_text("utf-8"))


def test_telegram_posts_are_titled_by_their_first_line_and_dated_in_london() -> None:
    page = parse_page((TELEGRAM / "channel.html").read_bytes(), CHANNEL_URL, TELEGRAM_PROFILE)

    # The service message, the photo without text, the reply's quote and the link
    # preview are not posts; the newest post (bottom of the page) comes first.
    assert [e.url for e in page.entries] == [
        "https://t.me/examplechannel/105",
        "https://t.me/examplechannel/104",
        "https://t.me/examplechannel/102",
    ]
    late = page.entries[0]
    assert late.published == dt.date(2024, 5, 2)  # 23:30 UTC on 1 May is 00:30 BST on 2 May
    assert late.title == "Joint statement on the «river treaty» talks"
    # A long first line is cut to its first sentence; the lead does not repeat it.
    correction = page.entries[1]
    assert correction.title.endswith("not on 3 July.")
    assert not correction.summary.startswith("❗Correction")
    assert page.next_url == "https://t.me/s/examplechannel?before=101"  # older posts


@dataclass(frozen=True)
class Post:
    number: int
    first_line: str
    more: str
    at: dt.datetime


WORD = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8)
# Text a post may hold: letters, markup characters, non-breaking spaces; no line breaks.
POST_TEXT = st.text(st.sampled_from(list("abc XYZ<>&\"'\u00a0«»–é❗")), min_size=0, max_size=60)
INSTANTS = st.datetimes(
    min_value=dt.datetime(2016, 1, 1),
    max_value=dt.datetime(2030, 12, 31),
    timezones=st.just(dt.UTC),
).map(lambda d: d.replace(microsecond=0))


def _bubble(post: Post) -> str:
    text = html.escape(post.first_line)
    if post.more:
        text += "<br/><br/>" + html.escape(post.more)
    return f"""
<div class="tgme_widget_message_wrap js-widget_message_wrap">
 <div class="tgme_widget_message js-widget_message" data-post="examplechannel/{post.number}">
  <div class="tgme_widget_message_bubble">
   <div class="tgme_widget_message_text js-message_text" dir="auto">{text}</div>
   <div class="tgme_widget_message_footer compact js-message_footer">
    <span class="tgme_widget_message_meta"><a class="tgme_widget_message_date"
     href="https://t.me/examplechannel/{post.number}"><time
     datetime="{post.at.isoformat()}" class="time">{post.at:%H:%M}</time></a></span>
   </div>
  </div>
 </div>
</div>"""


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(WORD, POST_TEXT, POST_TEXT, INSTANTS), min_size=1, max_size=6))
def test_any_channel_page_reads_newest_first_with_first_line_titles(
    raw: list[tuple[str, str, str, dt.datetime]],
) -> None:
    posts = [
        Post(100 + n, word + " " + first, more, at) for n, (word, first, more, at) in enumerate(raw)
    ]
    page_html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        '<section class="tgme_channel_history">'
        + "".join(_bubble(p) for p in posts)  # oldest first, as t.me shows them
        + "</section></body></html>"
    )

    page = parse_page(page_html.encode(), CHANNEL_URL, TELEGRAM_PROFILE)

    newest_first = posts[::-1]
    assert [(e.url, e.title, e.published) for e in page.entries] == [
        (
            f"https://t.me/examplechannel/{p.number}",
            clean(p.first_line),
            p.at.astimezone(LONDON).date(),
        )
        for p in newest_first
    ]
    assert [e.summary for e in page.entries] == [
        clean(p.more) or clean(p.first_line) for p in newest_first
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("date_attribute", "date time"),
        ("date_attribute", 3),
        ("title_first_line", "yes"),
        ("newest_last", 1),
    ],
)
def test_a_bad_list_key_stops_start_up_naming_it(key: str, value: Any) -> None:
    with (ROOT / "config" / "sources" / "telegram-channel.toml").open("rb") as f:
        data = tomllib.load(f)
    data["list"][key] = value
    with pytest.raises(ConfigError, match=rf"^telegram\.list\.{key}: "):
        load_profile(data, where="telegram")


# --- one statement, three formats ---------------------------------------------------------

BASE = "https://feeds.example/news/feed"
# Control characters: XML 1.0 cannot carry them (producers drop them), JSON can; a
# reader drops them either way.
CONTROLS = [chr(c) for c in [*range(0x01, 0x09), *range(0x0E, 0x1C), *range(0x7F, 0x85)]]
# Everything UTF-8 can carry (no lone surrogates) but the control characters that
# are also whitespace: a producer drops those from XML, while in JSON they are spaces.
VISIBLE = st.characters(
    codec="utf-8",
    exclude_characters="\x0b\x0c\x1c\x1d\x1e\x1f\x85",
)
# (what a reader sees, how HTML writes it)
ENTITIES = st.sampled_from(
    [
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("©", "&copy;"),
        ("—", "&mdash;"),
        ("\u00a0", "&nbsp;"),
        ("’", "&#8217;"),
        ("é", "&#xE9;"),
        ("&amp;", "&amp;amp;"),  # a title that shows an entity as text
    ]
)


@st.composite
def html_titles(draw: st.DrawFn) -> tuple[str, str]:
    """A title as a reader sees it (controls included) and as HTML writes it."""
    word = draw(WORD)
    shown, source = [word], [word]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "control", "entity", "b", "em"]))
        if kind == "entity":
            seen, written = draw(ENTITIES)
        elif kind == "control":
            seen = written = draw(st.sampled_from(CONTROLS))
        else:
            seen = draw(st.text(VISIBLE, max_size=12))
            written = html.escape(seen, quote=False)
            if kind != "text":
                written = f"<{kind}>{written}</{kind}>"
        shown.append(seen)
        source.append(written)
    return "".join(shown), "".join(source)


@dataclass(frozen=True)
class Item:
    title: str  # as shown
    title_html: str  # as HTML writes it
    at: dt.datetime | None
    link: str | None
    summary: str  # plain text


ITEMS = st.lists(
    st.builds(
        Item,
        title=st.just(""),
        title_html=st.just(""),
        at=st.none()
        | st.datetimes(
            min_value=dt.datetime(1995, 1, 1),
            max_value=dt.datetime(2095, 12, 31),
            timezones=st.sampled_from(
                [
                    dt.UTC,
                    dt.timezone(dt.timedelta(hours=1)),
                    dt.timezone(dt.timedelta(hours=-5)),
                    dt.timezone(dt.timedelta(hours=5, minutes=30)),
                ]
            ),
        ).map(lambda d: d.replace(microsecond=0)),
        link=st.none()
        | st.from_regex(
            r"(https://other\.example)?/[a-z0-9]{1,8}(/[a-z0-9-]{1,8})?(\?a=1&b=[0-9])?",
            fullmatch=True,
        ),
        summary=st.text(VISIBLE, max_size=80),
    ),
    min_size=1,
    max_size=5,
)


def _atom(items: list[Item]) -> bytes:
    ns = "http://www.w3.org/2005/Atom"
    feed = etree.Element(f"{{{ns}}}feed", nsmap={None: ns})
    etree.SubElement(feed, f"{{{ns}}}title").text = "t"
    etree.SubElement(feed, f"{{{ns}}}id").text = "tag:feeds.example,2020:feed"
    for n, item in enumerate(items):
        entry = etree.SubElement(feed, f"{{{ns}}}entry")
        etree.SubElement(entry, f"{{{ns}}}id").text = f"tag:feeds.example,2020:{n}"
        title = etree.SubElement(entry, f"{{{ns}}}title", type="html")
        title.text = xml_text(item.title_html)
        if item.at:
            etree.SubElement(entry, f"{{{ns}}}updated").text = item.at.isoformat()
        if item.link:
            etree.SubElement(entry, f"{{{ns}}}link", rel="alternate", href=item.link)
        if item.summary:
            summary = etree.SubElement(entry, f"{{{ns}}}summary", type="html")
            summary.text = "<p>" + html.escape(xml_text(item.summary), quote=False) + "</p>"
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="utf-8"))


def _rss(items: list[Item]) -> bytes:
    rss = etree.Element("rss", version="2.0")
    channel = etree.SubElement(rss, "channel")
    etree.SubElement(channel, "title").text = "t"
    etree.SubElement(channel, "link").text = "https://feeds.example/"
    for n, item in enumerate(items):
        node = etree.SubElement(channel, "item")
        etree.SubElement(node, "title").text = xml_text(item.title_html)
        etree.SubElement(node, "guid", isPermaLink="false").text = f"item-{n}"
        if item.at:
            etree.SubElement(node, "pubDate").text = email.utils.format_datetime(item.at)
        if item.link:
            etree.SubElement(node, "link").text = item.link
        if item.summary:
            description = etree.SubElement(node, "description")
            description.text = "<p>" + html.escape(xml_text(item.summary), quote=False) + "</p>"
    return bytes(etree.tostring(rss, xml_declaration=True, encoding="utf-8"))


def _json_feed(items: list[Item]) -> bytes:
    doc: dict[str, Any] = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": []}
    for n, item in enumerate(items):
        out: dict[str, Any] = {"id": f"item-{n}", "title": item.title}  # plain text, as shown
        if item.at:
            out["date_published"] = item.at.isoformat()
        if item.link:
            out["url"] = item.link
        if item.summary:
            out["summary"] = item.summary
        doc["items"].append(out)
    return json.dumps(doc).encode()


def _mojibake_shaped(text: str) -> bool:
    """Text that is UTF-8 read as Latin-1 ("Ã©" for "é"): feedparser repairs it on
    purpose, as real feeds carry it by mistake, so no producer means it."""
    try:
        return text.encode("iso-8859-1").decode("utf-8") != text
    except UnicodeError:
        return False


def _expected(items: list[Item]) -> list[Entry]:
    return merge_duplicates(
        [
            make_entry(
                clean(item.title),
                item.at.astimezone(LONDON).date() if item.at else None,
                shorten(item.summary, 500) if clean(item.summary) else "",
                urljoin(BASE, item.link) if item.link else None,
            )
            for item in items
        ]
    )


@settings(max_examples=60, deadline=None)
@given(ITEMS, st.data())
def test_any_entries_read_the_same_from_atom_rss_and_json_feed(
    items: list[Item], data: st.DataObject
) -> None:
    items = [Item(*data.draw(html_titles()), item.at, item.link, item.summary) for item in items]
    assume(not any(_mojibake_shaped(xml_text(t)) for i in items for t in (i.title_html, i.summary)))

    read = {
        "atom": parse_feed(_atom(items), BASE, "application/atom+xml").entries,
        "rss": parse_feed(_rss(items), BASE, "application/rss+xml").entries,
        "json": parse_feed(_json_feed(items), BASE, "application/feed+json").entries,
    }

    expected = _expected(items)
    assert read == {"atom": expected, "rss": expected, "json": expected}


def test_a_feed_served_as_atom_is_fetched_and_read(source: FakeSource) -> None:
    body = (FEEDS / "govuk-fcdo.atom").read_bytes()
    source.set_body("/news.atom", body, content_type="application/atom+xml; charset=utf-8")
    fetcher = Fetcher(FetchSettings(allow_private_addresses=True, retries=0))
    try:
        response = fetcher.get(source.url + "/news.atom")
    finally:
        fetcher.close()
    page = parse_feed(response.body, response.url, response.content_type)
    assert page.reader == "feed" and len(page.entries) >= 2
