"""``/sources``: a chat chooses the sources it follows.

The reply lists every source with a button each; pressing one follows or leaves
that source, answers the button (Telegram shows it briefly) and edits the list in
place to show the new state. Following a source subscribes a chat that was not.
The button's data carries the source's id (``src:<id>``), never its key: ids are
what operators and feed addresses use, and the primary's key is empty.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import metrics, texts
from bot.i18n import translator
from bot.sources import BotSources
from bot.store import BotStore, Subscriber

log = logging.getLogger(__name__)
SOURCE_BUTTON = r"^src:"  # the callback data of a source's button: src:<id>
FOLLOWED_MARK = "✅"
NOT_FOLLOWED_MARK = "➕"

Language = Callable[[Update, Subscriber | None], str]


class SourcesChooser:
    def __init__(
        self,
        bot_store: BotStore,
        sources: BotSources,
        now: Callable[[], dt.datetime],
        language: Language,
    ) -> None:
        self.bot_store = bot_store
        self.sources = sources
        self.now = now
        self.language = language

    def view(self, chat_id: int, lang: str) -> tuple[str, InlineKeyboardMarkup | None]:
        """The list as the chat sees it now: the text and a button per source."""
        _ = translator(lang)
        if not self.sources.all:
            return _(texts.SOURCES_ONLY_ONE), None
        sub = self.bot_store.subscriber(chat_id)
        followed = self.bot_store.following(chat_id)
        lines = [_(texts.SOURCES)]
        if sub is None or not sub.active:
            lines.append(_(texts.SOURCES_NOT_SUBSCRIBED))
        elif not followed & set(self.sources.keys):
            lines.append(_(texts.SOURCES_NONE_FOLLOWED))
        buttons = [
            [
                InlineKeyboardButton(
                    f"{FOLLOWED_MARK if s.key in followed else NOT_FOLLOWED_MARK} {s.name}"[:64],
                    callback_data=f"src:{s.id}",
                )
            ]
            for s in self.sources.all
        ]
        return "\n\n".join(lines), InlineKeyboardMarkup(buttons)

    async def show(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("sources").inc()
        chat = update.effective_chat
        message = update.effective_message
        if chat is None or message is None:
            return
        sub = await asyncio.to_thread(self.bot_store.subscriber, chat.id)
        text, markup = await asyncio.to_thread(self.view, chat.id, self.language(update, sub))
        await message.reply_text(
            text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            do_quote=False,
        )

    async def pressed(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """A source's button: follow or leave it, say so, and redraw the list."""
        metrics.COMMANDS.labels("sources_button").inc()
        query = update.callback_query
        chat = update.effective_chat
        if query is None or chat is None:
            return
        sub = await asyncio.to_thread(self.bot_store.subscriber, chat.id)
        lang = self.language(update, sub)
        _ = translator(lang)
        source = self.sources.by_id((query.data or "").removeprefix("src:"))
        if source is None:
            await query.answer(_(texts.SOURCE_GONE))
        else:
            following = source.key in await asyncio.to_thread(self.bot_store.following, chat.id)
            if not following and (sub is None or not sub.active):
                user = update.effective_user
                await asyncio.to_thread(
                    self.bot_store.subscribe,
                    chat.id,
                    chat.type,
                    self.now(),
                    chat.title or chat.full_name,
                    user.language_code if user else None,
                    follow=(),  # only what was pressed, not the defaults
                )
            await asyncio.to_thread(
                self.bot_store.set_following, chat.id, source.key, not following
            )
            said = texts.LEFT_SOURCE if following else texts.FOLLOWING_SOURCE
            await query.answer(_(said).format(source=source.name)[:200])
        text, markup = await asyncio.to_thread(self.view, chat.id, lang)
        try:
            await query.edit_message_text(
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except BadRequest as exc:
            # A second press before the first redraw finds the list as it should be.
            if "not modified" not in str(exc):
                log.warning("could not redraw the sources in chat %d: %s", chat.id, exc)
