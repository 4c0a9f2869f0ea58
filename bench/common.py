"""What the benchmark scripts share: paths, process CPU, wrk runs, the table, broadcast figures.

Imported by ``bench_feeds.py``, ``bench_telegram.py`` and ``bench_scale.py`` as
``bench.common`` (each script puts the project root on ``sys.path`` first).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from bot.schema import follows, outbox, subscribers

if TYPE_CHECKING:
    from tests.support.fake_telegram import Call, FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
# Children (the service, the fake source, ceiling clients) run on the project's venv.
PYTHON = ROOT / ".venv" / "bin" / "python"
FIXTURES = ROOT / "tests" / "fixtures"
PROFILE = ROOT / "config" / "sources" / "embassy-uk.toml"
PUBLIC_URL = "http://feeds.test"
WRK_THREADS, WRK_CONNECTIONS = 1, 32


# --- the table -------------------------------------------------------------------------

RESULTS: dict[bool | None, str] = {True: "PASS", False: "FAIL", None: "info"}


class TableRow(Protocol):
    """Anything :func:`print_table` can print: one cell a column."""

    def cells(self) -> list[str]: ...


@dataclass
class Row:
    """A row of a ``figure | value | target | result`` table."""

    figure: str
    value: str
    target: str = "-"  # the target, or the baseline the value stands beside
    ok: bool | None = None  # None: for information only
    skipped: bool = False

    def cells(self) -> list[str]:
        result = "SKIP" if self.skipped else RESULTS[self.ok]
        return [self.figure, self.value, self.target, result]


def print_table(rows: Sequence[TableRow], head: Sequence[str]) -> None:
    """Print ``rows`` under ``head`` in left-aligned columns, a rule under the head."""
    table = [list(head)] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    for n, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def section_parser(
    doc: str | None, quick_help: str, sections: Sequence[str]
) -> argparse.ArgumentParser:
    """A parser with ``--quick`` and ``--only NAME`` (repeatable, one of ``sections``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--only",
        action="append",
        choices=sections,
        metavar="NAME",
        help=f"run only this section (repeatable): {', '.join(sections)}",
    )
    return parser


def progress(message: str) -> None:
    """A time-stamped line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tree_state() -> str:
    """The commit measured, and whether ``bot/`` or ``feeds/`` have uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = (
        " + uncommitted changes"
        if git("status", "--porcelain", "--", "bot", "feedbot", "feeds")
        else ""
    )
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown commit'}{dirty}"


# --- settings files --------------------------------------------------------------------


def toml_value(value: object) -> str:
    """``value`` as a TOML literal (booleans, strings and paths quoted, numbers as they are)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def toml_text(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document of flat ``[section]`` tables, in the order given."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def settings_sections(
    source_url: str,
    database_url: str,
    folder: Path,
    *,
    poll_seconds: int | None = None,
    port: int = 0,
    profile: Path = PROFILE,
) -> dict[str, dict[str, Any]]:
    """The sections of a settings file as an operator would write it: the fixture source on
    loopback, ``database_url``, the feeds in ``folder``, HTTP on ``127.0.0.1:port``;
    ``profile``: another source profile (an older tree's own, or an edited copy)."""
    source: dict[str, Any] = {"url": source_url + "/", "profile": profile}
    if poll_seconds is not None:
        source["poll_seconds"] = poll_seconds
    return {
        "source": source,
        # Loopback source: private addresses allowed; no politeness delay.
        "fetch": {"article_delay": 0, "allow_private_addresses": True, "retries": 0},
        "database": {"url": database_url},
        "feeds": {"folder": folder, "public_url": PUBLIC_URL},
        "http": {"host": "127.0.0.1", "port": port},
    }


# --- processes -------------------------------------------------------------------------


def _ticks(fields: Sequence[str]) -> int:
    """utime + stime (clock ticks) from the fields after the name in ``/proc/PID/stat``."""
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far, plus that of its children alive now (nginx:
    master + workers). ``pid`` itself must exist; a child that ends meanwhile counts 0."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        total = _ticks(stat.read().rpartition(")")[2].split())
    for path in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = path.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:  # fields[1] is ppid
                total += _ticks(fields)
    return total / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, grace: float = 30) -> None:
    """A signal (SIGINT: the service shuts down cleanly), then SIGKILL after ``grace`` s."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def service_env(token: str, api_url: str) -> dict[str, str]:
    """This process's environment without feedbot's own variables, plus the Bot API's two:
    every other setting of the service comes from its settings file."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEEDBOT_", "TELEGRAM_")) and k not in ("PORT", "DATABASE_URL")
    }
    env.update(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_URL=api_url)
    return env


@contextlib.contextmanager
def feedbot_service(
    config: Path, log_path: Path, tg: FakeTelegram, tree: Path = ROOT, role: str = "run"
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m feedbot --config CFG run`` (or another role) from ``tree`` (this one, or
    one made by :func:`source_tree`: ``-m`` puts the working folder first on ``sys.path``,
    so that tree's packages are the ones imported); stdout and stderr go to ``log_path``.
    Stopped with SIGINT (then SIGKILL) on leaving."""
    cmd = [str(PYTHON), "-m", "feedbot", "--config", str(config), role]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=tree, env=service_env(tg.token, tg.api_url), stdout=log, stderr=log
        )
        try:
            yield proc
        finally:
            stop_process(proc)


def source_tree(rev: str, dest: Path) -> tuple[Path, str]:
    """The files of git revision ``rev`` written to ``dest`` (``git archive``: the
    repository and its working tree are left as they are); (``dest``, short commit)."""

    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True)

    commit = git("rev-parse", "--short", "--verify", f"{rev}^{{commit}}").stdout.decode().strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = git("archive", "--format=tar", commit).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest, commit


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a service's log (for notes when a target is missed)."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No garbage collection in this process while it plays Telegram: a full collection
    over the fake's growing call log pauses its server thread for tens of milliseconds,
    and the requests held up meanwhile would land in the next one-second window together,
    a burst of the harness's making that feedbot would be charged 429s for."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


# --- wrk -------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """One wrk run against a server."""

    rps: float
    requests: int
    latency: str
    errors: str
    server_cpu_us: float  # server CPU per request

    def describe(self, counts: bool = False) -> str:
        """``N req/s (latency avg X[, errors])``, with the number of requests if ``counts``."""
        served = f"{self.requests:,} requests, " if counts else ""
        errors = f", {self.errors}" if self.errors else ""
        return f"{self.rps:,.0f} req/s ({served}latency avg {self.latency}{errors})"


def wrk_command(url: str, seconds: int, etag: str | None = None) -> list[str]:
    """``wrk -t1 -c32 -dNs --latency``, conditional (``If-None-Match``) when given an ETag."""
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if etag:
        cmd += ["-H", f"If-None-Match: {etag}"]
    return [*cmd, url]


def run_wrk(url: str, seconds: int, pid: int, etag: str | None = None) -> WrkResult:
    """Run wrk against ``url``; the server's CPU (``pid`` and children) per request."""
    before = cpu_seconds(pid)
    done = subprocess.run(wrk_command(url, seconds, etag), capture_output=True, text=True)
    used = cpu_seconds(pid) - before
    out = done.stdout
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    latency = re.search(r"Latency\s+(\S+)", out)
    errors = [m.group(0) for m in re.finditer(r"(Socket errors|Non-2xx or 3xx).*", out)]
    if done.returncode != 0 or not (rps and count):
        raise RuntimeError(f"cannot read wrk output (exit {done.returncode}):\n{out}{done.stderr}")
    n = int(count.group(1))
    return WrkResult(
        rps=float(rps.group(1)),
        requests=n,
        latency=latency.group(1) if latency else "?",
        errors="; ".join(errors),
        server_cpu_us=used / n * 1e6 if n else 0.0,
    )


def median_run(runs: Sequence[WrkResult]) -> WrkResult:
    """The run with the median requests/s (its own CPU figure stays with it)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


WrkRuns = dict[tuple[str, str], list[WrkResult]]  # (server, "200" or "304") -> one run a round


def wrk_rounds(
    servers: Mapping[str, tuple[str, int]],
    tags: Mapping[str, str],
    rounds: int,
    seconds: int,
    announce: str | None = None,
) -> WrkRuns:
    """Full (200) then conditional (304, each server's ETag in ``tags``) wrk runs against
    ``servers`` (name: (url, pid)), each after a 1 s warm-up. The servers take turns within
    a round, so drift in the machine's load hits all. ``announce``: a progress line a round."""
    results: WrkRuns = {}
    for n in range(rounds):
        if announce:
            progress(f"{announce}: wrk round {n + 1}/{rounds}")
        for kind in ("200", "304"):
            for name, (url, pid) in servers.items():
                etag = tags[name] if kind == "304" else None
                run_wrk(url, 1, pid, etag)  # warm-up: connections, caches
                results.setdefault((name, kind), []).append(run_wrk(url, seconds, pid, etag))
    return results


def round_notes(section: str, results: WrkRuns, counts: bool = False) -> list[str]:
    """A note a server and kind listing each round's run (see :meth:`WrkResult.describe`)."""
    return [
        f"{section}: {name} {kind}, each round: {', '.join(r.describe(counts) for r in runs)}"
        for (name, kind), runs in sorted(results.items())
    ]


# --- broadcasts ------------------------------------------------------------------------


def fixture_home() -> str:
    """The fixture site's home page (``/``)."""
    return (FIXTURES / "site" / "index.html").read_text("utf-8")


def add_statement(home: str, n: int, title: str, lead: str, href: str | None = None) -> str:
    """``home`` with one more ``li.news-item`` at the top of the list, linked to ``href``
    (default ``/fnapr/n``)."""
    item = (
        '<ul class="news-list">\n      <li class="news-item">'
        '<span class="news-date">07.07.2020</span> - '
        f'<a class="news-title" href="{href or f"/fnapr/{n}"}">{title}</a>\n'
        f'        <p class="news-lead">{lead}</p></li>'
    )
    return home.replace('<ul class="news-list">', item, 1)


def with_new_statement(n: int, title: str, lead: str) -> str:
    """The fixture home page with one more ``li.news-item`` at the top of the list."""
    return add_statement(fixture_home(), n, title, lead)


def article_page(title: str, date: str, paragraphs: Sequence[str]) -> str:
    """A statement's own page in the fixture site's shape (title, ``DD.MM.YYYY`` date, text)."""
    text = "\n".join(f"      <p>{p}</p>" for p in paragraphs)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n  <main>\n"
        f'    <h1 class="article-title">{title}</h1>\n'
        f'    <div class="article-date">{date}</div>\n'
        f'    <div class="article-text">\n{text}\n    </div>\n  </main>\n</body>\n</html>\n'
    )


def subscribe_private_chats(
    engine: sa.Engine, count: int, follows_by_chat: Mapping[int, Sequence[str]] | None = None
) -> None:
    """Chats ``1..count`` as active private subscribers, in one transaction; counters off,
    so that the daily counters do not share the sending limit. Each follows the sources
    ``follows_by_chat`` gives it (by source key), else the primary, as /start makes it."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "chat_id": chat_id,
            "chat_type": "private",
            "title": None,
            "language": None,
            "active": True,
            "subscribed_at": now,
            "counters_enabled": False,
            "counters_time": "09:00",
            "origin": "bench",
        }
        for chat_id in range(1, count + 1)
    ]
    chosen = follows_by_chat or {r["chat_id"]: ("",) for r in rows}
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), rows)
        # A baseline tree from before several sources has no follows: each subscriber
        # receives everything there.
        if sa.inspect(conn).has_table("follows"):
            conn.execute(
                follows.insert(),
                [{"chat_id": c, "source": key} for c, keys in chosen.items() for key in keys],
            )


def outbox_counts(engine: sa.Engine) -> dict[str, int]:
    """Outbox items by status."""
    with engine.connect() as conn:
        counts = sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
        return {str(status): int(n) for status, n in conn.execute(counts)}


def statement_sends(tg: FakeTelegram, mark: str) -> list[Call]:
    """Every ``sendMessage`` the fake answered whose text carries ``mark``."""
    return [c for c in tg.calls_of("sendMessage") if mark in str(c.params.get("text", ""))]


def sent_ok(tg: FakeTelegram, mark: str) -> int:
    """How many sends of the statement marked ``mark`` succeeded so far."""
    return sum(1 for c in statement_sends(tg, mark) if c.status == HTTPStatus.OK)


class BroadcastFigures:
    """Figures of one statement's broadcast to chats ``1..chats``, from the fake's calls.

    A mixin: the dataclass that uses it holds the four attributes declared here.
    """

    chats: int
    ok_calls: list[Call]  # successful sends of the statement
    failed_calls: int  # non-200 answers to sends of the statement (429s included)
    too_many: int  # every 429 of the run, whatever the method

    def record_sends(self, tg: FakeTelegram, mark: str) -> None:
        """Take the sends of the statement marked ``mark`` and the 429 count from ``tg``."""
        calls = statement_sends(tg, mark)
        self.ok_calls = [c for c in calls if c.status == HTTPStatus.OK]
        self.failed_calls = len(calls) - len(self.ok_calls)
        self.too_many = tg.too_many

    @property
    def per_chat(self) -> Counter[int | None]:
        """Successful sends by chat."""
        return Counter(c.chat_id for c in self.ok_calls)

    @property
    def duplicates(self) -> int:
        """Successful sends to a chat after its first."""
        return sum(n - 1 for n in self.per_chat.values() if n > 1)

    @property
    def missing(self) -> int:
        """Chats ``1..chats`` that never received the statement."""
        got = self.per_chat
        return sum(1 for chat_id in range(1, self.chats + 1) if chat_id not in got)

    @property
    def span(self) -> float | None:
        """Seconds from the first successful send to the last."""
        if len(self.ok_calls) < 2:
            return None
        times = [c.at for c in self.ok_calls]
        return max(times) - min(times)

    @property
    def rate(self) -> float | None:
        """Messages/s: ``(n - 1) / span``, on the fake's arrival times."""
        span = self.span
        return (len(self.ok_calls) - 1) / span if span else None
