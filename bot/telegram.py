"""The python-telegram-bot Application: built, started and stopped inside
feedbot's own event loop (no ``run_polling``), beside the scheduler and the
HTTP server. Long polling by default; with ``FEEDBOT_WEBHOOK_URL`` Telegram
posts updates to our HTTP server instead."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from telegram import Bot, BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from bot import texts
from bot.config import TelegramSettings
from bot.handlers import BotDeps, Handlers
from bot.i18n import DEFAULT, LANGUAGES, translator
from bot.ratelimit import FloodLimiter
from bot.updates import PerChatUpdateProcessor

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "channel_post", "my_chat_member", "callback_query"]
WEBHOOK_PATH = "/telegram/{secret}"


def file_url(api_url: str) -> str:
    """The Bot API's file base next to its method base (``…/bot`` → ``…/file/bot``)."""
    base = api_url.rstrip("/")
    return base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"


def webhook_secret(token: str) -> str:
    """A secret for the webhook path and header, derived from (never equal to) the token."""
    return hashlib.sha256(b"feedbot-webhook:" + token.encode()).hexdigest()[:32]


class TelegramBot:
    def __init__(self, settings: TelegramSettings, deps: BotDeps) -> None:
        if not settings.token:
            raise ValueError("TelegramBot needs a token")
        self.settings = settings
        self.token = settings.token
        self.deps = deps
        self.limiter = FloodLimiter(paid_broadcast=settings.paid_broadcast)
        builder = (
            ApplicationBuilder()
            .token(settings.token)
            .base_url(settings.api_url)
            .base_file_url(file_url(settings.api_url))
            .request(
                HTTPXRequest(
                    connection_pool_size=64,
                    connect_timeout=10,
                    read_timeout=settings.request_timeout,
                    write_timeout=settings.request_timeout,
                    pool_timeout=30,
                )
            )
            .get_updates_request(HTTPXRequest(connect_timeout=10, read_timeout=40))
            .rate_limiter(self.limiter)
            .concurrent_updates(PerChatUpdateProcessor())
            .job_queue(None)
        )
        if settings.webhook_url:
            builder = builder.updater(None)
        self.app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        Handlers(deps).register(self.app)
        self.app.add_error_handler(self._on_error)
        self.username: str | None = None

    @property
    def bot(self) -> Bot:
        bot: Bot = self.app.bot
        return bot

    async def _on_error(self, update: object, context: Any) -> None:
        # The formatter redacts the token from the message and the traceback.
        log.error("error while handling an update", exc_info=context.error)

    async def start(self) -> None:
        await self.app.initialize()
        self.username = self.app.bot.username
        await self.register_commands()
        await self.app.start()
        if self.settings.webhook_url:
            url = self.settings.webhook_url.rstrip("/") + WEBHOOK_PATH.format(
                secret=webhook_secret(self.token)
            )
            await self.bot.set_webhook(
                url, allowed_updates=ALLOWED_UPDATES, secret_token=webhook_secret(self.token)
            )
            log.info("Telegram: @%s receives updates by webhook", self.username)
        else:
            assert self.app.updater is not None
            await self.bot.delete_webhook()
            await self.app.updater.start_polling(
                allowed_updates=ALLOWED_UPDATES,
                poll_interval=0.0,
                timeout=30,
                error_callback=self._polling_error,
            )
            log.info("Telegram: @%s receives updates by long polling", self.username)

    def _polling_error(self, exc: TelegramError) -> None:
        log.warning("Telegram getUpdates failed: %s", exc)

    async def register_commands(self) -> None:
        """The command menu in each language: English for everyone by default, Russian
        for users whose Telegram speaks Russian; the operators' chats get theirs too."""
        for lang in LANGUAGES:
            _ = translator(lang)
            language_code = None if lang == DEFAULT else lang
            await self.bot.set_my_commands(
                [BotCommand(n, _(d)) for n, d in texts.COMMANDS], language_code=language_code
            )
            for chat_id in self.deps.admin_chat_ids:
                try:
                    await self.bot.set_my_commands(
                        [BotCommand(n, _(d)) for n, d in texts.COMMANDS + texts.ADMIN_COMMANDS],
                        scope=BotCommandScopeChat(chat_id),
                        language_code=language_code,
                    )
                except TelegramError as exc:
                    log.warning(
                        "could not register operator commands for chat %d: %s", chat_id, exc
                    )

    async def stop(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    @property
    def webhook_path(self) -> str:
        """The secret path Telegram posts updates to (webhook mode)."""
        return WEBHOOK_PATH.format(secret=webhook_secret(self.token))

    async def take_update(self, payload: object, secret_header: str | None) -> str:
        """An update Telegram posted to the webhook: ``ok`` (queued for the handlers),
        ``forbidden`` (not Telegram: the secret header is wrong) or ``bad`` (no update)."""
        if secret_header != webhook_secret(self.token):
            return "forbidden"
        if not isinstance(payload, dict):
            return "bad"
        try:
            update = Update.de_json(payload, self.bot)
        except (ValueError, TypeError, KeyError):
            return "bad"
        await self.app.update_queue.put(update)
        return "ok"
