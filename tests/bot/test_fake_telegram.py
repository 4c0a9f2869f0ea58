"""The fake Bot API server, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator, Iterator

import pytest
from telegram import Bot, Message, MessageEntity, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.support.fake_telegram import FakeTelegram


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns (an error under filterwarnings=error) whenever RetryAfter is built,
    # unless opted in to timedelta periods.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, base_url=tg.api_url, base_file_url=tg.file_url) as client:
        yield client


async def test_get_me_through_base_url(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "feedbot_test_bot", True)
    assert tg.url.startswith("http://127.0.0.1:")
    assert tg.calls_of("getMe")[-1].status == 200


async def test_send_message_returns_message_and_is_recorded(tg: FakeTelegram, bot: Bot) -> None:
    first = await bot.send_message(42, "<b>hello</b>", parse_mode="HTML")
    await asyncio.sleep(1.0)  # one message per second to a private chat
    second = await bot.send_message(42, "again")
    assert first.chat.id == 42
    assert first.chat.type == "private"
    assert first.text == "<b>hello</b>"
    assert second.message_id == first.message_id + 1
    assert [p["text"] for p in tg.sent(chat_id=42)] == ["<b>hello</b>", "again"]
    assert tg.sent(chat_id=43) == []
    call = tg.calls_of("sendMessage")[0]
    assert (call.chat_id, call.status, call.params["parse_mode"]) == (42, 200, "HTML")


async def test_edit_message_text() -> None:
    with FakeTelegram(private_per_sec=None) as tg:  # edits count against chat limits too
        async with Bot(tg.token, base_url=tg.api_url) as bot:
            sent = await bot.send_message(42, "draft")
            edited = await bot.edit_message_text("final", chat_id=42, message_id=sent.message_id)
            assert isinstance(edited, Message)
            assert (edited.message_id, edited.text) == (sent.message_id, "final")
            assert edited.edit_date is not None
            with pytest.raises(BadRequest, match="not modified"):
                await bot.edit_message_text("final", chat_id=42, message_id=sent.message_id)
            with pytest.raises(BadRequest, match="not found"):
                await bot.edit_message_text("x", chat_id=42, message_id=999)


async def test_blocked_chat_raises_forbidden(tg: FakeTelegram, bot: Bot) -> None:
    tg.block(42)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(42, "hi")
    assert tg.sent() == []
    assert tg.calls_of("sendMessage")[0].status == 403


async def test_gone_chat_raises_bad_request(tg: FakeTelegram, bot: Bot) -> None:
    tg.gone(-100)
    with pytest.raises(BadRequest, match=r"[Cc]hat not found"):
        await bot.send_message(-100, "hi")


async def test_migrated_chat_raises_chat_migrated(tg: FakeTelegram, bot: Bot) -> None:
    tg.migrate(-55, -1001234567890)
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(-55, "hi")
    assert info.value.new_chat_id == -1001234567890
    chat = await bot.get_chat(-1001234567890)
    assert chat.type == "supergroup"


async def test_forced_retry_after(tg: FakeTelegram, bot: Bot) -> None:
    tg.force_retry_after(7)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(42, "hi")
    assert info.value.retry_after == dtm.timedelta(seconds=7)
    assert tg.too_many == 1
    await bot.send_message(42, "hi")  # only the next call was affected


async def test_second_message_within_a_second_to_private_chat_is_429(
    tg: FakeTelegram, bot: Bot
) -> None:
    await bot.send_message(42, "one")
    await bot.send_message(43, "other chat is fine")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(42, "two")
    assert info.value.retry_after == dtm.timedelta(seconds=1)
    assert [c.status for c in tg.calls_of("sendMessage")] == [200, 200, 429]
    assert tg.too_many == 1


async def test_global_limit_is_a_sliding_second(tg: FakeTelegram, bot: Bot) -> None:
    await asyncio.gather(*(bot.send_message(1000 + i, "x") for i in range(30)))
    with pytest.raises(RetryAfter):
        await bot.send_message(2000, "31st")
    await bot.send_message(2000, "paid", allow_paid_broadcast=True)
    await asyncio.sleep(1.0)
    await bot.send_message(2001, "window has slid")
    assert tg.too_many == 1


async def test_group_limit_per_minute() -> None:
    with FakeTelegram(group_per_min=3) as tg:
        async with Bot(tg.token, base_url=tg.api_url) as bot:
            for _ in range(3):
                await bot.send_message(-77, "x")
            with pytest.raises(RetryAfter) as info:
                await bot.send_message(-77, "x")
    retry_after = info.value.retry_after
    assert isinstance(retry_after, dtm.timedelta)
    assert dtm.timedelta(seconds=55) < retry_after <= dtm.timedelta(seconds=60)


async def test_wrong_token_raises_invalid_token(tg: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=tg.api_url):
            pass
    assert tg.calls_of("getMe")[0].status == 401


async def test_injected_command_reaches_get_updates(tg: FakeTelegram, bot: Bot) -> None:
    tg.send_command(42, "/start hello", username="alice")
    updates = await bot.get_updates(timeout=5)
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None
    assert message.text == "/start hello"
    assert message.chat.id == 42
    assert message.from_user is not None
    assert message.from_user.username == "alice"
    assert message.entities[0].type == MessageEntity.BOT_COMMAND
    assert message.entities[0].length == len("/start")

    # Acknowledged updates are gone; an empty long poll returns after the internal cap.
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=5) == ()


async def test_long_poll_wakes_up_on_new_update(tg: FakeTelegram, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, tg.add_my_chat_member, -500, "group", "member")
    started = loop.time()
    updates = await bot.get_updates(timeout=5)
    assert loop.time() - started < 0.9
    assert updates[0].my_chat_member is not None
    assert updates[0].my_chat_member.new_chat_member.status == "member"


async def test_injected_failures_and_html_errors(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next(42, status=500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(42, "hi")
    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await bot.send_message(43, "<br>", parse_mode="HTML")
    await bot.send_message(42, "hi")  # failures did not use up the chat's quota


async def test_delay_provokes_client_timeout(tg: FakeTelegram) -> None:
    tg.delay("getChat", 0.5, times=1)
    request = HTTPXRequest(read_timeout=0.1)
    async with Bot(tg.token, base_url=tg.api_url, request=request) as bot:
        with pytest.raises(TimedOut):
            await bot.get_chat(42)
        assert (await bot.get_chat(42)).type == "private"


async def test_application_answers_injected_command(tg: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, "welcome")

    app = (
        ApplicationBuilder().token(tg.token).base_url(tg.api_url).base_file_url(tg.file_url).build()
    )
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.bot.set_my_commands([("start", "Start")])
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0)
        await app.start()
        tg.send_command(7, "/start")
        calls = await tg.wait_for("sendMessage", chat_id=7)
        await app.updater.stop()
        await app.stop()
    assert calls[0].params["text"] == "welcome"
    assert tg.commands() == [{"command": "start", "description": "Start"}]
