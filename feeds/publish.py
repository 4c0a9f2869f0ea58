"""Writing feed documents into the feeds folder, atomically and only when changed.

Each file is written to a temporary name in the same folder and renamed over
the old one, so a static server never serves half a feed. A file is only
rewritten when its bytes change, so its modification time is when its content
last changed: any static server's ``Last-Modified`` tells the truth.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from feeds import render
from feeds.render import ArchiveLinks, FeedContext
from feeds.store import Store

MANIFEST = ".manifest.json"


@dataclass(frozen=True)
class Document:
    name: str  # relative path under the feeds folder
    body: bytes
    updated: dt.datetime


def archive_name(page: int) -> str:
    return f"archive/statements-{page}.atom"


def _fingerprint(keys: Sequence[tuple[object, ...]], *extra: object) -> str:
    """Changes whenever anything rendered in an archive page changes."""
    return hashlib.sha256(repr((keys, extra)).encode()).hexdigest()


class FeedBuilder:
    """All feed documents for one store state. Archive pages are rendered only when
    the statements they hold changed (tracked by fingerprint in a manifest)."""

    def __init__(self, store: Store, ctx: FeedContext, per_doc: int, counter_days: int) -> None:
        self.store = store
        self.ctx = ctx
        self.per_doc = per_doc
        self.counter_days = counter_days

    def current(self, today: dt.date) -> list[Document]:
        newest = self.store.statements(limit=self.per_doc)
        total = self.store.count_statements()
        pages = total // self.per_doc
        links = ArchiveLinks(
            prev_archive=self.ctx.url(f"/feeds/{archive_name(pages)}") if pages else None,
            current=self.ctx.url("/feeds/statements.atom"),
        )
        updated = render.feed_updated(newest)
        counters = self.store.counters()
        counters_body = render.counters_atom(
            counters, self.ctx, "/feeds/counters.atom", today, self.counter_days
        )
        return [
            Document(
                "statements.atom",
                render.statements_atom(newest, self.ctx, "/feeds/statements.atom", links),
                updated,
            ),
            Document(
                "statements.rss",
                render.statements_rss(newest, self.ctx, "/feeds/statements.rss"),
                updated,
            ),
            Document(
                "statements.json",
                render.statements_json(newest, self.ctx, "/feeds/statements.json"),
                updated,
            ),
            Document("counters.atom", counters_body, render.day_start(today)),
        ]

    def archives(self, known: dict[str, str]) -> tuple[list[Document], dict[str, str]]:
        """Archive documents whose fingerprint is not in ``known``; and all fingerprints.

        Fingerprints come from a narrow projection of every statement (one query),
        so an unchanged archive page costs a hash, not a render or a full read."""
        keys = self.store.statement_versions_oldest_first()
        pages = len(keys) // self.per_doc
        docs, prints = [], {}
        for page in range(1, pages + 1):
            links = ArchiveLinks(
                prev_archive=self.ctx.url(f"/feeds/{archive_name(page - 1)}") if page > 1 else None,
                next_archive=self.ctx.url(
                    f"/feeds/{archive_name(page + 1)}" if page < pages else "/feeds/statements.atom"
                ),
                current=self.ctx.url("/feeds/statements.atom"),
                is_archive=True,
            )
            name = archive_name(page)
            start = (page - 1) * self.per_doc
            prints[name] = _fingerprint(keys[start : start + self.per_doc], links, self.ctx)
            if known.get(name) == prints[name]:
                continue
            items = self.store.statements_oldest_first(self.per_doc, start)
            newest_first = list(reversed(items))
            body = render.statements_atom(newest_first, self.ctx, f"/feeds/{name}", links)
            docs.append(Document(name, body, render.feed_updated(items)))
        return docs, prints


def write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def etag_of(body: bytes) -> str:
    """The strong validator of a document: the same bytes give the same tag everywhere."""
    return '"' + hashlib.sha256(body).hexdigest()[:24] + '"'


def publish(folder: Path, builder: FeedBuilder, today: dt.date) -> list[str]:
    """Write every changed document to the folder and the database; returns the
    names that changed in either."""
    manifest_path = folder / MANIFEST
    try:
        known = json.loads(manifest_path.read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        known = {}
    known = {k: v for k, v in known.items() if (folder / k).exists()}
    stored = builder.store.document_etags()
    # A document missing from the database is rendered again even if its file is current.
    known = {k: v for k, v in known.items() if k in stored}
    archives, prints = builder.archives(known)
    written: list[str] = []
    to_store: list[tuple[str, bytes, str]] = []
    for doc in [*builder.current(today), *archives]:
        path = folder / doc.name
        try:
            same = path.read_bytes() == doc.body
        except FileNotFoundError:
            same = False
        if not same:
            write_atomically(path, doc.body)
        etag = etag_of(doc.body)
        if stored.get(doc.name) != etag:
            to_store.append((doc.name, doc.body, etag))
        if not same or stored.get(doc.name) != etag:
            written.append(doc.name)
    if to_store:
        builder.store.save_documents(to_store, dt.datetime.now(dt.UTC))
    if prints != known:
        write_atomically(manifest_path, json.dumps(prints, sort_keys=True, indent=1).encode())
    return written
