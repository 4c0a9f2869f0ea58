"""Credentials in URLs: kept for fetching, never shown, stored or published.

An operator may give the source as ``https://user:pass@host/`` (HTTP basic
auth). The password must not reach ids, links, feeds, pages or logs; only the
fetcher needs it, and only for the source's own host.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@ anywhere in a text (an error message, a log line).
_USERINFO_IN_TEXT = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]*:)[^\s/@]*@")


def _netloc(parts: SplitResult, userinfo: str = "") -> str:
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    hostport = f"{host}:{port}" if port is not None else host
    return f"{userinfo}@{hostport}" if userinfo else hostport


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return None


def has_credentials(url: str) -> bool:
    parts = _split(url)
    return parts is not None and "@" in parts.netloc


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` removed; other URLs unchanged."""
    parts = _split(url)
    if parts is None or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=_netloc(parts)))


def masked(url: str) -> str:
    """``url`` for display: ``https://user:***@host/`` (the user name is kept)."""
    parts = _split(url)
    if parts is None or "@" not in parts.netloc:
        return url
    user = parts.username or ""
    userinfo = f"{user}:{MASK}" if parts.password is not None or not user else user
    return urlunsplit(parts._replace(netloc=_netloc(parts, userinfo)))


def masked_in_text(text: str) -> str:
    """Every ``scheme://user:password@`` in free text with the password masked."""
    return _USERINFO_IN_TEXT.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port or default


def page_base(fetched_url: str, source_url: str) -> str:
    """The base to resolve a fetched page's links against: the URL it was fetched
    at, told under the configured source's scheme and host when it came from
    another name of the same site (a redirect to an alias), never with credentials.

    The page's own links then give the same statement ids (and links) whichever
    alias served the page: ``http://localhost:8080/x/`` fetched for the source
    ``http://user:pw@127.0.0.1:8080/`` gives ``http://127.0.0.1:8080/x/``.
    """
    parts, source = _split(fetched_url), _split(source_url)
    if parts is None or source is None or not source.hostname:
        return without_credentials(fetched_url)
    if (parts.hostname or "").lower() == source.hostname.lower():
        return without_credentials(fetched_url)
    return urlunsplit(parts._replace(scheme=source.scheme, netloc=_netloc(source)))


def with_credentials_of(url: str, source_url: str) -> str:
    """``url`` with the source's ``user:password@`` when it is on the source's own
    host and has none: what the fetcher needs for the source's article pages."""
    parts, source = _split(url), _split(source_url)
    if parts is None or source is None or "@" in parts.netloc or "@" not in source.netloc:
        return url
    if _origin(parts) != _origin(source):
        return url
    userinfo = source.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=_netloc(parts, userinfo)))
