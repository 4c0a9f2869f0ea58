"""The long-running roles, each one process and one event loop:

* ``run``    HTTP server (feeds from the feeds folder) + worker — one machine;
* ``serve``  the HTTP server alone, from the feeds folder;
* ``web``    the HTTP server alone, feeds from the database — any number of
             instances behind a load balancer, all answering the same bytes;
* ``worker`` polling, daily counters and the bot, no HTTP (unless the bot
             takes updates by webhook, which needs it).

The worker starts working only while it holds the database's worker lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
from dataclasses import dataclass

import uvloop
from aiohttp import web

from feedbot.app import Context, build_web, build_worker
from feedbot.memory import limit_malloc_arenas
from feedbot.web import CURRENT_FEEDS, DatabaseFeeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Role:
    http: bool
    worker: bool
    feeds_from_database: bool = False


ROLES = {
    "run": Role(http=True, worker=True),
    "serve": Role(http=True, worker=False),
    "web": Role(http=True, worker=False, feeds_from_database=True),
    "worker": Role(http=False, worker=True),
}


async def run_service(ctx: Context, role: Role, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        ctx.stopping.set()  # a fetch in flight in a worker thread ends at once
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, on_signal)
    worker = build_worker(ctx) if role.worker else None
    runner: web.ServerRunner | None = None
    feeds: DatabaseFeeds | None = None
    background: list[asyncio.Task[None]] = []
    webhook = bool(ctx.settings.telegram.token and ctx.settings.telegram.webhook_url)
    if role.http or (worker is not None and webhook):
        webapp, feeds = build_web(ctx, worker, role.feeds_from_database)
        http = ctx.settings.http
        # Listening comes first: a port in use is one line and exit 2, nothing started.
        runner = await webapp.listen(http.host, http.port, fit_file_limit(http.max_connections))
        host, port = runner.addresses[0][:2]
        log.info("serving feeds and pages on http://%s:%d/", host, port)
    ok = True
    try:
        if feeds is not None:
            await feeds.refresh()
            background.append(asyncio.create_task(feeds.run(stop)))
        elif role.http:
            await publish_missing_feeds(ctx)
        if worker is not None:
            ok = await worker.run(stop)
        else:
            await stop.wait()
    finally:
        log.info("shutting down")
        stop.set()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if runner is not None:
            await runner.cleanup()
    return 0 if ok else 1


async def publish_missing_feeds(ctx: Context) -> None:
    """Write the feed files once at start-up if any is missing (a fresh install, a
    new folder), so a static server in front has them before the first good poll;
    the documents come from the store, empty when nothing is stored yet."""
    folder = ctx.settings.feeds.publish.folder
    if all((folder / name).is_file() for name in CURRENT_FEEDS):
        return
    try:
        written = await asyncio.to_thread(ctx.pipeline.publish)
    except Exception as exc:  # the HTTP server answers empty feeds meanwhile
        log.warning("could not write the feed files at start-up: %s", exc)
    else:
        log.info("feed files written at start-up: %s", ", ".join(written) or "none changed")


# Open files kept for everything but HTTP connections: database connections, the
# bot's and the fetcher's connection pools, feed files being read or written.
FILES_RESERVED = 128


def fit_file_limit(max_connections: int, reserve: int = FILES_RESERVED) -> int:
    """The connection cap to use: ``max_connections`` once the open-file limit
    has room for it and ``reserve`` more (raised up to the hard limit if need be);
    else as many as the limit leaves room for, with a warning."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return max_connections
    needed = max_connections + reserve
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return max_connections
    cap = max(soft // 2, soft - reserve)
    log.warning(
        "http.max_connections lowered from %d to %d: the open-file limit is %d "
        "(raise it: LimitNOFILE= in the systemd unit, ulimit -n, docker run --ulimit nofile=)",
        max_connections,
        cap,
        soft,
    )
    return cap


def serve_forever(ctx: Context, role: Role) -> int:
    limit_malloc_arenas()
    # Everything imported and opened so far lives as long as the process: keep it
    # out of the garbage collector's full passes, which otherwise stall the event
    # loop (and so the evenly paced Telegram sends) for tens of milliseconds.
    gc.collect()
    gc.freeze()
    # uvloop roughly halves the event loop's cost per request; feeds are served
    # by the thousand per second, so it is worth its one dependency.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_service(ctx, role))
