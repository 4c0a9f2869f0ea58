"""``feedbot run`` and ``feedbot serve``: one process, one event loop.

The HTTP server always runs; ``run`` adds the scheduler (polling) and, when a
token is set, the Telegram bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.context import Context
from bot.scheduler import Poller
from bot.web import WebApp

log = logging.getLogger(__name__)


async def run_service(
    ctx: Context, with_scheduler: bool, stop: asyncio.Event | None = None
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    http = ctx.settings.feeds.http
    web_app = WebApp(ctx)
    runner = web.AppRunner(web_app.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, http.host, http.port, reuse_address=True)
    await site.start()
    log.info("serving feeds and pages on http://%s:%d/", http.host, http.port)
    scheduler = AsyncIOScheduler(timezone="UTC")
    if with_scheduler:
        poller = Poller(ctx.pipeline, scheduler)
        poller.start()
        scheduler.start()
        log.info(
            "polling %s every %ds",
            ctx.settings.feeds.source.url,
            ctx.settings.feeds.source.poll_seconds,
        )
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if scheduler.running:
            scheduler.shutdown(wait=False)
        await runner.cleanup()


def serve_forever(ctx: Context, with_scheduler: bool) -> int:
    asyncio.run(run_service(ctx, with_scheduler))
    return 0
