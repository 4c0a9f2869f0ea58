"""Every failure the source side reports, named at the boundary where it happens.

FeedbotError
├── ConfigError          bad setting or source profile (exit code 2)
└── SourceError          a poll failed; the store and feeds stay as they were (exit code 1)
    ├── FetchError       the source could not be read
    │   ├── SourceUnreachable   DNS, connect, reset, TLS
    │   ├── SourceTimeout       connect/read timeout or the fetch's deadline passed
    │   ├── FetchCancelled      the process is stopping: a running fetch was ended
    │   ├── SourceHTTPError     4xx/5xx answer (``status``, ``retry_after``)
    │   ├── SourceTooLarge      body (after decompression) over the size limit
    │   ├── SourceNotHTML       a content type that is neither HTML nor text
    │   ├── TooManyRedirects    redirect loop or chain too long
    │   └── AddressNotAllowed   a link leading off the allowed hosts or to a private address
    └── ParseError       the page was read but the profile found no statements in it
"""

from __future__ import annotations


class FeedbotError(Exception):
    """Base of every error feedbot reports to its user."""

    kind = "error"


class ConfigError(FeedbotError):
    """A setting or the source profile is wrong; names the key and what is wrong."""

    kind = "config"


class SourceError(FeedbotError):
    kind = "source"


class FetchError(SourceError):
    kind = "fetch"


class SourceUnreachable(FetchError):
    kind = "unreachable"


class SourceTimeout(FetchError):
    kind = "timeout"


class FetchCancelled(FetchError):
    """A stop signal ended the fetch; nothing is wrong with the source."""

    kind = "cancelled"


class SourceHTTPError(FetchError):
    kind = "http"

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def label(self) -> str:
        return f"http_{self.status}"


class SourceTooLarge(FetchError):
    kind = "too_large"


class SourceNotHTML(FetchError):
    kind = "not_html"


class TooManyRedirects(FetchError):
    kind = "redirects"


class AddressNotAllowed(FetchError):
    kind = "not_allowed"


class ParseError(SourceError):
    kind = "parse"


class NotAFeed(ParseError):
    """A feed source's URL answers an HTML page: the wrong address, or a page source
    configured as a feed. Refused when the service starts, not polled for ever."""


class SuspiciousPage(ParseError):
    """A page that would rewrite most known titles at once (a bad byte decoded as
    another charset, a markup change): held, never stored, published or pushed."""

    kind = "suspicious"


def error_label(exc: BaseException) -> str:
    """A short, stable name for an error: used in poll records and metrics."""
    if isinstance(exc, SourceHTTPError):
        return exc.label
    if isinstance(exc, FeedbotError):
        return exc.kind
    return "internal"
