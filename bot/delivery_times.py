"""When a chat should receive a statement: now, at its digest time, or after its
quiet hours — all in London time, so DST changes move nothing."""

from __future__ import annotations

import datetime as dt

from feeds.clock import LONDON


def parse_hhmm(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def _at(day: dt.date, when: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, when, tzinfo=LONDON).astimezone(dt.UTC)


def next_daily(now: dt.datetime, hhmm: str) -> dt.datetime:
    """The next time it is ``hhmm`` in London, strictly after ``now``."""
    local = now.astimezone(LONDON)
    when = parse_hhmm(hhmm)
    candidate = _at(local.date(), when)
    if candidate <= now:
        candidate = _at(local.date() + dt.timedelta(days=1), when)
    return candidate


def quiet_until(now: dt.datetime, start: str | None, end: str | None) -> dt.datetime | None:
    """The end of the quiet period ``now`` falls in, or None outside quiet hours."""
    if not start or not end or start == end:
        return None
    local = now.astimezone(LONDON)
    t = local.time()
    qs, qe = parse_hhmm(start), parse_hhmm(end)
    if qs < qe:  # e.g. 13:00-14:00
        return _at(local.date(), qe) if qs <= t < qe else None
    if t >= qs:  # overnight, e.g. 22:00-07:00, before midnight
        return _at(local.date() + dt.timedelta(days=1), qe)
    if t < qe:  # after midnight
        return _at(local.date(), qe)
    return None


def deliver_at(
    now: dt.datetime, mode: str, daily_time: str, quiet_start: str | None, quiet_end: str | None
) -> dt.datetime:
    when = next_daily(now, daily_time) if mode == "digest" else now
    return quiet_until(when, quiet_start, quiet_end) or when
