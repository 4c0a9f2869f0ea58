"""What the W3C feed validator would say about a feed document, offline.

``check_document`` judges one document by its kind (Atom, RSS 2.0, JSON Feed
1.1); ``check_folder`` judges every document publish() wrote. Each raises
AssertionError naming the document and the rule it breaks, and returns the
document as feedparser (or ``json``) reads it, for the test's own assertions.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from pathlib import Path
from typing import Any

import feedparser
from lxml import etree

ATOM = "http://www.w3.org/2005/Atom"
FH = "http://purl.org/syndication/history/1.0"
NS = {"a": ATOM, "fh": FH}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# RFC 822 as RSS 2.0 wants it, with a four-digit year and a numeric or GMT zone.
_RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} ([+-]\d{4}|GMT)$"
)


def strict_xml(body: bytes, name: str) -> etree._Element:
    """Parsed by a parser that repairs nothing and loads nothing from outside."""
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    try:
        return etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"{name}: not well-formed XML: {exc}") from exc


def rfc3339(value: str | None, where: str) -> dt.datetime:
    assert value is not None and _RFC3339.match(value), f"{where}: not an RFC 3339 date: {value!r}"
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{where}: no time zone in {value!r}"
    return parsed


def rfc822(value: str | None, where: str) -> dt.datetime:
    assert value is not None and _RFC822.match(value), f"{where}: not an RFC 822 date: {value!r}"
    return email.utils.parsedate_to_datetime(value)


def _unique(ids: list[str], name: str) -> None:
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert not twice, f"{name}: ids used more than once: {twice[:3]}"


def _one(parent: etree._Element, path: str, where: str) -> etree._Element:
    found = parent.findall(path, NS)
    assert len(found) == 1, f"{where}: {len(found)} {path} elements, want exactly one"
    return found[0]


def _atom(root: etree._Element, name: str, archive: bool | None) -> None:
    assert root.tag == f"{{{ATOM}}}feed", f"{name}: root is {root.tag}, not atom:feed"
    for path in ("a:id", "a:title", "a:updated"):
        _one(root, path, name)
    rfc3339(_one(root, "a:updated", name).text, f"{name} feed updated")
    entries = root.findall("a:entry", NS)
    if not root.findall("a:author", NS):
        assert all(e.findall("a:author", NS) for e in entries), f"{name}: no atom:author"
    ids = []
    for n, entry in enumerate(entries):
        where = f"{name} entry {n}"
        for path in ("a:id", "a:title", "a:updated"):
            _one(entry, path, where)
        ids.append(_one(entry, "a:id", where).text or "")
        rfc3339(_one(entry, "a:updated", where).text, f"{where} updated")
        for published in entry.findall("a:published", NS):
            rfc3339(published.text, f"{where} published")
    _unique(ids, name)
    rels = [link.get("rel", "alternate") for link in root.findall("a:link", NS)]
    assert "self" in rels, f"{name}: no rel=self link"
    marked = root.find("fh:archive", NS) is not None
    if archive is not None:
        assert marked == archive, f"{name}: fh:archive {'missing' if archive else 'present'}"
    if marked:
        assert "current" in rels, f"{name}: an archive without rel=current"
    else:
        assert "next-archive" not in rels and "current" not in rels, (
            f"{name}: a subscription document links {rels}"
        )


def _rss(root: etree._Element, name: str) -> None:
    assert root.tag == "rss" and root.get("version") == "2.0", f"{name}: not RSS 2.0"
    channel = _one(root, "channel", name)
    for path in ("title", "link", "description"):
        _one(channel, path, name)
    for date in channel.findall("lastBuildDate"):
        rfc822(date.text, f"{name} lastBuildDate")
    ids = []
    for n, item in enumerate(channel.findall("item")):
        where = f"{name} item {n}"
        assert item.find("title") is not None or item.find("description") is not None, where
        ids.append(_one(item, "guid", where).text or "")
        for date in item.findall("pubDate"):
            rfc822(date.text, f"{where} pubDate")
        for date in item.findall("a:updated", NS):
            rfc3339(date.text, f"{where} atom:updated")
    _unique(ids, name)


def _feedparser(body: bytes, name: str) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, f"{name}: feedparser bozo: {parsed.get('bozo_exception')!r}"
    return parsed


def check_json(body: bytes, name: str = "document") -> dict[str, Any]:
    """JSON Feed 1.1: strict UTF-8 JSON, the required members, RFC 3339 dates, unique ids."""
    doc = json.loads(body.decode("utf-8", errors="strict"))
    assert isinstance(doc, dict), f"{name}: not a JSON object"
    assert doc.get("version") == "https://jsonfeed.org/version/1.1", f"{name}: version"
    assert isinstance(doc.get("title"), str), f"{name}: no title"
    assert isinstance(doc.get("items"), list), f"{name}: no items"
    ids = []
    for n, item in enumerate(doc["items"]):
        where = f"{name} item {n}"
        assert isinstance(item.get("id"), str) and item["id"], f"{where}: no id"
        assert "content_html" in item or "content_text" in item, f"{where}: no content"
        ids.append(item["id"])
        for key in ("date_published", "date_modified"):
            if key in item:
                rfc3339(item[key], f"{where} {key}")
    _unique(ids, name)
    return doc


def check_document(
    body: bytes, name: str = "document", archive: bool | None = None
) -> feedparser.FeedParserDict:
    """One Atom or RSS document; ``archive`` says whether it must (True) or must
    not (False) be an RFC 5005 archive document."""
    root = strict_xml(body, name)
    if root.tag == "rss":
        _rss(root, name)
    else:
        _atom(root, name, archive)
    return _feedparser(body, name)


def check_folder(folder: Path) -> dict[str, Any]:
    """Every document under ``folder``: archives under ``archive/`` are marked as
    such, the subscription documents are not. Returns name -> parsed document."""
    parsed: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        name = path.relative_to(folder).as_posix()
        body = path.read_bytes()
        if path.suffix == ".json":
            parsed[name] = check_json(body, name)
        else:
            parsed[name] = check_document(body, name, archive="/archive/" in f"/{name}")
    return parsed
