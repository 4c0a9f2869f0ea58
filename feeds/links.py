"""Which stored links may be shown as links: absolute http(s) addresses only.

Whatever the parser or an older feedbot stored, a page or a Telegram button
must never carry ``javascript:``, ``data:`` or the like. Browsers ignore tabs
and newlines anywhere in a URL and spaces or controls around it, so
``java\\tscript:`` and `` JAVASCRIPT:`` are scripts to them; the check is made
on the URL as a browser would read it, and that cleaned form is what is shown.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SCHEMES = ("http", "https")
# WHATWG URL parsing: C0 controls and spaces around the URL are dropped, and
# tabs and newlines anywhere in it.
_AROUND = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = re.compile("[\t\n\r]")
# Left inside after that, these would be sent as-is by some clients and refused
# by others (Telegram): such a link is not shown rather than guessed at.
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_LONGEST = 2048  # longer addresses are refused by browsers and Telegram alike


def safe_link(url: str | None) -> str | None:
    """``url`` cleaned as a browser reads it, if it is an absolute http(s) address
    with a host; ``None`` otherwise (then show the text without a link)."""
    if not url:
        return None
    cleaned = _TAB_NEWLINE.sub("", url.strip(_AROUND))
    if not cleaned or len(cleaned) > _LONGEST or _UNSAFE.search(cleaned):
        return None
    scheme, sep, rest = cleaned.partition(":")
    if not sep or scheme.lower() not in SCHEMES or not rest.startswith("//"):
        return None
    try:
        parts = urlsplit(cleaned)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme.lower() + ":" + rest
