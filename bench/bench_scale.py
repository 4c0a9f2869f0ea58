"""Scale-out benchmark: several feedbot processes on one PostgreSQL database.

    .venv/bin/python bench/bench_scale.py [--quick] [--only NAME ...] [--pg URL] [--keep]

Sections (``--only`` takes these names, repeatable):

* ``delivery``  one new statement to 1,000 private chats (300 with ``--quick``)
  through one ``feedbot worker`` and then through two workers on the same
  database and the same ``FakeTelegram`` (Telegram's flood limits enforced, real
  429s): messages/s from the first successful ``sendMessage`` of the statement
  to the last, 429s, duplicates, missing chats. The second worker stands by, so
  it must not add speed: the rate stays at or under 30/s, Telegram's per-token
  limit.
* ``takeover``  two ``feedbot worker`` processes, ``kill -9`` of the lease
  holder, then the time until the stand-by holds the lease row
  (``BotStore.lease_holder("worker")``) and until it has finished its first
  poll (a new row in ``polls``). Median of 5 runs (2 with ``--quick``), target
  under 30 s, with the default lease settings (``lease_seconds`` 20,
  ``renew_seconds`` 5) and ``same_host_takeover`` both ``false`` (as if the
  workers were on different machines: the lease must expire) and ``true`` (the
  default: a dead holder on the same host is taken over at the next try).
* ``web``  ``feedbot web`` requests/s for ``/feeds/statements.atom`` with its
  store on PostgreSQL against the same with its store on SQLite, both filled by
  one ``feedbot poll`` of the fixture page and checked to answer the same bytes
  and ETag; ``wrk -t1 -c32 -d10s`` (3 s with ``--quick``) for full answers
  (200) and conditional ones (304, ``If-None-Match``), alternating rounds.

Every process is real (``python -m feedbot --config CFG ROLE``, started like
tests/test_scale_out.py does); the source is a ``FakeSource`` serving the
fixture site and the Bot API a ``FakeTelegram``, both in this process. Each
scenario gets a fresh PostgreSQL schema (``?options=-csearch_path%3D<schema>``),
dropped at the end. Prints one table and exits 0: it is a benchmark, not a
test. The full run takes about ten minutes; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Measure the tree this script lives in, whatever the venv's editable install points at.
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.common import (  # noqa: E402
    FIXTURES,
    PUBLIC_URL,
    PYTHON,
    BroadcastFigures,
    Row,
    median_run,
    outbox_counts,
    print_table,
    progress,
    quiet_gc,
    round_notes,
    section_parser,
    sent_ok,
    settings_sections,
    subscribe_private_chats,
    toml_text,
    tree_state,
    with_new_statement,
    wrk_command,
    wrk_rounds,
)
from bot.store import BotStore  # noqa: E402
from feedbot.settings import WorkerSettings  # noqa: E402
from feeds.store import Store, normalise_database_url  # noqa: E402
from tests.support.fake_source import FakeSource  # noqa: E402
from tests.support.fake_telegram import Call, FakeTelegram  # noqa: E402
from tests.support.processes import Feedbot, clean_env, free_port  # noqa: E402

HEAD = ("figure", "value", "baseline/target", "result")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SECTIONS = ("delivery", "takeover", "web")

FULL_CHATS, QUICK_CHATS = 1_000, 300
FULL_RUNS, QUICK_RUNS = 5, 2
TOKEN_LIMIT = 30.0  # messages/s per bot token
RATE_FLOOR = 0.95  # of the limit: a sender that stands still is no better
TAKEOVER_TARGET = 30.0  # seconds
TAKEOVER_TIMEOUT = 90.0
STORED_ON_FIRST_POLL = 11
MARK = "Scale-out benchmark statement"
LEAD = "A lead for the scale-out benchmark."
STALL_SECONDS = 60.0
DEFAULTS = WorkerSettings()  # lease_seconds 20, renew_seconds 5, same_host_takeover true


# --- results ---------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    pg: Databases
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def reps(self, full: int, quick: int) -> int:
        return quick if self.args.quick else full


# --- databases, settings, processes ----------------------------------------------------


class Databases:
    """Fresh PostgreSQL schemas for this run, every one dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.run = uuid.uuid4().hex[:8]
        self.admin = sa.create_engine(normalise_database_url(url))
        self.schemas: list[str] = []

    def version(self) -> str:
        with self.admin.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar_one()).split()[0]

    def fresh(self, label: str) -> str:
        """A new empty schema; the database URL whose search_path is that schema."""
        schema = f"bench_scale_{self.run}_{label}"
        with self.admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        self.schemas.append(schema)
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{schema}"

    def drop_all(self) -> None:
        for schema in self.schemas:
            with self.admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.schemas.clear()
        self.admin.dispose()


class Db:
    """The benchmark's own view of a feedbot database: migrated, queried directly."""

    def __init__(self, url: str) -> None:
        self.store = Store(url)
        self.store.migrate()
        self.bots = BotStore(self.store.engine)
        self.bots.migrate()

    def scalar(self, sql: str) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())

    def polls(self) -> int:
        return self.scalar("SELECT count(*) FROM polls")

    def holder_pid(self) -> int | None:
        """The pid in the lease row's holder (``host:pid:random``), if any."""
        held = self.bots.lease_holder("worker")
        if held is None:
            return None
        pid = held[0].split(":")[1]
        return int(pid) if pid.isdigit() else None

    def subscribe(self, count: int) -> None:
        """``count`` private chats in one transaction, counters off (they share the limit)."""
        subscribe_private_chats(self.store.engine, count)

    def outbox_counts(self) -> dict[str, int]:
        return outbox_counts(self.store.engine)

    def close(self) -> None:
        self.store.close()


def write_config(
    path: Path,
    source_url: str,
    database_url: str,
    *,
    poll_seconds: int | None = None,
    worker: dict[str, Any] | None = None,
    port: int = 0,
) -> Path:
    """A settings file as an operator would write it, everything under ``path.parent``."""
    sections = settings_sections(
        source_url, database_url, path.parent / "feeds", poll_seconds=poll_seconds, port=port
    )
    sections["worker"] = worker or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml_text(sections), "utf-8")
    return path


def wait_for(
    check: Callable[[], bool],
    what: str,
    timeout: float = 60.0,
    procs: Sequence[Feedbot] = (),
    interval: float = 0.05,
) -> float:
    """Seconds until ``check()``; RuntimeError after ``timeout`` or if a process exits."""
    start = time.monotonic()
    while not check():
        for p in procs:
            if not p.alive():
                tail = p.log()[-800:]
                raise RuntimeError(f"feedbot {p.role} exited before {what}:\n{tail}")
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def stop_all(procs: Sequence[Feedbot]) -> None:
    for p in procs:
        with contextlib.suppress(Exception):
            p.stop()


# --- section: delivery with one and two workers ----------------------------------------


@dataclass
class Delivery(BroadcastFigures):
    """What one broadcast through one or two workers delivered, as the fake Bot API saw it."""

    workers: int
    chats: int
    ok_calls: list[Call] = field(default_factory=list)
    failed_calls: int = 0  # non-200 answers to sends of the statement
    too_many: int = 0  # every 429 of the run
    holders: set[int] = field(default_factory=set)  # pids seen holding the lease meanwhile
    pids: list[int] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)


def run_delivery(b: Bench, workers: int, chats: int) -> Delivery:
    result = Delivery(workers, chats)
    workdir = b.tmp / f"delivery-{workers}"
    database_url = b.pg.fresh(f"delivery{workers}")
    db = Db(database_url)
    procs: list[Feedbot] = []
    try:
        db.subscribe(chats)
        with FakeSource(root=FIXTURES / "site") as source, FakeTelegram(max_poll_wait=0.5) as tg:
            config = write_config(
                workdir / "feedbot.toml", source.url, database_url, poll_seconds=1
            )
            env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url}
            first = Feedbot("worker", config, env, workdir / "worker-1.log")
            procs.append(first)
            wait_for(
                lambda: db.store.count_statements() >= STORED_ON_FIRST_POLL,
                "the first poll",
                procs=procs,
            )
            wait_for(lambda: db.holder_pid() == first.pid, "the first worker's lease", procs=procs)
            if workers == 2:
                second = Feedbot("worker", config, env, workdir / "worker-2.log")
                procs.append(second)
                wait_for(
                    lambda: "standing by" in second.log(),
                    "the second worker to stand by",
                    procs=procs,
                )
            result.pids = [p.pid for p in procs]
            time.sleep(2.0)  # a few polls at rest
            progress(f"delivery, {workers} worker(s): changing the page ({chats:,} chats)")
            with quiet_gc():
                source.set_body("/", with_new_statement(9100 + workers, f"{MARK} {workers}", LEAD))
                last_count, last_change, last_report = 0, time.monotonic(), time.monotonic()
                while True:
                    time.sleep(0.5)
                    if (pid := db.holder_pid()) is not None:
                        result.holders.add(pid)
                    sent = sent_ok(tg, MARK)
                    now = time.monotonic()
                    if sent != last_count:
                        last_count, last_change = sent, now
                    if now - last_report >= 15:
                        progress(f"delivery, {workers} worker(s): {sent:,}/{chats:,} sent")
                        last_report = now
                    if sent >= chats or not all(p.alive() for p in procs):
                        break
                    if now - last_change > STALL_SECONDS:
                        progress(f"no delivery for {STALL_SECONDS:.0f} s; giving up")
                        break
                time.sleep(3.0)  # more polls: time for a duplicate to show
            result.record_sends(tg, MARK)
            stop_all(procs)
            result.outbox = db.outbox_counts()
    finally:
        stop_all(procs)
        db.close()
    progress(
        f"delivery, {workers} worker(s): {len(result.ok_calls):,} sent,"
        f" {result.too_many} 429s, outbox {result.outbox}"
    )
    return result


def bench_delivery(b: Bench) -> None:
    chats = b.args.chats or (QUICK_CHATS if b.args.quick else FULL_CHATS)
    load_before = os.getloadavg()[0]
    runs = [run_delivery(b, workers, chats) for workers in (1, 2)]
    load_after = os.getloadavg()[0]
    low = TOKEN_LIMIT * RATE_FLOOR
    for r in runs:
        label = f"delivery, {r.workers} worker{'s' if r.workers > 1 else ''}, {r.chats:,} chats"
        rate = r.rate
        if rate is None:
            b.rows.append(Row(f"{label}: messages/s", "-", f"{low:.1f}-30/s", False))
        else:
            # Shown and judged to 0.1/s: the fake's arrival times carry a few ms of jitter.
            b.rows.append(
                Row(
                    f"{label}: messages/s",
                    f"{rate:.1f}/s (n={len(r.ok_calls):,}, {r.span:.1f} s)",
                    f"{low:.1f}-{TOKEN_LIMIT:.0f}/s (never above)",
                    low <= round(rate, 1) <= TOKEN_LIMIT,
                )
            )
        b.rows.append(Row(f"{label}: 429 answers", f"{r.too_many:,}", "0", r.too_many == 0))
        b.rows.append(Row(f"{label}: duplicates", f"{r.duplicates:,}", "0", r.duplicates == 0))
        b.rows.append(Row(f"{label}: missing", f"{r.missing:,}", "0", r.missing == 0))
        holders = ", ".join(
            "worker-1" if pid == r.pids[0] else f"pid {pid}" for pid in sorted(r.holders)
        )
        exact = "-" if rate is None else f"{rate:.3f}/s"
        b.notes.append(
            f"delivery, {r.workers} worker(s): rate {exact} unrounded; lease held by"
            f" {holders or '?'} throughout the broadcast; outbox after the run {r.outbox};"
            f" non-200 answers to the statement's sends: {r.failed_calls}"
        )
    one, two = runs[0].rate, runs[1].rate
    b.rows.append(
        Row(
            "delivery: rate with 2 workers / rate with 1",
            "-" if not (one and two) else f"{two / one:.3f}",
            "~1: failover, not speed",
        )
    )
    b.notes.append(
        f"delivery: 1-minute load average {load_before:.2f} before, {load_after:.2f} after."
        " The fake Telegram runs in this process and counts 30 sends per 0.95 s window; a"
        " sender held up by more than ~50 ms (other work on the CPUs) catches up in a burst"
        " it can be charged a 429 for, so a load well above 1 can show as a 429 and a"
        " lower rate."
    )


# --- section: takeover after kill -9 ---------------------------------------------------


@dataclass
class Takeover:
    lease: float  # kill -9 -> the stand-by holds the lease row
    poll: float  # kill -9 -> the stand-by has finished a poll
    delay: float  # how long after the stand-by stood by the holder was killed


def run_takeover_mode(b: Bench, same_host: bool, runs: int, rng: random.Random) -> list[Takeover]:
    label = "samehost" if same_host else "otherhost"
    workdir = b.tmp / f"takeover-{label}"
    database_url = b.pg.fresh(f"takeover_{label}")
    db = Db(database_url)
    results: list[Takeover] = []
    try:
        with FakeSource(root=FIXTURES / "site") as source, FakeTelegram(max_poll_wait=0.5) as tg:
            # The default lease settings and poll interval; only same_host_takeover is set.
            config = write_config(
                workdir / "feedbot.toml",
                source.url,
                database_url,
                worker={"same_host_takeover": same_host},
            )
            env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url}
            for n in range(runs):
                results.append(run_takeover(db, config, env, workdir / f"run-{n + 1}", rng))
                progress(
                    f"takeover, same_host_takeover = {str(same_host).lower()}, run {n + 1}:"
                    f" lease after {results[-1].lease:.1f} s, poll after {results[-1].poll:.1f} s"
                )
    finally:
        db.close()
    return results


def run_takeover(
    db: Db, config: Path, env: dict[str, str], workdir: Path, rng: random.Random
) -> Takeover:
    workdir.mkdir(parents=True)
    procs: list[Feedbot] = []
    try:
        polls_before = db.polls()
        holder = Feedbot("worker", config, env, workdir / "holder.log")
        procs.append(holder)
        wait_for(lambda: db.holder_pid() == holder.pid, "the first worker's lease", procs=procs)
        wait_for(lambda: db.polls() > polls_before, "the holder's first poll", procs=procs)
        standby = Feedbot("worker", config, env, workdir / "standby.log")
        procs.append(standby)
        wait_for(lambda: "standing by" in standby.log(), "the stand-by", procs=procs)
        # Kill at a random point of the holder's renewal cycle, as a crash would.
        delay = rng.uniform(0.0, DEFAULTS.renew_seconds)
        time.sleep(delay)
        polls_at_kill = db.polls()
        killed_at = time.monotonic()
        holder.kill()
        lease_at: float | None = None
        poll_at: float | None = None
        while lease_at is None or poll_at is None:
            now = time.monotonic()
            if lease_at is None and db.holder_pid() == standby.pid:
                lease_at = now
            if poll_at is None and db.polls() > polls_at_kill:
                poll_at = now
            if not standby.alive():
                raise RuntimeError(f"the stand-by exited:\n{standby.log()[-800:]}")
            if now - killed_at > TAKEOVER_TIMEOUT:
                raise RuntimeError(f"no takeover within {TAKEOVER_TIMEOUT:.0f} s")
            time.sleep(0.05)
        return Takeover(lease_at - killed_at, poll_at - killed_at, delay)
    finally:
        stop_all(procs)  # the stand-by releases the lease as it stops


def bench_takeover(b: Bench) -> None:
    runs = b.reps(FULL_RUNS, QUICK_RUNS)
    rng = random.Random(20200707)
    for same_host in (False, True):
        setting = f"same_host_takeover = {str(same_host).lower()}"
        where = "same host" if same_host else "different hosts"
        results = run_takeover_mode(b, same_host, runs, rng)
        for what, values in (
            ("stand-by holds the lease", [r.lease for r in results]),
            ("stand-by finished its first poll", [r.poll for r in results]),
        ):
            median = statistics.median(values)
            b.rows.append(
                Row(
                    f"takeover after kill -9 ({where}, {setting}): {what}",
                    f"{median:.1f} s (median of {len(values)};"
                    f" {min(values):.1f}-{max(values):.1f})",
                    f"< {TAKEOVER_TARGET:.0f} s",
                    median < TAKEOVER_TARGET,
                )
            )
        each = "; ".join(
            f"lease {r.lease:.1f} s, poll {r.poll:.1f} s (killed {r.delay:.1f} s after stand-by)"
            for r in results
        )
        b.notes.append(f"takeover, {setting}, each run: {each}")
    b.notes.append(
        f"takeover: default lease settings (lease_seconds {DEFAULTS.lease_seconds:g},"
        f" renew_seconds {DEFAULTS.renew_seconds:g}); the holder is killed at a random point"
        f" (0-{DEFAULTS.renew_seconds:g} s) after the stand-by first stood by. Times run from"
        " the SIGKILL to the first sight of the lease row naming the stand-by, and to the"
        " first new row in polls, read every 50 ms."
    )


# --- section: feedbot web on PostgreSQL and on SQLite ----------------------------------


def feedbot_poll(config: Path) -> None:
    """``feedbot poll`` once, as an operator would run it."""
    done = subprocess.run(
        [str(PYTHON), "-m", "feedbot", "--config", str(config), "poll"],
        cwd=ROOT,
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"feedbot poll exited with {done.returncode}: {done.stderr[-800:]}")


def fetch(url: str, etag: str | None = None) -> requests.Response | None:
    headers = {"Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    try:
        return requests.get(url, headers=headers, timeout=5)
    except requests.RequestException:
        return None


def bench_web(b: Bench) -> None:
    labels = ("requests/s, full answers (200)", "requests/s, conditional answers (304)")
    if shutil.which("wrk") is None:
        progress("web: wrk not found; install it with: apt-get update && apt-get install -y wrk")
        for label in labels:
            b.rows.append(Row(f"feedbot web on PostgreSQL: {label}", "-", "-", skipped=True))
        b.notes.append("web: skipped, wrk missing.")
        return
    seconds = 3 if b.args.quick else 10
    rounds = b.reps(3, 1)
    workdir = b.tmp / "web"
    stores = {
        "PostgreSQL": b.pg.fresh("web"),
        "SQLite": f"sqlite:///{workdir / 'sqlite' / 'feedbot.sqlite3'}",
    }
    procs: dict[str, Feedbot] = {}
    urls: dict[str, str] = {}
    try:
        with FakeSource(root=FIXTURES / "site") as source:
            for name, database_url in stores.items():
                folder = workdir / name.lower()
                config = write_config(folder / "feedbot.toml", source.url, database_url)
                progress(f"web: feedbot poll into {name}")
                feedbot_poll(config)  # migrates, polls, publishes into feed_documents
                port = free_port()
                write_config(folder / "feedbot.toml", source.url, database_url, port=port)
                procs[name] = Feedbot("web", config, {}, folder / "web.log")
                urls[name] = f"http://127.0.0.1:{port}/feeds/statements.atom"
        for name, url in urls.items():
            wait_for(
                lambda url=url: (r := fetch(url)) is not None and r.status_code == 200,
                f"feedbot web on {name}",
                procs=[procs[name]],
                interval=0.2,
            )
        answers = {name: fetch(url) for name, url in urls.items()}
        bodies = {name: r.content for name, r in answers.items() if r is not None}
        tags = {name: r.headers.get("ETag", "") for name, r in answers.items() if r is not None}
        pg_body, lite_body = bodies.get("PostgreSQL", b""), bodies.get("SQLite", b"")
        same = pg_body == lite_body and tags["PostgreSQL"] == tags["SQLite"] and bool(pg_body)
        conditional = {
            name: getattr(fetch(url, tags[name]), "status_code", None) for name, url in urls.items()
        }
        sha = {name: hashlib.sha256(body).hexdigest()[:16] for name, body in bodies.items()}
        b.rows.append(
            Row(
                "feedbot web: statements.atom from PostgreSQL = from SQLite (bytes, ETag)",
                (
                    f"identical, {len(pg_body):,} bytes, ETag {tags['PostgreSQL']}"
                    if same
                    else f"DIFFERENT: sha256 {sha}, ETags {tags}"
                ),
                "identical",
                same,
            )
        )
        all_304 = all(status == HTTPStatus.NOT_MODIFIED for status in conditional.values())
        b.rows.append(
            Row(
                "feedbot web: 304 to If-None-Match with the ETag (PostgreSQL, SQLite)",
                ", ".join(str(conditional[name]) for name in urls),
                "304, 304",
                all_304,
            )
        )
        load_before = os.getloadavg()[0]
        servers = {name: (url, procs[name].pid) for name, url in urls.items()}
        results = wrk_rounds(servers, tags, rounds, seconds, announce="web")
        load_after = os.getloadavg()[0]
    finally:
        stop_all(list(procs.values()))
    for kind, label in zip(("200", "304"), labels, strict=True):
        pg, lite = median_run(results["PostgreSQL", kind]), median_run(results["SQLite", kind])
        b.rows.append(
            Row(
                f"feedbot web on PostgreSQL: {label}, median of {rounds}",
                f"{pg.rps:,.0f} req/s = {pg.rps / lite.rps:.2f} x SQLite",
                f"SQLite: {lite.rps:,.0f} req/s",
            )
        )
        b.rows.append(
            Row(
                f"feedbot web on PostgreSQL: server CPU per request ({kind})",
                f"{pg.server_cpu_us:.0f} us",
                f"SQLite: {lite.server_cpu_us:.0f} us",
            )
        )
    shown = shlex.join(wrk_command(urls["PostgreSQL"], seconds, "<etag>"))
    digests = ", ".join(f"{name} {digest}" for name, digest in sha.items())
    b.notes.append(
        f"web: both stores filled by one `feedbot poll` of the fixture page (public_url"
        f" {PUBLIC_URL}); body sha256 {digests}. Each `feedbot web` holds the feeds in memory"
        f" and reads the database once a second. wrk command: {shown} (-H only for the 304 runs;"
        " a 1 s warm-up run precedes each)."
    )
    b.notes += round_notes("web", results)
    b.notes.append(
        f"web: 1-minute load average {load_before:.2f} before, {load_after:.2f} after"
        f" ({os.cpu_count()} CPUs shared by wrk, the server and the kernel's loopback)."
    )


# --- main ------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Bench], None]] = {
    "delivery": bench_delivery,
    "takeover": bench_takeover,
    "web": bench_web,
}


def describe_machine(pg_version: str) -> str:
    parts = [
        f"{os.cpu_count()} CPUs",
        f"Python {sys.version.split()[0]}",
        f"PostgreSQL {pg_version}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if shutil.which("wrk"):
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        version = re.search(r"wrk \S+", done.stdout + done.stderr)
        parts.append(version.group(0) if version else "wrk")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    quick = f"{QUICK_CHATS:,} chats, {QUICK_RUNS} takeover runs, one 3 s wrk round"
    parser = section_parser(__doc__, quick, SECTIONS)
    parser.add_argument("--chats", type=int, help="subscribed chats for delivery (overrides)")
    parser.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    chosen = [s for s in SECTIONS if not args.only or s in args.only]

    pg = Databases(args.pg)
    try:
        pg_version = pg.version()
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL at {args.pg} is not reachable: {exc.orig}", file=sys.stderr)
        print_table([Row(f"section {name}", "-", "-", skipped=True) for name in chosen], HEAD)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="feedbot-bench-scale-"))
    bench = Bench(args, tmp, pg)
    try:
        for name in chosen:
            progress(f"running {name}")
            try:
                RUNNERS[name](bench)
            except Exception as exc:  # a broken section must not hide the others' figures
                bench.rows.append(Row(f"{name}: error", f"{type(exc).__name__}", "-", False))
                bench.notes.append(f"{name}: ERROR {type(exc).__name__}: {exc}")
    finally:
        pg.drop_all()
        if args.keep:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    mode = "quick" if args.quick else "full"
    print(
        f"\nfeedbot {tree_state()}; scale-out benchmark ({mode}); {describe_machine(pg_version)}\n"
    )
    print_table(bench.rows, HEAD)
    print()
    for note in bench.notes:
        print(f"* {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
