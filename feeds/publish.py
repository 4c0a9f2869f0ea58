"""Writing feed documents into the feeds folder, atomically and only when changed.

Each file is written to a temporary name in the same folder and renamed over
the old one, so a static server never serves half a feed. A file is only
rewritten when its bytes change, so its modification time is when its content
last changed: any static server's ``Last-Modified`` tells the truth.

The Atom history follows RFC 5005 (archived feeds). Statements go into archive
documents in the order feedbot stored them (``seq``), ``per_doc`` to a
document, so a backfill of older statements only ever adds archive documents
and a full one never changes its entries. The subscription document
(``statements.atom``) holds the statements no archive holds: an archive is cut
only once ``per_doc`` statements would remain after it, so the subscription
document holds between ``per_doc`` and ``2 * per_doc - 1`` statements (fewer
only while the store has fewer) and is never empty once anything is stored; a
reader that ignores archives misses nothing as long as it polls before
``per_doc`` new statements arrive. ``statements.rss`` and ``statements.json``
have no archives: they hold the ``per_doc`` newest statements by publication.

Several sources: each source's documents live under ``<id>/`` (a builder with
``prefix="<id>/"`` over the source's store view) with archives of their own
under ``<id>/archive/``, and the combined documents of all sources at the top
level (a builder over ``store.view(None)`` whose entries name their source when
there is more than one). Each set keeps its own manifest, and one process
publishes one set at a time, so pipelines of several sources can share the
combined set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from feeds import render
from feeds.model import Statement, StoredCounter
from feeds.render import ArchiveLinks, FeedContext, Labels, Ranks, counter_source
from feeds.store import StatementKey, Store

MANIFEST = ".manifest.json"
# Part of every archive fingerprint: bump it when what render writes changes, so
# archive documents written by an older feedbot are written again once.
RENDER_VERSION = 2
# The most entries the combined counters document of several sources holds (whole
# days, at least today's): one entry a day per counter adds up over many sources.
COMBINED_COUNTER_ENTRIES = 500
_ARCHIVE_NAME = re.compile(r"^archive/statements-(\d+)\.atom$")


class _SetTurns:
    """One set of documents (a folder's top level, or one source's folder) is
    published by one thread at a time: pipelines of several sources all rewrite the
    combined set. Asks that arrive while a publish runs share the next one: it reads
    the store after every one of them was committed, so it covers them all (a first
    start of 200 sources would otherwise render the combined set 200 times)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.guard = threading.Lock()
        self.asked = 0  # asks so far
        self.covered = 0  # asks the last finished publish covered

    def ask(self) -> int:
        with self.guard:
            self.asked += 1
            return self.asked

    def begin(self) -> int:
        """(holding ``lock``) The asks the publish starting now covers."""
        with self.guard:
            return self.asked


_SETS: dict[tuple[str, str], _SetTurns] = {}
_SETS_GUARD = threading.Lock()


def _set_turns(folder: Path, prefix: str) -> _SetTurns:
    with _SETS_GUARD:
        return _SETS.setdefault((str(folder.resolve()), prefix), _SetTurns())


@dataclass(frozen=True)
class Document:
    name: str  # relative path under the feeds folder
    body: bytes
    updated: dt.datetime


def archive_name(page: int) -> str:
    return f"archive/statements-{page}.atom"


def archive_count(total: int, per_doc: int) -> int:
    """Full archive documents for ``total`` statements: as many as leave at least
    ``per_doc`` statements to the subscription document."""
    return max(0, total // per_doc - 1)


def day_ranks(keys: Sequence[StatementKey]) -> dict[int, int]:
    """seq -> position among the statements of its date in store order (see
    ``render.Ranks``). ``keys`` are in store order. Undated statements take no
    place: they are stamped with when they were first seen."""
    seen: dict[dt.date, int] = {}
    ranks: dict[int, int] = {}
    for key in keys:
        if key.published is not None:
            ranks[key.seq] = seen.get(key.published, 0)
            seen[key.published] = ranks[key.seq] + 1
    return ranks


def _fingerprint(keys: Sequence[StatementKey], ranks: Ranks, *extra: object) -> str:
    """Changes whenever anything rendered in an archive document changes."""
    placed = [(k.seq, k.published, ranks.get(k.seq), k.version) for k in keys]
    return hashlib.sha256(repr((RENDER_VERSION, placed, extra)).encode()).hexdigest()


class FeedBuilder:
    """All feed documents for one store state. Archive documents are rendered only
    when what they hold changed (tracked by fingerprint in a manifest).

    ``prefix``: where the set lives under the feeds folder ("" the top level,
    ``"<id>/"`` a source's own). ``labels``: each entry names its source (the
    combined documents of several sources). ``counters``: whether the set has a
    counters document; ``counter_sources``: every source's key -> whether its
    counters are shown (None: all counters)."""

    def __init__(
        self,
        store: Store,
        ctx: FeedContext,
        per_doc: int,
        counter_days: int,
        prefix: str = "",
        labels: Labels | None = None,
        counters: bool = True,
        counter_sources: Mapping[str, bool] | None = None,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.per_doc = per_doc
        self.counter_days = counter_days
        self.prefix = prefix
        self.labels = labels
        self.counters = counters
        self.counter_sources = counter_sources
        # The combined counters document, kept while its counters and day are
        # unchanged: every source's publish would render it again.
        self._counters_doc: tuple[dt.date, list[StoredCounter], bytes] | None = None

    def feed_url(self, name: str) -> str:
        """The public address of ``name`` (relative to this set's folder)."""
        return self.ctx.url(f"/feeds/{self.prefix}{name}")

    def path(self, name: str) -> str:
        return f"/feeds/{self.prefix}{name}"

    def _counters(self) -> list[StoredCounter]:
        found = self.store.counters()
        if self.counter_sources is None:
            return found
        shown = self.counter_sources
        return [c for c in found if shown.get(counter_source(c.key, shown), False)]

    def documents(
        self, known: dict[str, str], today: dt.date
    ) -> tuple[list[Document], dict[str, str]]:
        """The current documents, the archive documents whose fingerprint is not in
        ``known``, and every archive document's fingerprint."""
        keys = self.store.statement_keys_in_store_order()
        ranks = day_ranks(keys)
        archives, prints = self.archives(known, keys, ranks)
        return [*self.current(today, keys, ranks), *archives], prints

    def current(
        self,
        today: dt.date,
        keys: Sequence[StatementKey] | None = None,
        ranks: Ranks | None = None,
    ) -> list[Document]:
        if keys is None:
            keys = self.store.statement_keys_in_store_order()
        if ranks is None:
            ranks = day_ranks(keys)
        archived = archive_count(len(keys), self.per_doc)
        tail = self.store.statements_in_store_order(archived * self.per_doc)
        links = ArchiveLinks(
            prev_archive=self.feed_url(archive_name(archived)) if archived else None
        )
        atom_items = render.newest_first(tail, ranks)
        atom_body = render.statements_atom(
            atom_items, self.ctx, self.path("statements.atom"), links, ranks, self.labels
        )
        latest = render.newest_first(self.store.statements(limit=self.per_doc), ranks)
        latest_updated = render.feed_updated(latest, ranks)
        p = self.prefix
        documents = [
            Document(
                f"{p}statements.atom",
                atom_body,
                render.feed_updated(atom_items, ranks),
            ),
            Document(
                f"{p}statements.rss",
                render.statements_rss(
                    latest, self.ctx, self.path("statements.rss"), ranks, self.labels
                ),
                latest_updated,
            ),
            Document(
                f"{p}statements.json",
                render.statements_json(
                    latest, self.ctx, self.path("statements.json"), ranks, self.labels
                ),
                latest_updated,
            ),
        ]
        if self.counters:
            counters_body = self._counters_body(today)
            documents.append(Document(f"{p}counters.atom", counters_body, render.day_start(today)))
        return documents

    def _counter_days(self, shown: list[StoredCounter]) -> int:
        """Days the counters document covers: ``counter_days``; for the combined one
        of several sources, whole days up to COMBINED_COUNTER_ENTRIES entries (today
        always), so that many sources' counters make no document of megabytes."""
        if self.labels is None or not shown:
            return self.counter_days
        return max(1, min(self.counter_days, COMBINED_COUNTER_ENTRIES // len(shown)))

    def _counters_body(self, today: dt.date) -> bytes:
        shown = self._counters()
        kept = self._counters_doc
        if kept is not None and kept[0] == today and kept[1] == shown:
            return kept[2]
        body = render.counters_atom(
            shown,
            self.ctx,
            self.path("counters.atom"),
            today,
            self._counter_days(shown),
            self.labels,
        )
        if self.labels is not None:
            # Kept for the combined set only: every source's publish rewrites it, while
            # a source's own is rendered when that source changed (and 200 kept bodies
            # would cost more memory than their renders cost time).
            self._counters_doc = (today, shown, body)
        return body

    def archive_links(self, page: int, pages: int) -> ArchiveLinks:
        """RFC 5005: prev/next-archive only between archives, ``current`` to the
        subscription document."""
        return ArchiveLinks(
            prev_archive=self.feed_url(archive_name(page - 1)) if page > 1 else None,
            next_archive=self.feed_url(archive_name(page + 1)) if page < pages else None,
            current=self.feed_url("statements.atom"),
            is_archive=True,
        )

    def archives(
        self,
        known: dict[str, str],
        keys: Sequence[StatementKey] | None = None,
        ranks: Ranks | None = None,
    ) -> tuple[list[Document], dict[str, str]]:
        """Archive documents whose fingerprint is not in ``known``; and all fingerprints.

        Fingerprints come from a narrow projection of every statement (one query),
        so an unchanged archive document costs a hash, not a render or a full read."""
        if keys is None:
            keys = self.store.statement_keys_in_store_order()
        if ranks is None:
            ranks = day_ranks(keys)
        pages = archive_count(len(keys), self.per_doc)
        docs, prints = [], {}
        # Entries that name their source change with the sources' names (once, like a
        # changed title); a deployment of one source fingerprints as it always did.
        naming = () if self.labels is None else (sorted(self.labels.items()),)
        for page in range(1, pages + 1):
            links = self.archive_links(page, pages)
            name = f"{self.prefix}{archive_name(page)}"
            start = (page - 1) * self.per_doc
            chunk = keys[start : start + self.per_doc]
            prints[name] = _fingerprint(chunk, ranks, links, self.ctx, *naming)
            if known.get(name) == prints[name]:
                continue
            items = self._archived(start, chunk)
            ordered = render.newest_first(items, ranks)
            body = render.statements_atom(
                ordered, self.ctx, self.path(archive_name(page)), links, ranks, self.labels
            )
            docs.append(Document(name, body, render.feed_updated(items, ranks)))
        return docs, prints

    def _archived(self, start: int, chunk: Sequence[StatementKey]) -> list[Statement]:
        items = self.store.statements_in_store_order(start, len(chunk))
        # Another writer may have committed a lower seq meanwhile: keep to the chunk.
        wanted = {k.seq for k in chunk}
        return [s for s in items if s.seq in wanted]


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
    """Write every changed document of the builder's set to the folder and the
    database; returns the names (under the folder) that changed in either (none
    when a publish that began after this call was made has already written them)."""
    turns = _set_turns(folder, builder.prefix)
    mine = turns.ask()
    with turns.lock:
        if turns.covered >= mine:
            return []
        covering = turns.begin()
        written = _publish(folder, builder, today)
        turns.covered = covering
        return written


def _publish(folder: Path, builder: FeedBuilder, today: dt.date) -> list[str]:
    manifest_path = folder / builder.prefix / MANIFEST
    try:
        known = json.loads(manifest_path.read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        known = {}
    known = {k: v for k, v in known.items() if (folder / k).exists()}
    stored = builder.store.document_etags()
    # A document missing from the database is rendered again even if its file is current.
    known = {k: v for k, v in known.items() if k in stored}
    documents, prints = builder.documents(known, today)
    written: list[str] = []
    to_store: list[tuple[str, bytes, str]] = []
    for doc in documents:
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
    written += _remove_stale_archives(folder, builder.prefix, builder.store, set(prints), stored)
    if prints != known:
        write_atomically(manifest_path, json.dumps(prints, sort_keys=True, indent=1).encode())
    return written


def _remove_stale_archives(
    folder: Path, prefix: str, store: Store, current: set[str], stored: dict[str, str]
) -> list[str]:
    """Archive documents of this set beyond the current history (left by an older
    feedbot that cut archives differently): removed from the folder and the database."""
    on_disk = [
        f"{prefix}archive/{p.name}"
        for p in (folder / prefix / "archive").glob("statements-*.atom")
        if p.is_file()
    ]
    mine = [n.removeprefix(prefix) for n in [*on_disk, *stored] if n.startswith(prefix)]
    stale = sorted({f"{prefix}{n}" for n in mine if _ARCHIVE_NAME.match(n)} - current)
    for name in stale:
        (folder / name).unlink(missing_ok=True)
    store.delete_documents(stale)
    return stale
