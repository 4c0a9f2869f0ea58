"""Several sources, many chats: every new statement reaches its followers exactly once.

    .venv/bin/python bench/bench_sources_delivery.py [--quick] [--sources N] [--chats N]
                                                     [--seed N] [--keep]

The real service runs as a subprocess (``python -m feedbot --config CFG run``) with
50 page sources (10 with ``--quick``): the primary ``[source]`` and 49 ``[[sources]]``
tables, each the fixture site's home page at a path of its own (``/s0/`` ... ``/s9/``)
on one of a few FakeSource hosts (127.0.0.2, 127.0.0.3, ..., ten sources a host), all
polled every second (``article_delay`` 0.05 s, the host gate's spacing). 1,000
subscribed private chats (200 with ``--quick``) each follow 1-5 sources picked at
random (seeded), inserted straight into the bot's ``subscribers`` and ``follows``
tables. The Bot API is a ``FakeTelegram`` enforcing Telegram's flood limits; it and
the fake hosts run in this process.

Once every source's first fill is stored (a first fill notifies nobody), one new
statement appears on each source's page at once. The script then waits until every
expected (chat, statement) pair was delivered, or 10 minutes pass, plus a few seconds
for late duplicates. Target: exactly once within Telegram's limits, that is 0
duplicates (the same chat sent the same statement twice), 0 missing and 0 answers 429.
Prints one table and notes, and exits 0; see bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
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
    Row,
    add_statement,
    article_page,
    feedbot_service,
    fixture_home,
    log_tail,
    outbox_counts,
    print_table,
    progress,
    quiet_gc,
    settings_sections,
    subscribe_private_chats,
    toml_text,
    tree_state,
)
from bot.store import BotStore  # noqa: E402
from feeds.store import Store  # noqa: E402
from tests.support.fake_source import FakeSource  # noqa: E402
from tests.support.fake_telegram import FakeTelegram  # noqa: E402

HEAD = ("figure", "value", "target", "result")
FULL_SOURCES, QUICK_SOURCES = 50, 10
FULL_CHATS, QUICK_CHATS = 1000, 200
PER_HOST = 10  # sources a fake host
FOLLOWS = (1, 5)  # each chat follows this many sources, at random
DEADLINE = 600.0  # seconds after the change to wait for every delivery
GRACE = 5.0  # seconds more once all are delivered, for late duplicates
SPACING = 0.05  # fetch.article_delay: the host gate's spacing
FIRST_FILL = 11  # statements on the fixture home page
NEW_BASE = 9200  # the new statements' numbers: /fnapr/9200 + source index
MARK = "Bench delivery statement"
MARK_RE = re.compile(re.escape(MARK) + r" \[(\d+)\]")
LEAD = "A lead written for the sources-delivery benchmark."


def mark_of(index: int) -> str:
    """The new statement's title on source ``index`` (no title a prefix of another)."""
    return f"{MARK} [{index}]"


@dataclass
class Result:
    sources: int
    chats: int
    expected: set[tuple[int, int]] = field(default_factory=set)  # (chat, source index)
    changed: float | None = None
    delivered: int = 0
    duplicates: int = 0
    missing: int = 0
    unexpected: int = 0  # sends of a statement to a chat that does not follow its source
    messages: int = 0  # successful sendMessage calls carrying a new statement
    failed: int = 0  # non-200 answers to sends of the new statements
    too_many: int = 0
    first_at: float | None = None
    last_at: float | None = None
    outbox: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    log: str = ""

    @property
    def span(self) -> float | None:
        if self.first_at is None or self.last_at is None:
            return None
        return self.last_at - self.first_at

    def rows(self) -> list[Row]:
        rows = []
        if self.error:
            rows.append(Row("run", self.error, "-", False))
        ok = not self.error and self.duplicates == 0 and self.missing == 0 and self.too_many == 0
        span = self.span
        to_last = (
            None if self.last_at is None or self.changed is None else (self.last_at - self.changed)
        )
        to_first = (
            None
            if self.first_at is None or self.changed is None
            else (self.first_at - self.changed)
        )
        rows += [
            Row("expected deliveries (chat, statement)", f"{len(self.expected):,}"),
            Row("delivered (distinct pairs)", f"{self.delivered:,}", f"{len(self.expected):,}"),
            Row("duplicates", str(self.duplicates), "0", self.duplicates == 0),
            Row("missing", str(self.missing), "0", self.missing == 0),
            Row("429 answers", str(self.too_many), "0", self.too_many == 0),
            Row("sends to chats not following", str(self.unexpected), "0", self.unexpected == 0),
            Row("messages sent (a bundle carries several statements)", f"{self.messages:,}"),
            Row(
                "messages/s, first to last message",
                "-" if not span else f"{(self.messages - 1) / span:.1f}",
            ),
            Row(
                "messages/s, change to last message",
                "-" if not to_last else f"{self.messages / to_last:.1f}",
            ),
            Row("first message after the change", "-" if to_first is None else f"{to_first:.2f} s"),
            Row("last message after the change", "-" if to_last is None else f"{to_last:.1f} s"),
            Row("exactly once within Telegram's limits", "PASS" if ok else "FAIL", "-", ok),
        ]
        return rows


# --- set-up ----------------------------------------------------------------------------


def source_key(index: int) -> str:
    """The ``follows`` key of source ``index``: "" for the primary, else its id."""
    return "" if index == 0 else f"s{index}"


def source_urls(hosts: Sequence[FakeSource], count: int) -> list[str]:
    """Source ``i`` at ``/s{i % PER_HOST}/`` on host ``i // PER_HOST``."""
    return [f"{hosts[i // PER_HOST].url}/s{i % PER_HOST}/" for i in range(count)]


def write_config(workdir: Path, urls: Sequence[str]) -> tuple[Path, str]:
    """The settings file: ``urls[0]`` the primary source, the rest ``[[sources]]``."""
    database_url = f"sqlite:///{workdir / 'feedbot.sqlite3'}"
    sections = settings_sections(urls[0].rstrip("/"), database_url, workdir / "feeds")
    sections["source"].update(url=urls[0], poll_seconds=1)
    sections["fetch"] = {"article_delay": SPACING, "allow_private_addresses": True, "retries": 0}
    text = toml_text(sections)
    for n, url in enumerate(urls[1:], start=1):
        text += (
            f'\n[[sources]]\nid = "{source_key(n)}"\nname = "Bench source {n}"\n'
            f'url = "{url}"\nprofile = "{PROFILE}"\npoll_seconds = 1\n'
        )
    config = workdir / "feedbot.toml"
    config.write_text(text, "utf-8")
    return config, database_url


def pick_follows(chats: int, sources: int, seed: int) -> dict[int, list[int]]:
    """Chat ``1..chats`` -> the source indexes it follows (1-5 of them, seeded)."""
    rng = random.Random(seed)
    low, high = FOLLOWS[0], min(FOLLOWS[1], sources)
    return {
        c: sorted(rng.sample(range(sources), rng.randint(low, high))) for c in range(1, chats + 1)
    }


def migrate(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    BotStore(store.engine).migrate()
    store.close()


def stored(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM statements")).scalar_one())


def wait_until(
    check: Callable[[], bool], proc: subprocess.Popen[Any], what: str, seconds: float = 120
) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"feedbot run exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


# --- the run ---------------------------------------------------------------------------


def delivered_pairs(tg: FakeTelegram) -> tuple[Counter[tuple[int, int]], int]:
    """Successful sends of the new statements by (chat, source index); failed sends."""
    ok: Counter[tuple[int, int]] = Counter()
    failed = 0
    for call in tg.calls_of("sendMessage"):
        # A message may carry several statements (a bundle): count each one in it.
        found = {int(m.group(1)) for m in MARK_RE.finditer(str(call.params.get("text", "")))}
        if not found or call.chat_id is None:
            continue
        if call.status != HTTPStatus.OK:
            failed += 1
            continue
        for index in found:
            ok[(int(call.chat_id), index)] += 1
    return ok, failed


def record(result: Result, tg: FakeTelegram) -> None:
    ok, result.failed = delivered_pairs(tg)
    result.delivered = sum(1 for pair in ok if pair in result.expected)
    result.unexpected = sum(1 for pair in ok if pair not in result.expected)
    result.duplicates = sum(n - 1 for n in ok.values() if n > 1)
    result.missing = sum(1 for pair in result.expected if pair not in ok)
    result.too_many = tg.too_many
    times = [
        c.at
        for c in tg.calls_of("sendMessage")
        if c.status == HTTPStatus.OK and MARK_RE.search(str(c.params.get("text", "")))
    ]
    result.messages = len(times)
    result.first_at = min(times, default=None)
    result.last_at = max(times, default=None)


def run(sources: int, chats: int, seed: int, tmp: Path) -> Result:
    result = Result(sources, chats)
    chosen = pick_follows(chats, sources, seed)
    result.expected = {(c, i) for c, picked in chosen.items() for i in picked}
    log_path = tmp / "feedbot.log"
    home = fixture_home()
    count = -(-sources // PER_HOST)
    hosts = [FakeSource(root=FIXTURES / "site", host=f"127.0.0.{2 + h}") for h in range(count)]
    try:
        with FakeTelegram(max_poll_wait=0.5) as tg:
            urls = source_urls(hosts, sources)
            for i in range(sources):
                host, path = hosts[i // PER_HOST], f"/s{i % PER_HOST}/"
                host.set_body(path, home)
                text = ["The full text, first paragraph.", "The full text, second paragraph."]
                host.set_body(
                    f"/fnapr/{NEW_BASE + i}", article_page(mark_of(i), "07.07.2020", text)
                )
            config, database_url = write_config(tmp, urls)
            migrate(database_url)
            engine = sa.create_engine(database_url)
            subscribe_private_chats(
                engine,
                len(chosen),
                {c: [source_key(i) for i in picked] for c, picked in chosen.items()},
            )
            try:
                with feedbot_service(config, log_path, tg) as proc:
                    wait_until(lambda: bool(tg.calls_of("getUpdates")), proc, "the bot started")
                    wait_until(
                        lambda: stored(engine) >= FIRST_FILL * sources,
                        proc,
                        "every source's first fill",
                        seconds=180,
                    )
                    time.sleep(3.0)  # a few more polls of every source: nothing is new
                    progress(f"{sources} sources filled; one new statement on each page")
                    with quiet_gc():
                        result.changed = time.monotonic()
                        for i in range(sources):
                            host, path = hosts[i // PER_HOST], f"/s{i % PER_HOST}/"
                            page = add_statement(home, NEW_BASE + i, mark_of(i), LEAD)
                            host.set_body(path, page)
                        wait_for_all(result, tg, proc)
                    result.outbox = outbox_counts(engine)
            except RuntimeError as exc:
                result.error = str(exc)
            finally:
                engine.dispose()
            record(result, tg)
    finally:
        for host in hosts:
            host.close()
    result.log = log_tail(log_path, 25)
    return result


def wait_for_all(result: Result, tg: FakeTelegram, proc: subprocess.Popen[Any]) -> None:
    """Until every expected pair is delivered (then ``GRACE`` s more), the service exits
    or ``DEADLINE`` s pass since the change."""
    assert result.changed is not None
    deadline = result.changed + DEADLINE
    last_note = time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"feedbot run exited with {proc.returncode} during the sends")
        ok, _ = delivered_pairs(tg)
        got = sum(1 for pair in result.expected if pair in ok)
        if got >= len(result.expected):
            progress(f"all {got:,} delivered; {GRACE:.0f} s more for late duplicates")
            time.sleep(GRACE)
            return
        if time.monotonic() - last_note >= 15:
            progress(f"{got:,}/{len(result.expected):,} delivered, {tg.too_many} x 429")
            last_note = time.monotonic()
        time.sleep(1.0)
    progress("10 minutes passed without every delivery")


# --- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SOURCES} sources, {QUICK_CHATS} chats"
    )
    parser.add_argument("--sources", type=int, help="number of sources (overrides)")
    parser.add_argument("--chats", type=int, help="number of subscribed chats (overrides)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the chats' follows")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    sources = args.sources or (QUICK_SOURCES if args.quick else FULL_SOURCES)
    chats = args.chats or (QUICK_CHATS if args.quick else FULL_CHATS)

    tmp = Path(tempfile.mkdtemp(prefix="feedbot-bench-sources-delivery-"))
    started = time.monotonic()
    try:
        result = run(sources, chats, args.seed, tmp)
    finally:
        if args.keep:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    hosts = -(-sources // PER_HOST)
    print(
        f"\nfeedbot {tree_state()}; {sources} sources on {hosts} hosts, {chats} chats following"
        f" {FOLLOWS[0]}-{FOLLOWS[1]} each (seed {args.seed}); poll_seconds 1;"
        f" took {time.monotonic() - started:.0f} s\n"
    )
    print_table(result.rows(), HEAD)
    print()
    print(
        f"failed sends of the new statements (429s included): {result.failed};"
        f" outbox at the end {result.outbox}"
    )
    ok = not result.error and not (result.duplicates or result.missing or result.too_many)
    if not ok:
        print(f"the service's log ends:\n{result.log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
