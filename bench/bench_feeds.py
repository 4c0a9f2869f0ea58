"""Benchmarks of feedbot's hot paths, each beside a baseline measured in the same run.

    .venv/bin/python bench/bench_feeds.py [--quick] [--only NAME ...] [--profile]

Sections (``--only`` takes these names, repeatable):

* ``poll304``  CPU of a poll answered 304 (unchanged page);
* ``fullpoll`` CPU of a poll of a new page (parse, store, feed rewrite);
* ``render``   publishing 10,000 stored statements (main feeds + RFC 5005 archives);
* ``serve``    ``feedbot serve`` against nginx serving the same feed file (wrk).

Prints one table (targets as PASS/FAIL columns) and always exits 0: it is a
benchmark, not a test. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import hashlib
import io
import os
import platform
import pstats
import random
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Measure the tree this script lives in, whatever the venv's editable install points at.
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from lxml import etree  # noqa: E402

from bench.common import (  # noqa: E402
    FIXTURES,
    RESULTS,
    median_run,
    print_table,
    round_notes,
    run_wrk,
    section_parser,
    settings_sections,
    toml_text,
    wrk_command,
    wrk_rounds,
)
from bench.common import PYTHON as VENV_PYTHON  # noqa: E402
from feedbot.settings import load_settings  # noqa: E402
from feeds import render  # noqa: E402
from feeds.config import FeedsConfig  # noqa: E402
from feeds.fetch import Fetcher  # noqa: E402
from feeds.model import Counter, Entry, Page, Statement  # noqa: E402
from feeds.parse import parse_page  # noqa: E402
from feeds.pipeline import Pipeline  # noqa: E402
from feeds.publish import FeedBuilder, archive_name, publish  # noqa: E402
from feeds.store import Store  # noqa: E402

# Children (fake source, feedbot serve) run on the project's venv, as an operator's would.
PYTHON = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
SECTIONS = ("poll304", "fullpoll", "render", "serve")
SYNTHETIC = 10_000  # statements in the render section's store
TODAY = dt.date(2020, 7, 6)  # the fixture page's date: stable counters and feeds
SEEN_AT = dt.datetime(2020, 7, 6, 9, 0, tzinfo=dt.UTC)
HEAD = ("section", "figure", "feedbot", "baseline", "ratio", "target", "result")

# The fake source runs in a process of its own: its handler threads would
# otherwise burn CPU inside this process and count against every poll.
FAKE_SOURCE_CODE = """
import sys
from pathlib import Path
from tests.support.fake_source import FakeSource
with FakeSource(root=Path(sys.argv[1])) as src:
    print(src.url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin (or dies)
"""


# --- results ---------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    figure: str
    value: float | None  # None: not measured (skipped)
    baseline: float | None
    unit: str  # "ms", "s", "us" or "req/s"
    target: str = ""  # as printed, e.g. "< 5 ms"
    ok: bool | None = None  # None: for information only

    def cells(self) -> list[str]:
        ratio = (
            f"{self.value / self.baseline:.2f}" if self.value is not None and self.baseline else "-"
        )
        result = "SKIP" if self.value is None else RESULTS[self.ok]
        return [
            self.section,
            self.figure,
            _fmt(self.value, self.unit),
            _fmt(self.baseline, self.unit),
            ratio,
            self.target or "-",
            result,
        ]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "us":
        return f"{value:.0f} µs"
    return f"{value:.3f} s"


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    stack: contextlib.ExitStack
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # printed under the table
    profiles: list[tuple[str, str]] = field(default_factory=list)  # (title, pstats text)
    _source_url: str | None = None

    def reps(self, full: int, quick: int) -> int:
        return quick if self.args.quick else full

    def source_url(self) -> str:
        """Base URL of the fixture site, served by a separate process (started once)."""
        if self._source_url is None:
            proc = subprocess.Popen(
                [str(PYTHON), "-c", FAKE_SOURCE_CODE, str(FIXTURES / "site")],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.stack.callback(_stop, proc, closing_stdin=True)
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.startswith("http://"):
                raise RuntimeError(f"fake source did not start (said {line!r})")
            self._source_url = line
        return self._source_url


def _stop(proc: subprocess.Popen[Any], closing_stdin: bool = False, sig: int = 0) -> None:
    """End a child we started: by closing its stdin, or by a signal, then by SIGKILL."""
    if proc.poll() is not None:
        return
    if closing_stdin and proc.stdin is not None:
        proc.stdin.close()
    else:
        proc.send_signal(sig or signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- measuring -------------------------------------------------------------------------


@dataclass
class Samples:
    cpu: list[float]  # seconds of process CPU (time.process_time)
    wall: list[float]

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu) * 1000

    @property
    def wall_ms(self) -> float:
        return statistics.median(self.wall) * 1000

    def p90_cpu_ms(self) -> float:
        return sorted(self.cpu)[int(0.9 * (len(self.cpu) - 1))] * 1000


def measure(prepare: Callable[[], Callable[[], object]], runs: int, warmup: int) -> Samples:
    """``prepare()`` does the untimed set-up of one run and returns what is timed."""
    for _ in range(warmup):
        prepare()()
    cpu, wall = [], []
    for _ in range(runs):
        work = prepare()
        c0, w0 = time.process_time(), time.perf_counter()
        work()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return Samples(cpu, wall)


def profile_text(
    title: str,
    work: Callable[[], object],
    repeat: int,
    limit: int = 25,
    before: Callable[[], object] | None = None,
) -> str:
    """cProfile listing of ``repeat`` calls of ``work``; ``before`` runs unprofiled."""
    prof = cProfile.Profile()
    for _ in range(repeat):
        if before is not None:
            before()
        prof.enable()
        work()
        prof.disable()
    return stats_text(pstats.Stats(prof), f"{title} (x{repeat})", limit)


def stats_text(stats: pstats.Stats, title: str, limit: int = 25) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.strip_dirs()
    print(f"--- {title}: by cumulative time", file=out)
    stats.sort_stats("cumulative").print_stats(limit)
    print(f"--- {title}: by own time", file=out)
    stats.sort_stats("tottime").print_stats(limit)
    # pstats pads with blank lines and a header per call; keep the listing only.
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())


# --- configuration ---------------------------------------------------------------------


def write_config(path: Path, source_url: str, workdir: Path, **overrides: dict[str, Any]) -> Path:
    """A settings file as an operator would write it, everything under ``workdir``."""
    database_url = f"sqlite:///{workdir / 'feedbot.sqlite3'}"
    sections = settings_sections(source_url, database_url, workdir / "feeds", poll_seconds=300)
    sections["log"] = {"level": "WARNING"}
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    path.write_text(toml_text(sections), "utf-8")
    return path


def feeds_config(
    source_url: str, workdir: Path, articles_per_poll: int = 10
) -> tuple[Path, FeedsConfig]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = write_config(
        workdir / "feedbot.toml",
        source_url,
        workdir,
        fetch={"articles_per_poll": articles_per_poll},
    )
    return path, load_settings(path, env={}).feeds


def migrated_template(tmp: Path) -> Path:
    """An empty migrated SQLite file, copied for each fresh store (Alembic stays untimed)."""
    path = tmp / "template.sqlite3"
    if not path.exists():
        store = Store(f"sqlite:///{path}")
        store.migrate()
        store.close()
    return path


def fresh_store(template: Path, workdir: Path) -> Store:
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / "feedbot.sqlite3"
    for f in template.parent.glob(template.name + "*"):  # the file and any -wal/-shm
        shutil.copyfile(f, workdir / f.name.replace(template.name, target.name))
    store = Store(f"sqlite:///{target}")
    store.is_empty()  # opens the pooled connection (pragmas) outside the timing
    return store


def no_sleep(_seconds: float) -> None:
    pass


# --- baseline shared by the poll sections ----------------------------------------------


def plain_get_and_parse(
    session: requests.Session, url: str, cfg: FeedsConfig
) -> Callable[[], object]:
    def work() -> object:
        response = session.get(url, timeout=10)
        response.raise_for_status()
        return parse_page(
            response.content, response.url, cfg.source.profile, response.headers["Content-Type"]
        )

    return work


# --- section: poll answered 304 --------------------------------------------------------


def bench_poll304(b: Bench) -> None:
    url = b.source_url()
    _, cfg = feeds_config(url, b.tmp / "poll304", articles_per_poll=0)
    store = Store(cfg.database_url)
    store.migrate()
    b.stack.callback(store.close)
    fetcher = Fetcher(cfg.fetch, sleep=no_sleep)
    b.stack.callback(fetcher.close)
    pipeline = Pipeline(cfg, store, fetcher, sleep=no_sleep)
    first = pipeline.poll()  # fills the store and the feeds; later polls are 304s
    if first.result != "ok":
        raise RuntimeError(f"first poll failed: {first.summary()}")

    def poll() -> object:
        outcome = pipeline.poll()
        if outcome.result != "not_modified":
            raise RuntimeError(f"expected a 304 poll, got: {outcome.summary()}")
        return outcome

    runs = b.reps(200, 50)
    ours = measure(lambda: poll, runs, warmup=10)
    session = requests.Session()
    b.stack.callback(session.close)
    base = measure(lambda: plain_get_and_parse(session, cfg.source.url, cfg), runs, warmup=10)
    conditional = {"If-None-Match": store.source_state(cfg.source.url).etag or ""}
    floor = measure(
        lambda: lambda: session.get(cfg.source.url, headers=conditional), runs, warmup=10
    )
    b.rows += [
        Row(
            "poll304",
            f"CPU per poll answered 304 (median of {runs})",
            ours.cpu_ms,
            base.cpu_ms,
            "ms",
            "< 5 ms",
            ours.cpu_ms < 5,
        ),
        Row("poll304", "  same, 90th percentile", ours.p90_cpu_ms(), base.p90_cpu_ms(), "ms"),
        Row("poll304", "  same, wall time (median)", ours.wall_ms, base.wall_ms, "ms"),
        Row(
            "poll304",
            "  floor: bare requests GET answered 304",
            floor.cpu_ms,
            base.cpu_ms,
            "ms",
        ),
    ]
    b.notes.append(
        "poll304 baseline: requests.Session().get of the same URL (200, whole page, keep-alive)"
        " + feeds.parse.parse_page of the body; the floor row is the same Session sending"
        " If-None-Match and getting 304, with no store work."
    )
    if b.args.profile:
        b.profiles.append(("poll answered 304", profile_text("Pipeline.poll() → 304", poll, 200)))


# --- section: full poll of a new page --------------------------------------------------


def empty_store(store: Store) -> None:
    """Delete every row (schema kept), so the next poll finds the page new while the
    engine keeps its pooled connection and compiled-statement cache, as in the service."""
    tables = [t for t in sa.inspect(store.engine).get_table_names() if t != "alembic_version"]
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")  # any order, whatever other tables refer
        for table in tables:
            cursor.execute(f'DELETE FROM "{table}"')  # names from the schema itself
        raw.commit()
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()


def bench_fullpoll(b: Bench) -> None:
    url = b.source_url()
    template = migrated_template(b.tmp)
    fetcher: Fetcher | None = None
    counter = iter(range(10**9))
    warm = fresh_store(template, b.tmp / "fullpoll" / "warm")
    b.stack.callback(warm.close)

    def prepare(articles: int, reuse: bool) -> Callable[[], object]:
        """An empty store and feeds folder, so the page is new. ``reuse``: the same
        store emptied (warm engine); else a fresh SQLite file and engine. The fetcher is
        shared (keep-alive), as in the service."""
        nonlocal fetcher
        workdir = b.tmp / "fullpoll" / str(next(counter))
        _, cfg = feeds_config(url, workdir, articles_per_poll=articles)
        if fetcher is None:
            fetcher = Fetcher(cfg.fetch, sleep=no_sleep)
            b.stack.callback(fetcher.close)
        if reuse:
            empty_store(warm)
            store = warm
        else:
            store = fresh_store(template, workdir)
        pipeline = Pipeline(cfg, store, fetcher, sleep=no_sleep)

        def poll() -> object:
            outcome = pipeline.poll()
            if not reuse:
                store.close()
            if outcome.result != "ok" or not outcome.changes or len(outcome.changes.new) != 11:
                raise RuntimeError(f"expected 11 new statements, got: {outcome.summary()}")
            if articles and outcome.articles_fetched != min(articles, 11):
                raise RuntimeError(f"full texts not all fetched: {outcome.summary()}")
            return outcome

        return poll

    runs = b.reps(30, 10)
    fresh = measure(lambda: prepare(0, reuse=False), runs, warmup=3)
    reused = measure(lambda: prepare(0, reuse=True), runs, warmup=3)
    text_runs = b.reps(15, 5)
    with_text = measure(lambda: prepare(10, reuse=True), text_runs, warmup=1)
    _, cfg = feeds_config(url, b.tmp / "fullpoll" / "baseline", articles_per_poll=0)
    session = requests.Session()
    b.stack.callback(session.close)
    base = measure(lambda: plain_get_and_parse(session, cfg.source.url, cfg), runs, warmup=3)
    b.rows += [
        Row(
            "fullpoll",
            f"CPU per full poll, fresh store (median of {runs})",
            fresh.cpu_ms,
            base.cpu_ms,
            "ms",
            "< 50 ms",
            fresh.cpu_ms < 50,
        ),
        Row("fullpoll", "  same, wall time (median)", fresh.wall_ms, base.wall_ms, "ms"),
        Row(
            "fullpoll",
            f"CPU per full poll, warm store emptied (median of {runs})",
            reused.cpu_ms,
            base.cpu_ms,
            "ms",
            "< 50 ms",
            reused.cpu_ms < 50,
        ),
        Row("fullpoll", "  same, wall time (median)", reused.wall_ms, base.wall_ms, "ms"),
        Row(
            "fullpoll",
            f"  + 10 full texts, warm store (median of {text_runs})",
            with_text.cpu_ms,
            base.cpu_ms,
            "ms",
        ),
        Row("fullpoll", "  same, wall time (median)", with_text.wall_ms, base.wall_ms, "ms"),
    ]
    b.notes.append(
        "fullpoll: home page only (articles_per_poll = 0) into an empty store and feeds"
        " folder, so all 11 statements are new and all 4 feeds are written. 'fresh store' ="
        " a new SQLite file (copied from a migrated template) and a new engine each run, so"
        " SQLAlchemy compiles every statement again; 'warm store' = one store emptied"
        " between runs, as a long-running service sees it. Baseline as poll304."
    )
    if b.args.profile:
        # Set-up stays outside the profile, as it stays outside the timing.
        def one() -> Callable[[], object]:
            return prepare(0, reuse=True)

        polls: list[Callable[[], object]] = []
        b.profiles.append(
            (
                "full poll",
                profile_text(
                    "Pipeline.poll() of a new page, warm store",
                    lambda: polls.pop()(),
                    20,
                    before=lambda: polls.append(one()),
                ),
            )
        )


# --- section: rendering and publishing 10,000 statements -------------------------------


def synthetic_pages(count: int, batch: int, seed: int = 5005) -> Iterator[Page]:
    """Pages of made-up statements shaped like the fixtures (titles ~170 characters,
    leads ~450, full text ~1,000 with some of 5,000), oldest batch first."""
    rng = random.Random(seed)
    words = re.findall(r"[A-Za-z’']+", (FIXTURES / "site" / "index.html").read_text("utf-8"))
    words = [w for w in words if len(w) > 1] or ["statement"]

    def text(low: int, high: int) -> str:
        size, length, out = rng.randint(low, high), 0, list[str]()
        while length < size:
            out.append(rng.choice(words))
            length += len(out[-1]) + 1
        return " ".join(out).capitalize() + "."

    def entry(n: int) -> Entry:
        paragraphs = rng.choice([1, 2, 3, 4, 6, 8, 30])  # mostly short, a few long speeches
        content = "\n\n".join(text(80, 400) for _ in range(paragraphs))
        return Entry(
            id=f"https://www.rusemb.org.uk/fnapr/{n}",
            title=text(60, 280),
            published=TODAY - dt.timedelta(days=(count - n) // 3),  # ~3 statements a day
            summary=text(200, 700),
            url=f"https://www.rusemb.org.uk/fnapr/{n}",
            content=content if rng.random() < 0.9 else None,
        )

    counters = [
        Counter(855, "the Salisbury incident", "no credible information", dt.date(2018, 3, 4)),
        Counter(847, "the death of Nikolay Glushkov", None, dt.date(2018, 3, 12)),
    ]
    for start in range(0, count, batch):
        numbers = range(start, min(start + batch, count))
        last = start + batch >= count
        yield Page(
            as_of=TODAY,
            counters=counters if last else [],
            entries=[entry(n) for n in reversed(numbers)],  # a page lists newest first
        )


ATOM_NS = "http://www.w3.org/2005/Atom"


def lxml_atom(items: Sequence[Statement], ctx: render.FeedContext, path: str) -> bytes:
    """Baseline: the same Atom elements built directly with lxml, no feedgen."""

    def sub(parent: Any, tag: str, text: str | None = None, **attrib: str) -> Any:
        el = etree.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrib)
        el.text = text
        return el

    feed = etree.Element(f"{{{ATOM_NS}}}feed", nsmap={None: ATOM_NS})
    sub(feed, "id", ctx.url(path))
    sub(feed, "title", ctx.title)
    sub(feed, "updated", render.feed_updated(items).isoformat())
    sub(sub(feed, "author"), "name", ctx.author)
    sub(feed, "link", href=ctx.url(path), rel="self")
    for s in items:
        entry = sub(feed, "entry")
        sub(entry, "id", s.id)
        sub(entry, "title", s.title)
        sub(entry, "updated", render.updated_at(s).isoformat())
        sub(entry, "published", render.published_at(s).isoformat())
        if s.url:
            sub(entry, "link", href=s.url, rel="alternate")
        sub(entry, "summary", s.summary)
        sub(entry, "content", render.content_html(s), type="html")
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def timed(work: Callable[[], object]) -> tuple[float, float, object]:
    c0, w0 = time.process_time(), time.perf_counter()
    result = work()
    return time.perf_counter() - w0, time.process_time() - c0, result


def bench_render(b: Bench) -> None:
    workdir = b.tmp / "render"
    workdir.mkdir()
    store = Store(f"sqlite:///{workdir / 'feedbot.sqlite3'}")
    store.migrate()
    b.stack.callback(store.close)

    def fill() -> None:
        for page in synthetic_pages(SYNTHETIC, batch=500):
            store.apply_page(page, SEEN_AT)

    fill_wall, _, _ = timed(fill)
    assert store.count_statements() == SYNTHETIC
    ctx = render.FeedContext(
        public_url="http://feeds.test", source_url="https://www.rusemb.org.uk/", title="Bench"
    )
    per_doc = 50
    builder = FeedBuilder(store, ctx, per_doc, counter_days=30)
    docs = SYNTHETIC // per_doc + 4  # archive pages + statements.atom/.rss/.json, counters
    folders = (workdir / f"feeds-{n}" for n in range(10**9))
    folder = workdir / "feeds"

    def into_empty_folder() -> Callable[[], object]:
        nonlocal folder
        folder = next(folders)

        def work() -> object:
            written = publish(folder, builder, TODAY)
            assert len(written) == docs, written
            return written

        return work

    def again() -> object:
        rewritten = publish(folder, builder, TODAY)
        assert rewritten == [], rewritten
        return rewritten

    def publish_directly() -> Callable[[], object]:
        """Baseline: one query for everything, lxml documents, plain writes."""
        out = next(folders)

        def work() -> None:
            (out / "archive").mkdir(parents=True, exist_ok=True)
            items = store.statements_oldest_first(SYNTHETIC, 0)
            for page in range(len(items) // per_doc):
                chunk = items[page * per_doc : (page + 1) * per_doc][::-1]
                name = archive_name(page + 1)
                (out / name).write_bytes(lxml_atom(chunk, ctx, f"/feeds/{name}"))
            newest = items[-per_doc:][::-1]
            (out / "statements.atom").write_bytes(lxml_atom(newest, ctx, "/feeds/statements.atom"))

        return work

    def one_more() -> Callable[[], object]:
        """The steady state: one new (newest) statement in a big store, as a poll adds it."""
        made = next(synthetic_pages(1, batch=1, seed=len(added))).entries[0]
        news = f"https://www.rusemb.org.uk/fnapr/{SYNTHETIC + len(added)}"
        store.apply_page(Page(as_of=TODAY, entries=[replace(made, id=news, url=news)]), SEEN_AT)
        added.append(news)
        return lambda: added_written.append(publish(folder, builder, TODAY))

    added: list[str] = []
    added_written: list[list[str]] = []
    heavy = b.reps(3, 1)  # the empty-folder publish takes about a second each
    first = measure(into_empty_folder, heavy, warmup=0)
    base = measure(publish_directly, heavy, warmup=0)
    light = b.reps(10, 3)
    unchanged = measure(lambda: again, light, warmup=1)
    read = measure(lambda: lambda: store.statements_oldest_first(SYNTHETIC, 0), light, 1)
    grown = measure(one_more, light, warmup=0)
    renewed = added_written[-1]
    newest = store.statements(limit=per_doc)
    runs = b.reps(30, 10)
    one = measure(
        lambda: lambda: render.statements_atom(newest, ctx, "/feeds/statements.atom"), runs, 3
    )
    one_base = measure(lambda: lambda: lxml_atom(newest, ctx, "/feeds/statements.atom"), runs, 3)
    budget = 1000 / docs  # ms per document if the whole publish is to fit in 1 s
    b.rows += [
        Row(
            "render",
            f"publish {SYNTHETIC:,} statements, empty folder: wall (median of {heavy})",
            first.wall_ms / 1000,
            base.wall_ms / 1000,
            "s",
            "< 1 s",
            first.wall_ms < 1000,
        ),
        Row(
            "render",
            f"  same, CPU ({docs} documents written)",
            first.cpu_ms / 1000,
            base.cpu_ms / 1000,
            "s",
            "< 1 s",
            first.cpu_ms < 1000,
        ),
        Row(
            "render",
            f"publish again, nothing changed: wall (median of {light})",
            unchanged.wall_ms / 1000,
            read.wall_ms / 1000,
            "s",
            "< 1 s",
            unchanged.wall_ms < 1000,
        ),
        Row(
            "render",
            "  same, CPU",
            unchanged.cpu_ms / 1000,
            read.cpu_ms / 1000,
            "s",
            "< 1 s",
            unchanged.cpu_ms < 1000,
        ),
        Row(
            "render",
            f"publish after 1 new statement: wall ({len(renewed)} written)",
            grown.wall_ms / 1000,
            read.wall_ms / 1000,
            "s",
        ),
        Row("render", "  same, CPU", grown.cpu_ms / 1000, read.cpu_ms / 1000, "s"),
        Row(
            "render",
            f"statements_atom of newest {per_doc}: CPU (median of {runs})",
            one.cpu_ms,
            one_base.cpu_ms,
            "ms",
            f"< {budget:.1f} ms",
            one.cpu_ms < budget,
        ),
        Row("render", "  same, wall (median)", one.wall_ms, one_base.wall_ms, "ms"),
    ]
    size = len((folder / "statements.atom").read_bytes())
    b.notes.append(
        f"render: store filled with {SYNTHETIC:,} synthetic statements in {fill_wall:.1f} s"
        f" (apply_page, batches of 500); statements.atom of the newest {per_doc} is"
        f" {size:,} bytes; {len(added)} statements were added for the 'after 1 new' runs,"
        " so the last figure is for a store of a few more than 10,000."
        " Baselines: first publish = one query + the same documents built"
        " with lxml + plain writes (no fsync); the later publishes = that one query alone;"
        f" statements_atom = the lxml build of the same {per_doc} entries. The per-document"
        f" target is 1 s / {docs} documents."
    )
    if b.args.profile:
        scratch = workdir / "profiled"

        b.profiles.append(
            (
                "publish",
                profile_text(
                    "publish() into an empty folder",
                    lambda: publish(scratch, builder, TODAY),
                    1,
                    before=lambda: shutil.rmtree(scratch, ignore_errors=True),
                ),
            )
        )
        b.profiles.append(
            (
                "publish again",
                profile_text(
                    "publish() with nothing changed", lambda: publish(scratch, builder, TODAY), 1
                ),
            )
        )


# --- section: feedbot serve against nginx ----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[Any], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before answering")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {seconds:g}s")


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;       # Debian's default configuration, as an operator would run it
    tcp_nopush on;
    types {{ application/atom+xml atom; application/rss+xml rss; application/json json; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    server {{
        listen 127.0.0.1:{port};
        location /feeds/ {{ alias {feeds}/; }}
    }}
}}
"""


def start_feedbot(
    stack: contextlib.ExitStack, workdir: Path, config_file: Path, profile_out: Path | None = None
) -> subprocess.Popen[bytes]:
    """``feedbot serve`` as an operator starts it, optionally under cProfile."""
    # Settings come from the file only: no FEEDBOT_*/PORT/DATABASE_URL from our environment.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEEDBOT_", "TELEGRAM_")) and k not in ("PORT", "DATABASE_URL")
    }
    cmd = [str(PYTHON)]
    if profile_out is not None:
        cmd += ["-m", "cProfile", "-o", str(profile_out)]
    cmd += ["-m", "feedbot", "--config", str(config_file), "serve"]
    log = stack.enter_context((workdir / "serve.log").open("ab"))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    stack.callback(_stop, proc, sig=signal.SIGINT)  # SIGINT: clean exit, profile saved
    return proc


def start_nginx(stack: contextlib.ExitStack, workdir: Path, feeds: Path, port: int) -> Any:
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=workdir, port=port, feeds=feeds))
    err = stack.enter_context((workdir / "stderr.log").open("wb"))
    proc = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    stack.callback(_stop, proc, sig=signal.SIGQUIT)  # SIGQUIT: graceful shutdown
    return proc


def bench_serve(b: Bench) -> None:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        print(
            f"serve: {' and '.join(missing)} not found; skipping this section. Install with:"
            " apt-get update && apt-get install -y nginx-light wrk",
            file=sys.stderr,
        )
        for name in ("full answers (200)", "conditional answers (304)"):
            b.rows.append(
                Row("serve", f"requests/s, {name}", None, None, "req/s", "≥ 0.50 × nginx")
            )
        b.notes.append(f"serve: skipped, {' and '.join(missing)} missing.")
        return
    url = b.source_url()
    workdir = b.tmp / "serve"
    config_file, cfg = feeds_config(url, workdir)
    # A real poll (full text on) writes the feeds folder both servers serve.
    store = Store(cfg.database_url)
    store.migrate()
    fetcher = Fetcher(cfg.fetch, sleep=no_sleep)
    outcome = Pipeline(cfg, store, fetcher, sleep=no_sleep).poll()
    fetcher.close()
    store.close()
    if outcome.result != "ok":
        raise RuntimeError(f"poll for the serve section failed: {outcome.summary()}")
    port, nginx_port = free_port(), free_port()
    write_config(config_file, url, workdir, http={"host": "127.0.0.1", "port": port})
    (workdir / "nginx").mkdir()
    seconds = 3 if b.args.quick else 10
    ours_url = f"http://127.0.0.1:{port}/feeds/statements.atom"
    nginx_url = f"http://127.0.0.1:{nginx_port}/feeds/statements.atom"
    rounds = b.reps(3, 1)
    load_before = os.getloadavg()[0]

    # Servers stop when the section ends, not when the whole run does.
    with contextlib.ExitStack() as stack:
        feedbot = start_feedbot(stack, workdir, config_file)
        nginx = start_nginx(stack, workdir / "nginx", cfg.publish.folder, nginx_port)
        wait_for(ours_url, feedbot, "feedbot serve")
        wait_for(nginx_url, nginx, "nginx")

        # wrk sends no Accept-Encoding; ask for identity so both send the file as it is.
        identity = {"Accept-Encoding": "identity"}
        ours = requests.get(ours_url, headers=identity, timeout=5)
        theirs = requests.get(nginx_url, headers=identity, timeout=5)
        ours_sha = hashlib.sha256(ours.content).hexdigest()
        theirs_sha = hashlib.sha256(theirs.content).hexdigest()
        if ours_sha != theirs_sha:
            raise RuntimeError(f"bodies differ: feedbot {ours_sha[:16]}, nginx {theirs_sha[:16]}")
        tags = {"feedbot": ours.headers["ETag"], "nginx": theirs.headers["ETag"]}
        for name, target in (("feedbot", ours_url), ("nginx", nginx_url)):
            answer = requests.get(
                target, headers={**identity, "If-None-Match": tags[name]}, timeout=5
            )
            if answer.status_code != 304:
                raise RuntimeError(f"{name} answered {answer.status_code} to its own ETag")

        servers = {"feedbot": (ours_url, feedbot.pid), "nginx": (nginx_url, nginx.pid)}
        results = wrk_rounds(servers, tags, rounds, seconds)

    load_after = os.getloadavg()[0]
    median = {key: median_run(runs) for key, runs in results.items()}
    for kind, label in (("200", "full answers (200)"), ("304", "conditional answers (304)")):
        ours_r, theirs_r = median["feedbot", kind], median["nginx", kind]
        ratio = ours_r.rps / theirs_r.rps
        b.rows.append(
            Row(
                "serve",
                f"requests/s, {label} (median of {rounds})",
                ours_r.rps,
                theirs_r.rps,
                "req/s",
                "≥ 0.50 × nginx",
                ratio >= 0.5,
            )
        )
        b.rows.append(
            Row(
                "serve",
                "  server CPU per request",
                ours_r.server_cpu_us,
                theirs_r.server_cpu_us,
                "us",
            )
        )
    shown = shlex.join(wrk_command(ours_url, seconds, "<etag>"))
    b.notes.append(
        f"serve: body {len(ours.content):,} bytes, sha256 {ours_sha[:16]}… identical on both;"
        f" feedbot ETag {tags['feedbot']}, nginx ETag {tags['nginx']}. Workers: feedbot serve"
        " = 1 process, 1 asyncio event loop (aiohttp); nginx = 1 master + worker_processes 1."
        f" wrk command: {shown} (-H only for the 304 runs; a 1 s warm-up run precedes each)."
        " Baseline = nginx serving the same file from the same feeds folder."
    )
    b.notes += round_notes("serve", results, counts=True)
    b.notes.append(
        f"serve: 1-minute load average {load_before:.2f} before, {load_after:.2f} after;"
        f" anything above ~1 beyond wrk and the server means other work shared the"
        f" {os.cpu_count()} CPUs and the requests/s figures are noisy."
    )
    if b.args.profile:
        # A separate run under cProfile: the profiler slows the server, so the table's
        # figures come from the unprofiled run above.
        profile_out = workdir / "serve.prof"
        with contextlib.ExitStack() as stack:
            feedbot = start_feedbot(stack, workdir, config_file, profile_out)
            wait_for(ours_url, feedbot, "feedbot serve (profiled)")
            run_wrk(ours_url, seconds, feedbot.pid)
            _stop(feedbot, sig=signal.SIGINT)
        if profile_out.exists():
            b.profiles.append(
                (
                    "feedbot serve",
                    stats_text(
                        pstats.Stats(str(profile_out)),
                        "feedbot serve under wrk, full (200) answers",
                    ),
                )
            )


# --- main ------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Bench], None]] = {
    "poll304": bench_poll304,
    "fullpoll": bench_fullpoll,
    "render": bench_render,
    "serve": bench_serve,
}


def describe_machine() -> str:
    import aiohttp

    parts = [
        f"Python {platform.python_version()}",
        f"{os.cpu_count()} CPUs",
        f"SQLite {sqlite3.sqlite_version}",
        f"aiohttp {aiohttp.__version__}",
    ]
    for tool, flag in (("nginx", "-v"), ("wrk", "-v")):
        if shutil.which(tool):
            done = subprocess.run([tool, flag], capture_output=True, text=True, check=False)
            said = (done.stdout + done.stderr).strip().removeprefix("nginx version: ")
            version = re.search(rf"{tool}[/ ]\S+", said)
            parts.append(version.group(0) if version else tool)
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = section_parser(__doc__, "fewer runs, 3 s wrk runs", SECTIONS)
    parser.add_argument(
        "--profile", action="store_true", help="also print cProfile listings of each section"
    )
    args = parser.parse_args(argv)
    chosen = [s for s in SECTIONS if not args.only or s in args.only]
    print(f"feedbot benchmark ({'quick' if args.quick else 'full'}): {describe_machine()}")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="feedbot-bench-")))
        bench = Bench(args, tmp, stack)
        for name in chosen:
            print(f"running {name}…", file=sys.stderr, flush=True)
            try:
                RUNNERS[name](bench)
            except Exception as exc:  # a broken section must not hide the others' figures
                bench.notes.append(f"{name}: ERROR {type(exc).__name__}: {exc}")
        print()
        print_table(bench.rows, HEAD)
        print()
        for note in bench.notes:
            print(f"* {note}")
        for title, text in bench.profiles:
            print(f"\n=== profile: {title}\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
