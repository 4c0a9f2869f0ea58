"""Permanent statement ids.

An id is published in every feed and keyed on in the store, so it must never
change for the same statement. The fallback chain, in order:

1. the statement's own URL (fragment and any ``user:password@`` dropped) — what
   the site itself uses; credentials given for fetching are never part of an id;
2. a ``tag:`` URI (RFC 4151) over the date and the *folded* title, so a
   re-spaced or re-cased title on a later capture keeps its id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import urldefrag

from feeds.urls import without_credentials

TAG_AUTHORITY = "feedbot.invalid,2020"


def statement_id(url: str | None, published: dt.date | None, folded_title: str) -> str:
    if url:
        return without_credentials(urldefrag(url).url)
    key = f"{published.isoformat() if published else ''}|{folded_title}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    return f"tag:{TAG_AUTHORITY}:statement/{digest}"
