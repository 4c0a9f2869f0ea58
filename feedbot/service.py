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
import ctypes
import ctypes.util
import gc
import logging
import signal
from dataclasses import dataclass

import uvloop
from aiohttp import web

from feedbot.app import Context, build_web, build_worker

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
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    worker = build_worker(ctx) if role.worker else None
    runner: web.ServerRunner | None = None
    background: list[asyncio.Task[None]] = []
    webhook = bool(ctx.settings.telegram.token and ctx.settings.telegram.webhook_url)
    if role.http or (worker is not None and webhook):
        webapp, feeds = build_web(ctx, worker, role.feeds_from_database)
        if feeds is not None:
            await feeds.refresh()
            background.append(asyncio.create_task(feeds.run(stop)))
        server = webapp.server()
        runner = web.ServerRunner(server, access_log=None, handle_signals=False)
        await runner.setup()
        http = ctx.settings.http
        site = web.TCPSite(runner, http.host, http.port, reuse_address=True)
        await site.start()
        log.info("serving feeds and pages on http://%s:%d/", http.host, http.port)
    ok = True
    try:
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


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread its own malloc arena; the few worker threads of a
    long-running service then hold memory they no longer use. Two are plenty."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX


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
