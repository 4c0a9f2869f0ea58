"""Asking a source "changed since?" on the event loop, holding no thread.

Most polls of a source that answered ``304 Not Modified`` last time get the same
answer again. Through the fetcher (requests, in a thread) such a poll cost about
1.2 ms of CPU with 200 sources, a third of it handing the poll to a thread and
back; asked here with aiohttp on the event loop it costs about 0.8 ms, all told
(bench/bench_sources.py).

The question is the fetcher's own: the same URL (the source's, whose host the
operator chose, so no address check applies), the same headers — User-Agent,
Accept, Accept-Encoding and the validators — and the same certificate checks.
It is asked only while the fetcher would add nothing to that request (no
cookie, proxy or credentials: ``Fetcher.plain_get``), and within the fetcher's
timeouts and deadline. Only a plain ``304`` is an answer here; anything else (a
page, a redirect, an error, a timeout, a cookie set) returns None, and the poll
goes to the fetcher with all its rules: it asks again and reads the page. So a
change costs one request more, once; unchanged polls cost one request each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time

import aiohttp
import requests.utils
import yarl

from feeds.config import FetchSettings
from feeds.fetch import Fetcher, Response

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 600.0  # an idle connection to a source kept for its next poll


class Recheck:
    """One aiohttp session for the process's conditional GETs; made on first use,
    inside the running event loop, and closed with ``close``."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}  # by CA bundle path
        self._closed = False

    async def unchanged(
        self, fetcher: Fetcher, url: str, etag: str | None, last_modified: str | None
    ) -> Response | None:
        """The source's ``304`` for ``url`` and these validators, or None: ask the
        fetcher (not asked here, or any other answer)."""
        if self._closed or not (etag or last_modified):
            return None  # closed (the process is stopping), or no 304 to be had
        plain = fetcher.plain_get(url, etag, last_modified)
        if plain is None:
            return None
        s = self.settings
        started = time.monotonic()
        try:
            async with asyncio.timeout(s.deadline):
                async with self._client().get(
                    # The target byte for byte as requests quotes it (aiohttp's own
                    # quoting differs: a space, brackets in a query).
                    yarl.URL(plain.url, encoded=True),
                    headers=plain.headers,
                    allow_redirects=False,
                    ssl=self._ssl(plain.verify) if url[:6].lower() == "https:" else True,
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=s.connect_timeout, sock_read=s.read_timeout
                    ),
                ) as response:
                    if response.status != 304 or "Set-Cookie" in response.headers:
                        return None  # not left half read: the connection is closed
                    return Response(
                        url=url,
                        status=304,
                        body=b"",
                        content_type=response.headers.get("Content-Type"),
                        etag=response.headers.get("ETag"),
                        last_modified=response.headers.get("Last-Modified"),
                        elapsed=time.monotonic() - started,
                    )
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # The fetcher asks again, and names what went wrong if it goes wrong again.
            log.debug("asking %s on the event loop failed (%s); the fetcher asks", url, exc)
            return None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # No cap of its own on connections at once (aiohttp's is 100): HostTurns
                # lets each host have one poll at a time, so there is one per host.
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS),
                # Cookies are the fetcher's: with any in its jar, nothing is asked here.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # a 304 has no body; nothing else is read
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _ssl(self, verify: bool | str) -> ssl.SSLContext | bool:
        """Certificates checked as requests checks them: against certifi's bundle
        (requests' default), the bundle ``verify`` names, or not at all."""
        if verify is False:
            return False
        bundle = verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
        context = self._contexts.get(bundle)
        if context is None:
            if os.path.isdir(bundle):
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
            self._contexts[bundle] = context
        return context

    async def close(self) -> None:
        """Ends every request in flight (each returns None) and asks nothing more."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
