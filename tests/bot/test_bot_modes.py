"""The bot's other ways in and out: webhook mode, configured channels,
removal from a chat and group migration — against the fake Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable

import aiohttp

from feedbot.app import Context, open_context
from feedbot.service import ROLES, run_service
from feedbot.settings import load_settings
from tests.conftest import FIXTURES, ConfigFactory
from tests.support.fake_source import FakeSource
from tests.support.fake_telegram import FakeTelegram
from tests.support.processes import free_port

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")


def with_statement(n: int, title: str) -> str:
    item = (
        '<ul class="news-list"><li class="news-item"><span class="news-date">07.07.2020</span> - '
        f'<a class="news-title" href="/fnapr/{n}">{title}</a><p class="news-lead">Lead.</p></li>'
    )
    return HOME.replace('<ul class="news-list">', item, 1)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def service(
    make_config: ConfigFactory, source: FakeSource, tg: FakeTelegram, **env: str
) -> AsyncIterator[Context]:
    port = env.pop("PORT", "0")
    path = make_config(source.url + "/", http={"port": int(port)})
    settings = load_settings(
        path, env={"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.api_url, **env}
    )
    ctx = open_context(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(ctx, ROLES["run"], stop=stop))
    try:
        await until(lambda: ctx.store.count_statements() == 11)
        yield ctx
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        ctx.close()


async def test_webhook_mode_takes_updates_through_our_http_server(
    make_config: ConfigFactory, source: FakeSource, tg: FakeTelegram
) -> None:
    port = free_port()
    async with service(
        make_config, source, tg, PORT=str(port), FEEDBOT_WEBHOOK_URL=f"http://127.0.0.1:{port}"
    ):
        (call,) = tg.calls_of("setWebhook")
        url, secret = call.params["url"], call.params["secret_token"]
        assert url.startswith(f"http://127.0.0.1:{port}/telegram/")
        assert tg.token not in url and tg.token.split(":")[1] not in url
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "text": "/start",
                "chat": {"id": 555, "type": "private"},
                "from": {"id": 555, "is_bot": False, "first_name": "Ann"},
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        }
        async with aiohttp.ClientSession() as http:
            forged = await http.post(
                url, data=json.dumps(update), headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            )
            assert forged.status == 403
            ok = await http.post(
                url,
                data=json.dumps(update),
                headers={
                    "X-Telegram-Bot-Api-Secret-Token": secret,
                    "Content-Type": "application/json",
                },
            )
            assert ok.status == 200
        await until(lambda: len(tg.sent(555)) == 1)
        assert "Subscribed" in str(tg.sent(555)[0]["text"])
        assert tg.calls_of("getUpdates") == []  # no long polling beside the webhook


async def test_configured_channels_get_every_statement(
    make_config: ConfigFactory, source: FakeSource, tg: FakeTelegram
) -> None:
    tg.set_chat(-1009, "channel", title="Announcements")
    async with service(make_config, source, tg, FEEDBOT_CHANNEL_IDS="-1009") as ctx:
        sub = ctx.bot_store.subscriber(-1009)
        assert (
            sub is not None and sub.active and sub.chat_type == "channel" and sub.origin == "config"
        )
        source.set_body("/", with_statement(7301, "For the channel"))
        await until(lambda: any("For the channel" in str(m["text"]) for m in tg.sent(-1009)))


async def test_removed_from_a_group_or_blocked_unsubscribes(
    make_config: ConfigFactory, source: FakeSource, tg: FakeTelegram
) -> None:
    async with service(make_config, source, tg) as ctx:
        for chat, kind in ((-2001, "supergroup"), (31, "private")):
            tg.send_command(chat, "/start", chat_type=kind, title="G" if chat < 0 else None)
        await until(lambda: ctx.bot_store.subscriber_counts()["total"] == 2)
        tg.add_my_chat_member(-2001, "supergroup", "left", old_status="member")
        tg.add_my_chat_member(31, "private", "kicked", old_status="member")
        await until(lambda: ctx.bot_store.subscriber_counts()["total"] == 0)
        reasons = {
            s.chat_id: s.unsubscribe_reason for s in ctx.bot_store.subscribers(active_only=False)
        }
        assert reasons == {-2001: "removed", 31: "blocked"}


async def test_a_group_upgraded_to_a_supergroup_keeps_its_subscription(
    make_config: ConfigFactory, source: FakeSource, tg: FakeTelegram
) -> None:
    async with service(make_config, source, tg) as ctx:
        tg.send_command(-3001, "/start", chat_type="group", title="Old group")
        await until(lambda: ctx.bot_store.subscriber(-3001) is not None)
        tg.set_chat(-1003001, "supergroup", title="Old group")
        tg.add_update(
            {
                "message": {
                    "message_id": 99,
                    "date": int(time.time()),
                    "chat": {"id": -3001, "type": "group", "title": "Old group"},
                    "from": {"id": 7, "is_bot": False, "first_name": "Admin"},
                    "migrate_to_chat_id": -1003001,
                }
            }
        )
        await until(lambda: ctx.bot_store.subscriber(-1003001) is not None)
        assert ctx.bot_store.subscriber(-3001) is None
        source.set_body("/", with_statement(7302, "After the upgrade"))
        await until(lambda: any("After the upgrade" in str(m["text"]) for m in tg.sent(-1003001)))
