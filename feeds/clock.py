"""The two clocks feedbot keeps: UTC for everything stored, London for what people see.

The source publishes in London; statement days, daily counters, digest times and
quiet hours are London days and times, so DST changes move none of them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def london_today(now: dt.datetime | None = None) -> dt.date:
    """The London calendar day of ``now`` (default: the current moment)."""
    return (now or utcnow()).astimezone(LONDON).date()
