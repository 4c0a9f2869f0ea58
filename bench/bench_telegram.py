"""Broadcast benchmark: one new statement to every subscriber through ``feedbot run``.

    .venv/bin/python bench/bench_telegram.py [--quick] [--chats N] [--only free|paid]
                                             [--py-spy PATH] [--keep]

The real service runs as a subprocess (``python -m feedbot --config CFG run``) with
its SQLite file in a temporary folder. The Bot API is a ``FakeTelegram`` in
this process, enforcing Telegram's flood limits with real 429s (30/s overall,
1/s per private chat, 20/min per group; 1,000/s for ``allow_paid_broadcast``),
and the source is a ``FakeSource`` serving the fixture site.

For each run (``free``: the normal 30/s limit; ``paid``: ``[telegram]
paid_broadcast = true``, 1,000/s):

1. 10,000 private chats (1,000 with ``--quick``) are subscribed directly in the
   database before the service starts (counters off, so the daily counters do
   not interfere);
2. the first poll fills the store (11 statements, nobody notified);
3. one ``li.news-item`` is added to the page; the next poll stores it and
   queues it for every chat;
4. the rate is measured from the first successful ``sendMessage`` of that
   statement to the last, on the fake's own arrival times:
   ``(n - 1) / (t_last - t_first)``;
5. ``VmHWM`` (peak RSS) of the service is read from ``/proc`` before it is
   stopped; ``VmRSS`` is also read once it is idle, before the page changes.

Two info rows measure ceilings without feedbot, from a separate process and
with the fake's limits off: PTB's ``Bot.send_message`` alone (the client stack
feedbot sends with), and a plain aiohttp client (what the fake itself takes).

``--py-spy PATH`` attaches py-spy (``--gil``: samples of the thread holding the
GIL) to the service from the idle point to the end of the run and prints where
its time went. Prints one table and exits 0: it is a benchmark, not a test.
The full run takes about seven minutes (10,000 messages at 30/s); see
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Measure the tree this script lives in, whatever the venv's editable install points at.
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.common import (  # noqa: E402
    FIXTURES,
    PYTHON,
    BroadcastFigures,
    Row,
    cpu_seconds,
    outbox_counts,
    print_table,
    progress,
    quiet_gc,
    sent_ok,
    settings_sections,
    subscribe_private_chats,
    toml_text,
    tree_state,
    with_new_statement,
)
from bot.store import BotStore  # noqa: E402
from feeds.store import Store  # noqa: E402
from tests.support.fake_source import FakeSource  # noqa: E402
from tests.support.fake_telegram import Call, FakeTelegram  # noqa: E402

HEAD = ("figure", "value", "target", "result")
FULL_CHATS, QUICK_CHATS = 10_000, 1_000
FREE_LIMIT, PAID_LIMIT = 30.0, 1000.0
RATE_TARGET = 0.95  # of the limit
RSS_TARGET_MB = 120.0
STORED_ON_FIRST_POLL = 11
MARK = "Benchmark broadcast statement"
LEAD = "A lead for the broadcast benchmark."
STALL_SECONDS = 60.0  # no new delivery for this long: give up waiting
CEILING_MESSAGES, CEILING_CONCURRENCY = 5_000, 32  # 32: the sender's max_in_flight

# Ceiling clients, run as separate processes so that they do not share a GIL
# with the fake. Each prints "messages/s client-CPU-ms-per-message".
PTB_CLIENT = """
import asyncio, sys, time
from telegram import Bot
from telegram.request import HTTPXRequest

async def main(api_url, token, count, concurrency):
    # The request settings of bot/telegram.py; no rate limiter, no database.
    request = HTTPXRequest(connection_pool_size=64, pool_timeout=30)
    async with Bot(token, base_url=api_url, request=request) as bot:
        chats = iter(range(1, count + 1))
        async def worker():
            for chat_id in chats:
                await bot.send_message(chat_id, "ceiling", allow_paid_broadcast=True)
        start, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.monotonic() - start, time.process_time() - cpu
        print(f"{count / wall:.1f} {cpu / count * 1e3:.3f}", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""
AIOHTTP_CLIENT = """
import asyncio, sys, time
import aiohttp

async def main(api_url, token, count, concurrency):
    url = f"{api_url}{token}/sendMessage"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        chats = iter(range(1, count + 1))
        async def worker():
            for chat_id in chats:
                form = {"chat_id": str(chat_id), "text": "ceiling", "allow_paid_broadcast": "true"}
                async with session.post(url, data=form) as response:
                    assert response.status == 200, response.status
                    await response.json()
        start, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.monotonic() - start, time.process_time() - cpu
        print(f"{count / wall:.1f} {cpu / count * 1e3:.3f}", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


# --- results ---------------------------------------------------------------------------


@dataclass
class Broadcast(BroadcastFigures):
    """What one run of ``feedbot run`` delivered, as the fake Bot API saw it."""

    name: str
    chats: int
    limit: float
    ok_calls: list[Call] = field(default_factory=list)  # successful sends of the statement
    failed_calls: int = 0  # non-200 answers to sends of the statement (429s included)
    too_many: int = 0  # every 429 of the run, whatever the method
    first_send_after: float | None = None  # seconds from the page change to the first send
    idle_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    cpu_seconds: float | None = None  # CPU of the service from the page change to the end
    outbox: dict[str, int] = field(default_factory=dict)
    profile: str | None = None

    def cpu_per_message(self) -> str:
        if self.cpu_seconds is None or not self.ok_calls:
            return "-"
        per = self.cpu_seconds / len(self.ok_calls)
        # One Python process, one GIL: at most 1/per messages a second on any machine
        # whose cores are as fast as this one's.
        return f"{per * 1e3:.2f} ms (one core: <= {1 / per:,.0f}/s)"

    def rows(self) -> list[Row]:
        label = f"{self.name}: {self.chats:,} chats"
        rate = self.rate
        if rate is None:
            rate_row = Row(f"{label}, rate vs {self.limit:,.0f}/s", "-", "", False)
        else:
            share = rate / self.limit
            rate_row = Row(
                f"{label}, rate vs {self.limit:,.0f}/s",
                f"{rate:,.1f}/s = {share:.1%} (n={len(self.ok_calls):,}, {self.span:.1f} s)",
                f">= {RATE_TARGET:.0%}",
                share >= RATE_TARGET,
            )
        first = self.first_send_after
        return [
            rate_row,
            Row(f"{label}, 429 answers", f"{self.too_many:,}", "0", self.too_many == 0),
            Row(f"{label}, duplicates", f"{self.duplicates:,}", "0", self.duplicates == 0),
            Row(f"{label}, missing", f"{self.missing:,}", "0", self.missing == 0),
            Row(
                f"{label}, first send after the page change",
                "-" if first is None else f"{first:.2f} s",
            ),
            Row(f"{label}, service CPU per message", self.cpu_per_message()),
        ]


# --- the service and its fakes ---------------------------------------------------------


def write_config(path: Path, source_url: str, workdir: Path, paid: bool) -> Path:
    """A settings file as an operator would write it, everything under ``workdir``."""
    database_url = f"sqlite:///{workdir / 'feedbot.sqlite3'}"
    sections = settings_sections(source_url, database_url, workdir / "feeds", poll_seconds=1)
    sections["telegram"] = {"paid_broadcast": paid}
    path.write_text(toml_text(sections), "utf-8")
    return path


def subscribe_chats(database_url: str, count: int) -> None:
    """Migrate, then insert ``count`` private subscribers in one transaction."""
    store = Store(database_url)
    try:
        store.migrate()
        BotStore(store.engine).migrate()
        subscribe_private_chats(store.engine, count)
    finally:
        store.close()


def memory_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of a process, in MB."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024  # kB
    return values


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, grace: float = 30) -> None:
    """A signal (SIGINT: the service shuts down cleanly), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"feedbot run exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def service(workdir: Path, config: Path, tg: FakeTelegram) -> Iterator[subprocess.Popen[bytes]]:
    # Settings come from the file and the two variables below only.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEEDBOT_", "TELEGRAM_")) and k not in ("PORT", "DATABASE_URL")
    }
    env.update(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_API_URL=tg.api_url)
    cmd = [str(PYTHON), "-m", "feedbot", "--config", str(config), "run"]
    with (workdir / "feedbot.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            yield proc
        finally:
            stop_process(proc)


def run_broadcast(name: str, chats: int, tmp: Path, py_spy: str | None) -> Broadcast:
    paid = name == "paid"
    limit = PAID_LIMIT if paid else FREE_LIMIT
    result = Broadcast(name, chats, limit)
    workdir = tmp / name
    workdir.mkdir(parents=True)
    database_url = f"sqlite:///{workdir / 'feedbot.sqlite3'}"
    spy_out = workdir / "py-spy.txt"
    with FakeSource(root=FIXTURES / "site") as source, FakeTelegram(max_poll_wait=0.5) as tg:
        config = write_config(workdir / "feedbot.toml", source.url, workdir, paid)
        subscribe_chats(database_url, chats)
        engine = sa.create_engine(database_url)

        def stored() -> int:
            with engine.connect() as conn:
                query = sa.text("SELECT count(*) FROM statements")
                return int(conn.execute(query).scalar_one())

        try:
            with service(workdir, config, tg) as proc, contextlib.ExitStack() as stack:
                wait_until(lambda: bool(tg.calls_of("getUpdates")), proc, "the bot started")
                wait_until(lambda: stored() >= STORED_ON_FIRST_POLL, proc, "the first poll")
                time.sleep(3.0)  # a few polls at rest
                result.idle_rss_mb = memory_mb(proc.pid)["VmRSS"]
                progress(f"{name}: idle, {result.idle_rss_mb:.1f} MB RSS; changing the page")
                if py_spy:
                    spy = start_py_spy(py_spy, proc.pid, spy_out)
                    stack.callback(stop_process, spy, signal.SIGINT, 30)
                stack.enter_context(quiet_gc())

                cpu_before = cpu_seconds(proc.pid)
                changed_at = time.monotonic()
                source.set_body("/", with_new_statement(9001, f"{MARK} {name}", LEAD))
                wait_for_deliveries(tg, proc, name, chats, changed_at + chats / limit)
                time.sleep(3.0)  # more polls: time for a duplicate to show
                if proc.poll() is None:
                    result.peak_rss_mb = memory_mb(proc.pid)["VmHWM"]
                    result.cpu_seconds = cpu_seconds(proc.pid) - cpu_before
        finally:
            result.outbox = outbox_counts(engine)
            engine.dispose()
        result.record_sends(tg, MARK)
        if result.ok_calls:
            result.first_send_after = min(c.at for c in result.ok_calls) - changed_at
    if py_spy and spy_out.exists():
        result.profile = summarise_py_spy(spy_out)
    progress(
        f"{name}: {len(result.ok_calls):,} sent, {result.too_many} 429s, outbox {result.outbox}"
    )
    return result


def wait_for_deliveries(
    tg: FakeTelegram, proc: subprocess.Popen[Any], name: str, chats: int, expected_end: float
) -> None:
    """Until every chat has the statement, the service exits, or deliveries stall."""
    last_count, last_change, last_report = 0, time.monotonic(), 0.0
    while True:
        time.sleep(1.0)
        sent = sent_ok(tg, MARK)
        now = time.monotonic()
        if sent != last_count:
            last_count, last_change = sent, now
        if now - last_report >= 15:
            eta = max(0.0, expected_end - now)
            progress(f"{name}: {sent:,}/{chats:,} sent (~{eta:.0f} s to go)")
            last_report = now
        if sent >= chats or proc.poll() is not None:
            return
        if now - last_change > STALL_SECONDS:
            progress(f"{name}: no delivery for {STALL_SECONDS:.0f} s; giving up")
            return


# --- ceilings without feedbot ----------------------------------------------------------


def ceiling(client: str) -> tuple[float, float] | None:
    """(messages/s, client CPU ms per message) of one client against a fake with no limits."""
    with FakeTelegram(global_per_sec=None, paid_per_sec=None) as tg, quiet_gc():
        args = [tg.api_url, tg.token, str(CEILING_MESSAGES), str(CEILING_CONCURRENCY)]
        done = subprocess.run(
            [str(PYTHON), "-c", client, *args],
            cwd=ROOT,
            env={**os.environ, "PTB_TIMEDELTA": "true"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        progress(f"ceiling client failed: {done.stderr.strip()[-500:]}")
        return None
    rate, cpu_ms = done.stdout.split()
    return float(rate), float(cpu_ms)


# --- py-spy ----------------------------------------------------------------------------

# Where a sample's innermost frame lives → what to call that time.
LIBRARIES = (
    ("HTTP client (httpx, httpcore, anyio, h11)", ("httpx/", "httpcore/", "anyio/", "h11/")),
    ("python-telegram-bot", ("telegram/",)),
    ("SQLAlchemy + sqlite3", ("sqlalchemy/", "sqlite3/")),
    ("import machinery (failed imports)", ("<frozen importlib",)),
    ("asyncio, to_thread, executor", ("asyncio/", "concurrent/", "threading.py")),
    ("feedbot (feedbot/, bot/, feeds/)", ("feedbot/", "bot/", "feeds/")),
)


def start_py_spy(py_spy: str, pid: int, out: Path) -> subprocess.Popen[bytes]:
    cmd = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--gil", "--threads"]
    cmd += ["--nonblocking", "--format", "raw", "--output", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    return spy


# Frames every sample of a thread passes through: left out of the inclusive listing.
PLUMBING = ("threading.py", "concurrent/futures/", "<frozen runpy>", "feedbot/__main__.py")
PLUMBING += (
    "main (feedbot/cli.py)",
    "cmd_service (feedbot/cli.py)",
    "serve_forever (",
    "Runner.run (",
)


def summarise_py_spy(path: Path, top: int = 30) -> str:
    """Shares of py-spy's collapsed stacks: by innermost library, inclusive and own by frame."""
    total = 0
    libraries: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text("utf-8", "replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        n = int(count)
        total += n
        thread, *frames = stack.split(";")
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames]
        worker = any(f.startswith("_worker (concurrent/futures/thread.py") for f in frames)
        threads["to_thread workers" if worker else thread.partition(": ")[2] or thread] += n
        for frame in set(frames):
            if not any(p in frame for p in PLUMBING):
                inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
        libraries[_library(frames)] += n
    if not total:
        return "(no samples)"
    lines = [f"{total:,} samples of the thread holding the GIL, 200/s"]
    lines += ["by thread:"] + [f"  {n / total:6.1%}  {k}" for k, n in threads.most_common(8)]
    lines += ["by innermost library:"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in libraries.most_common()]
    lines += [f"inclusive, top {top} frames:"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in inclusive.most_common(top)]
    lines += [f"own time, top {top // 2} frames:"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in own.most_common(top // 2)]
    return "\n".join(lines)


def _library(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for name, markers in LIBRARIES:
            if any(m in frame for m in markers):
                return name
    return "other"


# --- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CHATS:,} chats")
    parser.add_argument("--chats", type=int, help="number of subscribed chats (overrides)")
    parser.add_argument("--only", choices=["free", "paid"], action="append", help="repeatable")
    parser.add_argument("--py-spy", metavar="PATH", help="profile the service with this py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    chats = args.chats or (QUICK_CHATS if args.quick else FULL_CHATS)
    runs = args.only or ["free", "paid"]

    tmp = Path(tempfile.mkdtemp(prefix="feedbot-bench-tg-"))
    results: list[Broadcast] = []
    ceilings: dict[str, tuple[float, float] | None] = {}
    try:
        for name in runs:
            results.append(run_broadcast(name, chats, tmp, args.py_spy))
        if "paid" in runs:
            progress("ceilings without feedbot")
            ceilings["PTB Bot.send_message alone"] = ceiling(PTB_CLIENT)
            ceilings["plain aiohttp client"] = ceiling(AIOHTTP_CLIENT)
    finally:
        if args.keep:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows: list[Row] = []
    for r in results:
        rows += r.rows()
    for r in results:
        label = f"memory ({r.name} run, {r.chats:,} subscribers)"
        idle = "-" if r.idle_rss_mb is None else f"{r.idle_rss_mb:.1f} MB"
        rows.append(Row(f"{label}: VmRSS at idle", idle))
        peak = r.peak_rss_mb
        rows.append(
            Row(
                f"{label}: VmHWM after the broadcast",
                "-" if peak is None else f"{peak:.1f} MB",
                f"< {RSS_TARGET_MB:.0f} MB",
                peak is not None and peak < RSS_TARGET_MB,
            )
        )
    for client, figures in ceilings.items():
        value = "-" if figures is None else f"{figures[0]:,.0f}/s, {figures[1]:.2f} ms CPU/msg"
        label = f"ceiling, fake limits off: {client}, {CEILING_CONCURRENCY} at a time"
        rows.append(Row(label, value))

    print(f"\nfeedbot {tree_state()}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}\n")
    print_table(rows, HEAD)
    print()
    for r in results:
        print(
            f"{r.name}: outbox after the run {r.outbox}; non-200 answers to the statement's"
            f" sends: {r.failed_calls}"
        )
    for r in results:
        if r.profile:
            print(f"\n--- py-spy of feedbot run ({r.name}) ---\n{r.profile}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
