"""Delivery modes per chat — instant, daily digest, quiet hours — one summary for a
backlog, and edits followed in messages already sent. A Sender driven by hand
with a clock the test moves (see tests/bot/test_delivery.py for the harness)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from bot.delivery_times import deliver_at, next_daily, quiet_until
from feeds.clock import LONDON
from tests.support.harness import Harness, drain, received, subscribe, utcnow, with_new_statement


def london(*args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LONDON, fold=fold).astimezone(dt.UTC)  # type: ignore[misc]


def test_schedule_digest_and_quiet_hours() -> None:
    # Digest: the next 18:00 in London, today or tomorrow.
    assert next_daily(london(2026, 6, 1, 9, 0), "18:00") == london(2026, 6, 1, 18, 0)
    assert next_daily(london(2026, 6, 1, 19, 0), "18:00") == london(2026, 6, 2, 18, 0)
    # Quiet hours across midnight.
    assert quiet_until(london(2026, 6, 1, 23, 30), "22:00", "07:00") == london(2026, 6, 2, 7, 0)
    assert quiet_until(london(2026, 6, 2, 6, 59), "22:00", "07:00") == london(2026, 6, 2, 7, 0)
    assert quiet_until(london(2026, 6, 2, 7, 0), "22:00", "07:00") is None
    assert quiet_until(london(2026, 6, 1, 13, 30), "13:00", "14:00") == london(2026, 6, 1, 14, 0)
    # A digest that falls in quiet hours waits for their end.
    assert deliver_at(london(2026, 6, 1, 12, 0), "digest", "23:00", "22:00", "07:00") == london(
        2026, 6, 2, 7, 0
    )
    # Across the clocks going back (25 Oct 2026): still 07:00 London, now GMT.
    assert quiet_until(london(2026, 10, 24, 23, 0), "22:00", "07:00") == dt.datetime(
        2026, 10, 25, 7, 0, tzinfo=dt.UTC
    )
    # ... and going forward (29 Mar 2026): 07:00 BST is 06:00 UTC.
    assert quiet_until(london(2026, 3, 28, 23, 0), "22:00", "07:00") == dt.datetime(
        2026, 3, 29, 6, 0, tzinfo=dt.UTC
    )


TIMES = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@given(
    st.datetimes(dt.datetime(2025, 1, 1), dt.datetime(2028, 12, 31), timezones=st.just(dt.UTC)),
    st.sampled_from(["instant", "digest"]),
    TIMES,
    st.one_of(st.none(), st.tuples(TIMES, TIMES)),
)
def test_a_message_is_never_scheduled_in_the_past_or_inside_quiet_hours(
    now: dt.datetime, mode: str, daily: str, quiet: tuple[str, str] | None
) -> None:
    start, end = quiet if quiet else (None, None)
    when = deliver_at(now, mode, daily, start, end)
    assert when >= now
    assert when - now <= dt.timedelta(days=2, hours=1)
    if start and end and start != end:
        assert quiet_until(when, start, end) is None


def advance_to(h: Harness, when: dt.datetime) -> None:
    h.clock.advance((when - h.clock()).total_seconds() + 1)


async def test_digest_mode_sends_one_message_at_the_chosen_time(harness: Harness) -> None:
    h, tg = harness, harness.tg
    subscribe(h.ctx.bot_store, [4001, 4002])
    h.ctx.bot_store.set_delivery(4001, "digest")
    h.ctx.bot_store.set_counters(4001, at="06:00")  # the chat's daily time
    await h.publish(7401, "Digest one")
    await h.publish(7402, "Digest two")
    sender = h.sender()
    await drain(sender)
    assert received(tg, "Digest one") == {4002: 1}  # instant now; the digest waits
    advance_to(h, next_daily(utcnow(), "06:00"))
    await drain(sender)
    (digest,) = [str(m["text"]) for m in tg.sent(4001)]
    assert digest.startswith("<b>2 new statements</b>")
    assert digest.index("Digest one") < digest.index("Digest two")


async def test_quiet_hours_hold_statements_until_they_end(harness: Harness) -> None:
    h, tg = harness, harness.tg
    subscribe(h.ctx.bot_store, [4101])
    local = utcnow().astimezone(LONDON)
    start = (local - dt.timedelta(hours=1)).strftime("%H:%M")
    end_local = local + dt.timedelta(hours=1)
    h.ctx.bot_store.set_delivery(4101, quiet=(start, end_local.strftime("%H:%M")))
    await h.publish(7411, "Quiet one")
    await h.publish(7412, "Quiet two")
    sender = h.sender()
    await drain(sender)
    assert tg.sent(4101) == []
    advance_to(h, end_local.astimezone(dt.UTC))
    await drain(sender)
    (message,) = [str(m["text"]) for m in tg.sent(4101)]
    assert "2 new statements" in message and "Quiet one" in message and "Quiet two" in message


async def test_a_backlog_arrives_as_one_summary(harness: Harness) -> None:
    h, tg = harness, harness.tg
    subscribe(h.ctx.bot_store, [4201])
    for n in range(6):  # six polls while the sender was not running (an outage)
        await h.publish(7420 + n, f"Backlog statement {n}")
    await drain(h.sender())
    (summary,) = [str(m["text"]) for m in tg.sent(4201)]
    assert summary.startswith("<b>6 new statements</b>")
    assert all(f"Backlog statement {n}" in summary for n in range(6))
    assert set(h.ctx.bot_store.outbox_counts()) == {"sent"}


async def test_an_edited_statement_is_edited_in_place_once_per_chat(harness: Harness) -> None:
    h, tg = harness, harness.tg
    subscribe(h.ctx.bot_store, [4301, 4302])
    sid = await h.publish(7430, "Before the edit")
    sender = h.sender()
    await drain(sender)
    originals = {}
    for chat in (4301, 4302):
        delivery = h.ctx.bot_store.delivery("statement", sid, chat)
        assert delivery is not None and delivery.status == "sent"
        originals[chat] = delivery.message_ids[0]
    h.source.set_body("/", with_new_statement(7430, "After the edit"))
    outcome = await h.poll()
    assert outcome.changes is not None and [s.id for s in outcome.changes.edited] == [sid]
    await asyncio.sleep(1.1)  # one message a second per private chat, edits included
    await drain(sender)
    edits = [c for c in tg.calls_of("editMessageText") if c.status == 200]
    assert sorted(c.chat_id for c in edits if c.chat_id is not None) == [4301, 4302]
    for call in edits:
        assert call.params["message_id"] == originals[call.chat_id]
        assert str(call.params["text"]).startswith("<b>After the edit</b>")
    # The feed entry moved too, and the history has both titles.
    assert [v.title for v in h.ctx.store.versions(sid)] == ["Before the edit", "After the edit"]


async def test_following_edits_can_be_turned_off(harness: Harness) -> None:
    h, tg = harness, harness.tg
    subscribe(h.ctx.bot_store, [4401])
    h.ctx.settings = dataclasses.replace(
        h.ctx.settings, telegram=dataclasses.replace(h.ctx.settings.telegram, follow_edits=False)
    )
    await h.publish(7440, "Left alone")
    await drain(h.sender())
    h.source.set_body("/", with_new_statement(7440, "Changed title"))
    await h.poll()
    await drain(h.sender())
    assert tg.calls_of("editMessageText") == []
