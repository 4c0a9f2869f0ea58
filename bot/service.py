"""``feedbot run`` and ``feedbot serve``: one process, one event loop.

The HTTP server always runs; ``run`` adds the worker (polling, daily counters
and, when a token is set, the Telegram bot) once this process holds the
database's worker lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvloop
from aiohttp import web

from bot.context import Context
from bot.web import WebApp
from bot.worker import Worker

log = logging.getLogger(__name__)


async def run_service(ctx: Context, with_worker: bool, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    worker = Worker(ctx) if with_worker else None
    runner = web.ServerRunner(WebApp(ctx, worker).server(), access_log=None, handle_signals=False)
    await runner.setup()
    http = ctx.settings.feeds.http
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
        await runner.cleanup()
    return 0 if ok else 1


def serve_forever(ctx: Context, with_worker: bool) -> int:
    # uvloop roughly halves the event loop's cost per request; feeds are served
    # by the thousand per second, so it is worth its one dependency.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_service(ctx, with_worker))
