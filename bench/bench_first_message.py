"""First-message benchmark: polls never wait for statement pages, whatever those pages do.

    .venv/bin/python bench/bench_first_message.py [--quick] [--only NAME] [--chats N]
                                                  [--before REV] [--keep]

The real service runs as a subprocess (``python -m feedbot --config CFG run``;
``poll_seconds = 1``, ``article_delay = 1``, the default full-text settings) with
400 subscribed private chats (100 with ``--quick``). The Bot API is a
``FakeTelegram`` enforcing Telegram's flood limits, and the source a
``FakeSource`` serving the fixture site; both run in this process, so the
source's request log and the fake's calls share one monotonic clock.

Four cases, one service each, differ only in what the statement pages do:
(a) they answer, (b) they hang for 30 s, (c) they answer 500, (d) their links
point at a closed port on this machine (``http://localhost:1/...``), so every
connection is refused. In each, the first poll fills the store; 3 s later, with
the first fill's statement pages in flight, a new statement appears on the page,
and a second one 20 s after that. For each statement the script finds the page
fetch that saw it in the source's request log and the first ``sendMessage`` of
it in the fake's log. Targets: the first message at most 2 s after that fetch,
and every chat reached within 60 s of each change.

Poll CPU: in case (a), once the statement pages are done, the service's CPU
(``/proc``) per poll over a quiet minute; the baseline is the same figure for
the tree before the change that took full texts off the poll's path
(``--before``, default ``1fe570b^``), written to a temporary folder with
``git archive`` and run the same way. Prints one table and notes, and exits 0;
see bench/README.md.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Measure the tree this script lives in, whatever the venv's editable install points at.
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.common import (  # noqa: E402
    FIXTURES,
    PROFILE,
    PYTHON,
    Row,
    add_statement,
    article_page,
    cpu_seconds,
    feedbot_service,
    fixture_home,
    log_tail,
    outbox_counts,
    print_table,
    progress,
    quiet_gc,
    section_parser,
    settings_sections,
    source_tree,
    statement_sends,
    subscribe_private_chats,
    toml_text,
    tree_state,
)
from bot.store import BotStore  # noqa: E402
from feeds.store import Store  # noqa: E402
from tests.support.fake_source import FakeSource  # noqa: E402
from tests.support.fake_telegram import FakeTelegram  # noqa: E402

HEAD = ("figure", "value", "baseline/target", "result")
CASES = {
    "answer": "(a) pages answer",
    "hang": "(b) pages hang 30 s",
    "fail": "(c) pages answer 500",
    "refused": "(d) pages refused",
}
SECTIONS = [*CASES, "cpu"]
FULL_CHATS, QUICK_CHATS = 400, 100
BEFORE_REV = "1fe570b^"  # the tree before "Polls never wait" (1fe570b)
FIRST_MESSAGE_TARGET = 2.0  # seconds after the page fetch that sees the statement
REACH_WINDOW = 60.0  # chats counted if reached within this long of the change
CPU_TOLERANCE = 1.2  # "unchanged": within 20 % of the baseline (noise of a busy 2-core box)
SETTLE = 3.0  # after the first fill: its statement pages are in flight at the change
HANG_SECONDS = 30
FIRST_FILL = [f"/fnapr/{n}" for n in range(6931, 6942)]
STORED_ON_FIRST_POLL = len(FIRST_FILL)
NEW = (9101, 9102)  # the two new statements' numbers
MARKS = ("Bench first-message statement one", "Bench first-message statement two")
LEAD = "A lead written for the first-message benchmark."
CLOSED_PORT = "http://localhost:1"  # nothing listens on port 1: connections are refused
IDLE_QUIET = 3.0  # no statement-page request for this long: the full texts are done


WALL_NOTE = """\
poll wall time: the polls table's duration_ms, from the poll's start, so waiting for the host
gate counts. The gate starts a request to the source's host no sooner than article_delay (1 s)
after the last one there ended, and the next poll is due 0.9-1.1 s after the last one ended
(10 % jitter): at poll_seconds = 1 about half the polls at rest wait up to 0.1 s (at least
50 ms once they wait), and a poll that follows or pre-empts a statement page waits up to 1 s.
At the default poll_seconds of 300 only the latter, and only while statement pages are due."""


@dataclass(frozen=True)
class Timing:
    chats: int
    gap: float  # seconds between the two page changes
    quiet: float  # the quiet window for poll CPU


@dataclass
class Quiet:
    """The service at rest: the page unchanged, every full text done."""

    tree: str
    seconds: float
    polls: int = 0
    cpu: float = 0.0
    durations_ms: list[int] = field(default_factory=list)

    @property
    def cpu_per_poll_ms(self) -> float | None:
        return self.cpu / self.polls * 1e3 if self.polls else None

    def describe(self) -> str:
        per = self.cpu_per_poll_ms
        if per is None:
            return "-"
        return f"{per:.1f} ms CPU/poll ({self.polls} polls in {self.seconds:.0f} s)"

    def wall(self) -> str:
        return describe_durations(self.durations_ms)


@dataclass
class CaseResult:
    key: str
    chats: int
    changed: list[float] = field(default_factory=list)  # monotonic time of each change
    seen: list[float | None] = field(default_factory=list)  # the page fetch that saw it
    first_sent: list[float | None] = field(default_factory=list)
    reached: list[int] = field(default_factory=list)  # chats within REACH_WINDOW
    duplicates: list[int] = field(default_factory=list)
    durations_ms: list[int] = field(default_factory=list)  # polls from the first change on
    poll_results: dict[str, int] = field(default_factory=dict)
    longest_gap: float | None = None  # between page fetches, from the first change on
    statement_requests: int = 0  # statement-page requests that reached the source
    too_many: int = 0
    outbox: dict[str, int] = field(default_factory=dict)
    quiet: Quiet | None = None
    error: str | None = None
    log: str = ""

    @property
    def label(self) -> str:
        return CASES[self.key]

    def after_fetch(self) -> list[float | None]:
        return [
            None if s is None or seen is None else s - seen
            for s, seen in zip(self.first_sent, self.seen, strict=True)
        ]

    def after_change(self) -> list[float | None]:
        return [
            None if s is None else s - c for s, c in zip(self.first_sent, self.changed, strict=True)
        ]

    def first_message_ok(self) -> bool:
        delays = self.after_fetch()
        return len(delays) == len(NEW) and all(
            d is not None and d <= FIRST_MESSAGE_TARGET for d in delays
        )

    def reach_ok(self) -> bool:
        return len(self.reached) == len(NEW) and all(n == self.chats for n in self.reached)

    def rows(self, baseline: CaseResult | None) -> list[Row]:
        label = self.label
        if self.error:
            return [Row(f"{label}: run", self.error, "-", False)]
        base = "-"
        if baseline is not None and baseline is not self and not baseline.error:
            base = f"(a): {describe_durations(baseline.durations_ms)}"
        gap = "-" if self.longest_gap is None else f"{self.longest_gap:.2f} s"
        reached = ", ".join(f"s{i + 1} {n}/{self.chats}" for i, n in enumerate(self.reached))
        return [
            Row(
                f"{label}: first message after the page fetch",
                per_statement(self.after_fetch()),
                f"<= {FIRST_MESSAGE_TARGET:.0f} s",
                self.first_message_ok(),
            ),
            Row(
                f"{label}: first message after the page change", per_statement(self.after_change())
            ),
            Row(
                f"{label}: chats reached within {REACH_WINDOW:.0f} s",
                reached or "-",
                "all",
                self.reach_ok(),
            ),
            Row(f"{label}: poll wall time", describe_durations(self.durations_ms), base),
            Row(f"{label}: longest gap between page fetches", gap),
        ]

    def notes(self) -> list[str]:
        lines = [
            f"{self.label}: polls from the first change on by result {self.poll_results};"
            f" statement-page requests that reached the source: {self.statement_requests};"
            f" duplicates {self.duplicates}; 429 answers {self.too_many}; outbox {self.outbox}"
        ]
        if self.error or not (self.first_message_ok() and self.reach_ok()):
            lines.append(f"{self.label}: the service's log ends:\n{indent(self.log)}")
        return lines


def per_statement(values: Sequence[float | None]) -> str:
    return ", ".join(
        f"s{i + 1} " + ("never" if v is None else f"{v:.2f} s") for i, v in enumerate(values)
    )


def describe_durations(durations_ms: Sequence[int]) -> str:
    if not durations_ms:
        return "-"
    median = statistics.median(durations_ms)
    return f"median {median:.0f} ms, max {max(durations_ms)} ms ({len(durations_ms)} polls)"


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# --- the source's pages ----------------------------------------------------------------


def etag_of(body: str) -> str:
    """The ETag FakeSource gives a body (sha1 of its bytes)."""
    return '"' + hashlib.sha1(body.encode()).hexdigest() + '"'


def home_pages(case: str) -> tuple[str, list[str]]:
    """The page before any change, then the page after each change (newest on top)."""
    home = fixture_home()
    if case == "refused":
        # Every statement link on the closed port, the first fill's included.
        home = re.sub(r'href="/fnapr/(\d+)"', rf'href="{CLOSED_PORT}/fnapr/\1"', home)
    pages, page = [], home
    for n, mark in zip(NEW, MARKS, strict=True):
        href = f"{CLOSED_PORT}/fnapr/{n}" if case == "refused" else None
        page = add_statement(page, n, mark, LEAD, href)
        pages.append(page)
    return home, pages


def prepare_source(source: FakeSource, case: str, home: str) -> None:
    """What the statement pages do in ``case``; the home page before any change."""
    source.set_body("/", home)
    new_pages = [f"/fnapr/{n}" for n in NEW]
    for path in FIRST_FILL + new_pages:
        if case == "hang":
            source.misbehave(path, "slow", seconds=HANG_SECONDS)
        elif case == "fail":
            source.misbehave(path, "status", status=500)
    if case == "answer":
        for path, mark in zip(new_pages, MARKS, strict=True):
            text = ["The full text, first paragraph.", "The full text, second paragraph."]
            source.set_body(path, article_page(mark, "07.07.2020", text))


def page_fetches(source: FakeSource) -> list[Any]:
    return [r for r in source.requests if r.path == "/" and r.method == "GET"]


def fetch_that_saw(source: FakeSource, body: str, changed: float) -> float | None:
    """Arrival time of the page fetch that saw ``body`` first: the one before the first
    fetch that sends ``body``'s ETag back (a poll stores the ETag of the page it stored).
    Without one, the first fetch after the change."""
    fetches = page_fetches(source)
    tag = etag_of(body)
    for before, after in itertools.pairwise(fetches):
        if tag in after.headers.get("If-None-Match", "") and before.time >= changed - 0.5:
            return float(before.time)
    later = [r.time for r in fetches if r.time >= changed]
    return float(later[0]) if later else None


def statement_requests(source: FakeSource) -> int:
    return sum(1 for r in source.requests if r.path.startswith("/fnapr/"))


# --- the service -----------------------------------------------------------------------


def bench_profile(folder: Path, profile: Path = PROFILE) -> Path:
    """The source profile with ``localhost`` allowed for statement pages: feedbot refuses
    links off the allowed hosts before connecting, and case (d) is about a refused
    connection. The extra host changes nothing for the other cases."""
    text = profile.read_text("utf-8")
    edited = text.replace("allowed_hosts = [", 'allowed_hosts = ["localhost", ', 1)
    if edited == text:
        raise RuntimeError(f"{profile}: no allowed_hosts list to extend")
    path = folder / profile.name
    path.write_text(edited, "utf-8")
    return path


def write_config(workdir: Path, source_url: str, profile: Path) -> tuple[Path, str]:
    """A settings file under ``workdir``: poll every second, the statement pages politely
    (``article_delay`` 1 s, the default retries and full-text settings); its database URL."""
    database_url = f"sqlite:///{workdir / 'feedbot.sqlite3'}"
    sections = settings_sections(
        source_url, database_url, workdir / "feeds", poll_seconds=1, profile=profile
    )
    sections["fetch"] = {"allow_private_addresses": True, "article_delay": 1.0}
    config = workdir / "feedbot.toml"
    config.write_text(toml_text(sections), "utf-8")
    return config, database_url


def migrate_and_subscribe(database_url: str, chats: int, tree: Path) -> None:
    """The database as ``tree``'s code makes it, with ``chats`` private subscribers."""
    if tree == ROOT:
        store = Store(database_url)
        store.migrate()
        BotStore(store.engine).migrate()
        store.close()
    else:  # an older tree migrates with its own code and migrations
        script = (
            "import sys\nfrom feeds.store import Store\nfrom bot.store import BotStore\n"
            "store = Store(sys.argv[1]); store.migrate(); BotStore(store.engine).migrate()\n"
            "store.close()\n"
        )
        cmd = [str(PYTHON), "-c", script, database_url]
        subprocess.run(cmd, cwd=tree, check=True, capture_output=True)
    engine = sa.create_engine(database_url)
    try:
        subscribe_private_chats(engine, chats)
    finally:
        engine.dispose()


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"feedbot run exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Database:
    """The benchmark's read-only look into the service's SQLite file."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def stored(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM statements")).scalar_one())

    def last_poll_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM polls")).scalar_one())

    def polls_after(self, poll_id: int) -> list[tuple[str, int]]:
        """(result, duration_ms) of the polls recorded after ``poll_id``."""
        query = sa.text("SELECT result, duration_ms FROM polls WHERE id > :id ORDER BY id")
        with self.engine.connect() as conn:
            return [(str(r), int(d)) for r, d in conn.execute(query, {"id": poll_id})]

    def close(self) -> None:
        self.engine.dispose()


def wait_for_idle(source: FakeSource, proc: subprocess.Popen[Any], pages: Sequence[str]) -> None:
    """Until every one of ``pages`` was asked for and no statement page for a while."""

    def idle() -> bool:
        requests = source.requests
        asked = {r.path for r in requests}
        pages_at = [r.time for r in requests if r.path.startswith("/fnapr/")]
        quiet = not pages_at or time.monotonic() - pages_at[-1] >= IDLE_QUIET
        return asked.issuperset(pages) and quiet

    wait_until(idle, proc, "the statement pages to be done")


def measure_quiet(
    tree: str, source: FakeSource, proc: subprocess.Popen[Any], db: Database, seconds: float
) -> Quiet:
    """CPU per poll and the polls' own durations over ``seconds`` of an unchanged page."""
    quiet = Quiet(tree, seconds)
    fetches, first_poll = len(page_fetches(source)), db.last_poll_id()
    cpu = cpu_seconds(proc.pid)
    time.sleep(seconds)
    quiet.cpu = cpu_seconds(proc.pid) - cpu
    quiet.polls = len(page_fetches(source)) - fetches
    quiet.durations_ms = [d for _, d in db.polls_after(first_poll)]
    return quiet


# --- the cases -------------------------------------------------------------------------


def run_case(case: str, timing: Timing, tmp: Path, measure_cpu: bool) -> CaseResult:
    result = CaseResult(case, timing.chats)
    workdir = tmp / case
    workdir.mkdir(parents=True)
    log_path = workdir / "feedbot.log"
    home, pages = home_pages(case)
    with FakeSource(root=FIXTURES / "site") as source, FakeTelegram(max_poll_wait=0.5) as tg:
        prepare_source(source, case, home)
        config, database_url = write_config(workdir, source.url, bench_profile(workdir))
        migrate_and_subscribe(database_url, timing.chats, ROOT)
        db = Database(database_url)
        try:
            with feedbot_service(config, log_path, tg) as proc:
                wait_until(lambda: bool(tg.calls_of("getUpdates")), proc, "the bot started")
                wait_until(lambda: db.stored() >= STORED_ON_FIRST_POLL, proc, "the first poll")
                time.sleep(SETTLE)  # the first fill's statement pages are under way
                progress(f"{case}: changing the page")
                first_poll = db.last_poll_id()
                with quiet_gc():
                    change_page(source, pages, timing.gap, result)
                    wait_for_reach(tg, proc, result)
                # Read before the stop: a poll cut short by the stop is no poll of the case.
                record_stretch(result, source, db, first_poll)
                if measure_cpu:
                    wait_for_idle(source, proc, [*FIRST_FILL, *(f"/fnapr/{n}" for n in NEW)])
                    progress(f"{case}: quiet for {timing.quiet:.0f} s (poll CPU)")
                    result.quiet = measure_quiet(tree_state(), source, proc, db, timing.quiet)
        except RuntimeError as exc:
            result.error = str(exc)
        finally:
            result.outbox = outbox_counts(db.engine) if result.changed else {}
            db.close()
        record_sends(result, tg, source, pages)
    result.log = log_tail(log_path, 25)
    progress(
        f"{case}: first message after the fetch {per_statement(result.after_fetch())};"
        f" reached {result.reached}"
    )
    return result


def change_page(source: FakeSource, pages: Sequence[str], gap: float, result: CaseResult) -> None:
    """Serve each of ``pages`` in turn, ``gap`` seconds apart, noting when."""
    for n, page in enumerate(pages):
        if n:
            time.sleep(max(0.0, result.changed[0] + n * gap - time.monotonic()))
        result.changed.append(time.monotonic())
        source.set_body("/", page)


def record_stretch(result: CaseResult, source: FakeSource, db: Database, first_poll: int) -> None:
    """The polls, page fetches and statement-page requests from the first change to now."""
    polls = db.polls_after(first_poll)
    result.durations_ms = [d for _, d in polls]
    result.poll_results = dict(sorted(Counter(r for r, _ in polls).items()))
    times = [r.time for r in page_fetches(source) if r.time >= result.changed[0]]
    result.longest_gap = max((b - a for a, b in itertools.pairwise(times)), default=None)
    result.statement_requests = statement_requests(source)


def wait_for_reach(tg: FakeTelegram, proc: subprocess.Popen[Any], result: CaseResult) -> None:
    """Until every chat has both statements, the service exits, or the last change is
    ``REACH_WINDOW`` old."""
    deadline = result.changed[-1] + REACH_WINDOW
    while time.monotonic() < deadline and proc.poll() is None:
        done = all(
            len({c.chat_id for c in statement_sends(tg, mark) if c.status == HTTPStatus.OK})
            >= result.chats
            for mark in MARKS
        )
        if done:
            return
        time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError(f"feedbot run exited with {proc.returncode} during the broadcasts")


def record_sends(
    result: CaseResult, tg: FakeTelegram, source: FakeSource, pages: list[str]
) -> None:
    result.too_many = tg.too_many
    for mark, changed, page in zip(MARKS, result.changed, pages, strict=False):
        ok = [c for c in statement_sends(tg, mark) if c.status == HTTPStatus.OK]
        result.first_sent.append(min((c.at for c in ok), default=None))
        result.seen.append(fetch_that_saw(source, page, changed))
        in_time = {c.chat_id for c in ok if c.at <= changed + REACH_WINDOW}
        result.reached.append(sum(1 for chat in range(1, result.chats + 1) if chat in in_time))
        per_chat = Counter(c.chat_id for c in ok)
        result.duplicates.append(sum(n - 1 for n in per_chat.values()))


# --- the baseline: the tree before the change ------------------------------------------


def run_before(rev: str, timing: Timing, tmp: Path) -> Quiet | str:
    """The quiet window on the tree before the change, set up as case (a) (no page
    change: the figure is the poll at rest). A string says why it could not run."""
    workdir = tmp / "before"
    try:
        tree, commit = source_tree(rev, workdir / "tree")
    except subprocess.CalledProcessError as exc:
        return f"cannot write {rev}: {exc.stderr.decode(errors='replace').strip()}"
    log_path = workdir / "feedbot.log"
    with FakeSource(root=FIXTURES / "site") as source, FakeTelegram(max_poll_wait=0.5) as tg:
        profile = tree / "config" / "sources" / PROFILE.name
        config, database_url = write_config(workdir, source.url, profile)
        try:
            migrate_and_subscribe(database_url, timing.chats, tree)
        except subprocess.CalledProcessError as exc:
            return f"{commit}: migration failed: {exc.stderr.decode(errors='replace')[-300:]}"
        db = Database(database_url)
        try:
            with feedbot_service(config, log_path, tg, tree=tree) as proc:
                wait_until(lambda: bool(tg.calls_of("getUpdates")), proc, "the bot started")
                wait_until(lambda: db.stored() >= STORED_ON_FIRST_POLL, proc, "the first poll")
                wait_for_idle(source, proc, FIRST_FILL)
                progress(f"before ({commit}): quiet for {timing.quiet:.0f} s (poll CPU)")
                return measure_quiet(commit, source, proc, db, timing.quiet)
        except RuntimeError as exc:
            return f"{commit}: {exc}\n{indent(log_tail(log_path))}"
        finally:
            db.close()


def cpu_rows(quiet: Quiet | None, before: Quiet | str | None) -> list[Row]:
    if quiet is None:
        return []
    base = before if isinstance(before, Quiet) else None
    now, then = quiet.cpu_per_poll_ms, base.cpu_per_poll_ms if base else None
    if now is None or then is None:
        target, ok = (f"baseline failed: {before}" if isinstance(before, str) else "-"), None
    else:
        target = f"<= {CPU_TOLERANCE:.1f} x {then:.1f} ms ({base.tree if base else ''})"
        ok = now <= CPU_TOLERANCE * then
    label = f"poll CPU at rest, (a) after the broadcasts, {quiet.seconds:.0f} s"
    rows = [Row(label, quiet.describe(), target, ok)]
    if base is not None:
        ratio = f"; ratio {now / then:.2f}" if now and then else ""
        rows.append(Row("  baseline", base.describe() + ratio, f"tree {base.tree}"))
        rows.append(Row("poll wall time at rest", quiet.wall(), f"{base.wall()} ({base.tree})"))
    return rows


# --- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = section_parser(
        __doc__,
        f"{QUICK_CHATS} chats, 10 s between the changes, 15 s at rest (about 2.5 minutes)",
        SECTIONS,
    )
    parser.add_argument("--chats", type=int, help="number of subscribed chats (overrides)")
    parser.add_argument(
        "--before", default=BEFORE_REV, metavar="REV", help="the baseline tree for poll CPU"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    timing = Timing(
        chats=args.chats or (QUICK_CHATS if args.quick else FULL_CHATS),
        gap=10.0 if args.quick else 20.0,
        quiet=15.0 if args.quick else 60.0,
    )
    sections = args.only or SECTIONS
    cases = [c for c in CASES if c in sections or (c == "answer" and "cpu" in sections)]

    tmp = Path(tempfile.mkdtemp(prefix="feedbot-bench-first-"))
    started = time.monotonic()
    results: list[CaseResult] = []
    before: Quiet | str | None = None
    try:
        for case in cases:
            results.append(run_case(case, timing, tmp, "cpu" in sections and case == "answer"))
        if "cpu" in sections:
            before = run_before(args.before, timing, tmp)
    finally:
        if args.keep:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    baseline = next((r for r in results if r.key == "answer"), None)
    rows: list[Row] = []
    for r in results:
        rows += r.rows(baseline)
    quiet = baseline.quiet if baseline else None
    rows += cpu_rows(quiet, before)

    print(
        f"\nfeedbot {tree_state()}; {timing.chats} chats; poll_seconds 1, article_delay 1 s;"
        f" changes {timing.gap:.0f} s apart; took {time.monotonic() - started:.0f} s\n"
    )
    print_table(rows, HEAD)
    print()
    for r in results:
        for line in r.notes():
            print(line)
    print(WALL_NOTE)
    if isinstance(before, str):
        print(f"baseline: {before}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
