"""Answers to commands are not held up by another chat's commands or by broadcasts."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.harness import Running


@pytest.mark.one_database
async def test_one_busy_chat_does_not_hold_up_another_chats_command(running: Running) -> None:
    tg = running.tg
    await running.command(201, "/start")
    await running.command(202, "/start")
    # One user fires thirty commands; each answer to that chat is paced at 1/s.
    for _ in range(30):
        tg.send_command(201, "/latest 20")
    await asyncio.sleep(0.5)
    started = time.monotonic()
    reply = await running.command(202, "/help")
    assert time.monotonic() - started < 3.0
    assert "/latest" in reply
    # The busy chat gets its first few answers, a second apart; the flood beyond
    # them is dropped rather than queued for half a minute.
    await running.until(lambda: len(tg.sent(201)) >= 1 + 5, timeout=12)
    await asyncio.sleep(2)
    assert len(tg.sent(201)) <= 1 + 7


async def test_a_chats_commands_are_answered_in_the_order_sent(running: Running) -> None:
    tg = running.tg
    tg.send_command(203, "/start")
    tg.send_command(203, "/stop")
    tg.send_command(203, "/start")
    await running.until(lambda: len(tg.sent(203)) == 3, timeout=10)
    texts = [m["text"] for m in tg.sent(203)]
    assert "Unsubscribed" in texts[1]
    assert running.ctx.bot_store.subscriber(203) is not None
    assert running.ctx.bot_store.subscriber(203).active  # type: ignore[union-attr]
