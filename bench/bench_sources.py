"""Many sources in one worker: 200 sources on 20 fake hosts, all unchanged (304).

Measures, for one round of every source's poll as the worker runs it (a Poller
per source, HostTurns, the sources' own thread pool, one shared HostGate):

* the CPU the feedbot process spends on the round (target ≤ 0.3 s for 200);
* how much more memory (RSS) 200 sources hold than one (target ≤ 20 MB);
* the most requests any one host had in flight at once (target 1);
* a floor for the CPU figure, in the same run: the same conditional GETs one
  after another from a bare requests.Session, nothing stored or scheduled (and
  through urllib3 alone, for comparison).

The process is set up as ``serve_forever`` sets up the service: logging at INFO
(to nowhere), two malloc arenas, the start-up objects frozen out of the garbage
collector, uvloop; the scheduler runs (paused), so each poll moves its standing
job as in the service; the unchanged polls' records, which the service writes
together a second after a burst, are written at the end of each round and timed
with it. After the first fill the freed heap is handed back, as the worker's
memory job does a minute after feeds were rewritten; then five rounds of 304s
are timed and the median reported, and the RSS read while the pollers, their
threads and connections are all still there. The fake hosts (FakeSource on
127.0.0.2 … 127.0.0.21, ten source pages each) run in a process of their own so
their CPU is not counted. Usage:

    .venv/bin/python bench/bench_sources.py [--sources 200] [--hosts 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
import urllib3
import uvloop

from bench.common import FIXTURES, PROFILE, toml_text

CPU_TARGET = 0.3  # seconds for one round of 200 polls
RSS_TARGET = 20.0  # MB more for 200 sources than for one
ROUNDS = 5  # rounds of 304s timed after the fill
SPACING = 0.05  # politeness between polls of one host (fetch.article_delay), kept short


def serve_hosts(hosts: int, per_host: int, conn: Connection) -> None:
    """The fake hosts: each serves the fixture home page at /s0/ … /sN/."""
    from tests.support.fake_source import FakeSource

    home = (FIXTURES / "site" / "index.html").read_text("utf-8")
    servers = [FakeSource(FIXTURES / "site", host=f"127.0.0.{2 + i}") for i in range(hosts)]
    for server in servers:
        for j in range(per_host):
            server.set_body(f"/s{j}/", home)
    conn.send([s.url for s in servers])
    conn.recv()  # "report"
    conn.send([s.most_in_flight for s in servers])
    conn.recv()  # "stop"
    for server in servers:
        server.close()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def settings_file(folder: Path, urls: list[str], sources: int, per_host: int) -> Path:
    pages = [f"{urls[i % len(urls)]}/s{i // len(urls) % per_host}/" for i in range(sources)]
    sections: dict[str, Any] = {
        "source": {"url": pages[0], "profile": PROFILE, "poll_seconds": 300},
        "fetch": {"article_delay": SPACING, "allow_private_addresses": True, "retries": 0},
        "database": {"url": f"sqlite:///{folder / 'feedbot.sqlite3'}"},
        "feeds": {"folder": folder / "feeds", "public_url": "http://feeds.test"},
    }
    text = toml_text(sections)
    for n, url in enumerate(pages[1:], start=1):
        text += f'\n[[sources]]\nid = "s{n}"\nurl = "{url}"\nprofile = "{PROFILE}"\n'
    path = folder / "feedbot.toml"
    path.write_text(text, "utf-8")
    return path


def measure(sources: int, hosts: int, per_host: int, out: Connection) -> None:
    """In a fresh process: fill every source, then time one round of 304s."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from feedbot.app import open_context
    from feedbot.logs import configure_logging
    from feedbot.memory import limit_malloc_arenas, return_freed_memory
    from feedbot.poller import HostTurns, PendingWrites, Poller, SourceThreads
    from feedbot.settings import load_settings
    from feeds.pipeline import PollOutcome
    from feeds.politeness import host_of
    from feeds.recheck import Recheck

    limit_malloc_arenas()  # as the service does at start
    # Logging as the service sets it up (INFO, redacted text lines), into the void.
    configure_logging("INFO", "text", stream=open(os.devnull, "w"))  # noqa: SIM115
    parent, child = mp.Pipe()
    fake = mp.Process(target=serve_hosts, args=(hosts, per_host, child))
    fake.start()
    urls = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context(load_settings(settings_file(Path(tmp), urls, sources, per_host), env={}))
        gc.collect()  # as serve_forever does once the context is open
        gc.freeze()

        async def rounds() -> tuple[float, float, float, list[str]]:
            scheduler = AsyncIOScheduler(timezone="UTC")
            scheduler.start(paused=True)  # as in the service, jobs live in its store
            turns = HostTurns(spacing=SPACING)
            pipelines = list(ctx.pipelines.values())
            threads = SourceThreads(len({host_of(p.source_url) for p in pipelines}))
            writes = PendingWrites(ctx.store, threads)
            recheck = Recheck(ctx.settings.feeds.fetch)
            pollers = [
                Poller(
                    p,
                    ctx.bot_store,
                    True,
                    scheduler,
                    turns=turns,
                    threads=threads,
                    writes=writes,
                    recheck=recheck,
                )
                for p in pipelines
            ]

            results: list[str] = []  # of the round under way
            round_over = asyncio.Event()

            async def finished(outcome: PollOutcome) -> None:
                # Only the result is kept: the service keeps no outcome (the page, the
                # statements stored) past its listeners.
                results.append(outcome.result)
                if len(results) == len(pollers):
                    round_over.set()

            async def poll_round() -> list[str]:
                """Every source's poll, fired by its own timer as in the service."""
                results.clear()
                round_over.clear()
                for poller in pollers:
                    poller.schedule(0)
                await round_over.wait()
                return list(results)

            for poller in pollers:
                poller.listeners.append(finished)
            await poll_round()  # the first fill
            # The fill rewrote every feed: the worker hands the freed heap back a
            # minute later (its "memory" job); the steady state is measured after it.
            return_freed_memory()
            # Several rounds, the median reported: one round is a fraction of a second
            # of CPU, which a busy neighbour on the machine can move by a fifth.
            cpus, walls = [], []
            for _ in range(ROUNDS):
                cpu, wall = time.process_time(), time.monotonic()
                outcomes = await poll_round()
                # The round's records, written a second later in the service, now.
                await writes.now()
                cpus.append(time.process_time() - cpu)
                walls.append(time.monotonic() - wall)
            rss = rss_mb()  # the pollers, their threads and connections all there
            await asyncio.gather(*(p.stop() for p in pollers))
            await recheck.close()
            threads.shutdown()
            scheduler.shutdown(wait=False)
            return statistics.median(cpus), statistics.median(walls), rss, outcomes

        def floors() -> tuple[float, float]:
            """The same conditional GETs (all 304), one after another, nothing stored
            or scheduled: from one requests.Session that skips the environment (about
            the least a round can cost with requests), and through urllib3 alone (what
            requests is built on). Measured in this run: the machine's speed moves
            these and the round alike."""
            asks = [
                (p.source_url, {"If-None-Match": p.store.source_state(p.source_url).etag or ""})
                for p in ctx.pipelines.values()
            ]

            def cpu_of(get: Callable[[str, dict[str, str]], int]) -> float:
                for url, headers in asks:  # warm: connections open
                    get(url, headers)
                spent = []
                for _ in range(ROUNDS):
                    cpu = time.process_time()
                    for url, headers in asks:
                        assert get(url, headers) == 304
                    spent.append(time.process_time() - cpu)
                return statistics.median(spent)

            with requests.Session() as session:
                session.trust_env = False  # no look at proxies or .netrc per request
                with_requests = cpu_of(lambda u, h: session.get(u, headers=h).status_code)
            pools = urllib3.PoolManager(num_pools=len(urls))
            with_urllib3 = cpu_of(lambda u, h: pools.request("GET", u, headers=h).status)
            pools.clear()
            return with_requests, with_urllib3

        # The service's event loop (uvloop), as serve_forever runs it.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            cpu, wall, rss, results = runner.run(rounds())
        baseline, bare = floors()
        ctx.close()
    parent.send("report")
    in_flight = parent.recv()
    parent.send("stop")
    fake.join()
    out.send(
        {
            "cpu": cpu,
            "floor": baseline,
            "floor_urllib3": bare,
            "wall": wall,
            "rss": rss,
            "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "results": sorted(set(results)),
            "in_flight": max(in_flight),
        }
    )


def run(sources: int, hosts: int, per_host: int) -> dict[str, Any]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=measure, args=(sources, hosts, per_host, child))
    proc.start()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=20)
    args = parser.parse_args()
    per_host = -(-args.sources // args.hosts)
    one = run(1, 1, 1)
    many = run(args.sources, args.hosts, per_host)
    growth = many["rss"] - one["rss"]
    rows = [
        (
            f"CPU, one round of 304s (median of {ROUNDS})",
            f"{many['cpu']:.3f} s",
            f"≤ {CPU_TARGET} s",
            many["cpu"] <= CPU_TARGET,
        ),
        ("CPU per poll", f"{many['cpu'] / args.sources * 1000:.2f} ms", "-", None),
        (
            "floor: the same GETs, one by one",
            f"{many['floor']:.3f} s",
            f"ratio {many['cpu'] / many['floor']:.2f}",
            None,
        ),
        ("  the same through urllib3 alone", f"{many['floor_urllib3']:.3f} s", "-", None),
        ("wall time of a round", f"{many['wall']:.2f} s", "-", None),
        ("RSS, 1 source", f"{one['rss']:.1f} MB", "-", None),
        (f"RSS, {args.sources} sources", f"{many['rss']:.1f} MB", "-", None),
        ("RSS growth", f"{growth:.1f} MB", f"≤ {RSS_TARGET} MB", growth <= RSS_TARGET),
        ("most requests at once on a host", str(many["in_flight"]), "1", many["in_flight"] == 1),
        (
            "poll results",
            ", ".join(many["results"]),
            "not_modified",
            many["results"] == ["not_modified"],
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target, ok in rows:
        verdict = {True: "PASS", False: "FAIL", None: "info"}[ok]
        print(f"{name:<{width}}  {value:>14}  {target:>14}  {verdict}")
    return 0 if all(r[3] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
