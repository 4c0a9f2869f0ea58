"""Bot commands. Each handler reads or changes the stores and replies; replies are
HTML built from escaped values. Store calls run in a thread, off the event loop.

Replies speak the chat's language: the one chosen with /language, else the
language of the Telegram user who wrote (English unless it is Russian)."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from telegram import (
    Chat,
    ChatMemberUpdated,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import filters as chat_filters
from bot import metrics, texts
from bot.choose import SOURCE_BUTTON, SourcesChooser
from bot.i18n import DEFAULT, language_for, translator
from bot.messages import latest_message, sources_counters_message
from bot.sources import BotSources
from bot.store import BotStore, Subscriber
from feeds.clock import LONDON
from feeds.config import SourceSettings
from feeds.errors import FeedbotError
from feeds.model import Page, Statement, StoredCounter
from feeds.store import Store
from feeds.urls import masked_in_text, without_credentials

log = logging.getLogger(__name__)
MAX_LATEST = 20
# ASCII digits only: int() also reads "²" or "٣", and some of those it then refuses.
_COUNT = re.compile(r"^[0-9]{1,3}$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$", re.ASCII)
_QUIET = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)$", re.ASCII)
LANGUAGE_ARGS = {
    "en": "en",
    "english": "en",
    "английский": "en",
    "ru": "ru",
    "russian": "ru",
    "русский": "ru",
}


@dataclass
class BotDeps:
    store: Store
    bot_store: BotStore
    public_url: str
    source_url: str
    admin_chat_ids: tuple[int, ...]
    preview: Callable[[], Page] | None = None  # read the live page now (operators' /preview)
    # Every source (feeds.config.FeedsConfig.sources); none given: the primary alone.
    sources: Sequence[SourceSettings] = ()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def _newest(store: Store, count: int, terms: tuple[chat_filters.Term, ...]) -> list[Statement]:
    """The newest ``count`` statements of one store (view) that ``terms`` let through."""
    if not terms:
        return store.statements(limit=count)
    found: list[Statement] = []
    offset = 0
    while len(found) < count:
        batch = store.statements(limit=200, offset=offset)
        if not batch:
            break
        found += [s for s in batch if chat_filters.matches(terms, s.title, s.summary)]
        offset += len(batch)
    return found[:count]


class ForAnotherBot(filters.MessageFilter):
    """``/start@otherbot``: in a group every bot sees every command; one addressed
    to another bot is not ours to answer, not even with "unknown command"
    (CommandHandler already passes these over; the catch-all handlers must too)."""

    def filter(self, message: Message) -> bool:
        entity = message.entities[0] if message.entities else None
        if entity is None or entity.type != MessageEntity.BOT_COMMAND or entity.offset != 0:
            return False
        _, at, name = message.parse_entity(entity).partition("@")
        return bool(at) and name.lower() != (message.get_bot().username or "").lower()


FOR_ANOTHER_BOT = ForAnotherBot()


def _chat(update: Update) -> Chat:
    chat = update.effective_chat
    assert chat is not None
    return chat


def reply_language(update: Update, sub: Subscriber | None) -> str:
    """The chat's choice (/language), else the language of the Telegram user who
    wrote, else what /start recorded for the chat (a channel has no user), else English."""
    if sub is not None and sub.language_chosen and sub.language:
        return language_for(sub.language)
    user = update.effective_user
    if user is not None and user.language_code:
        return language_for(user.language_code)
    if sub is not None and sub.language:
        return language_for(sub.language)
    return DEFAULT


def filter_error(exc: chat_filters.FilterError, lang: str) -> str:
    """A FilterError's (English) message in the chat's language."""
    limits = {"max_length": chat_filters.MAX_TERM_LENGTH, "max_terms": chat_filters.MAX_TERMS}
    for message in texts.FILTER_ERRORS:
        if message.format(**limits) == str(exc):
            return translator(lang)(message).format(**limits)
    return str(exc)


async def reply(update: Update, text: str | list[str]) -> None:
    message = update.effective_message
    if message is None:
        return
    for part in [text] if isinstance(text, str) else text:
        await message.reply_text(
            part,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            do_quote=False,
        )


class Handlers:
    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps
        self.sources = BotSources.of(deps.sources)
        self.chooser = SourcesChooser(deps.bot_store, self.sources, deps.now, reply_language)

    async def _subscriber(self, update: Update) -> Subscriber | None:
        return await asyncio.to_thread(self.deps.bot_store.subscriber, _chat(update).id)

    async def _language(self, update: Update) -> str:
        return reply_language(update, await self._subscriber(update))

    def register(self, app: Application) -> None:  # type: ignore[type-arg]
        chats = filters.UpdateType.MESSAGES | filters.UpdateType.CHANNEL_POSTS
        for name, handler in (
            ("start", self.start),
            ("stop", self.stop),
            ("latest", self.latest),
            ("counters", self.counters),
            ("settings", self.settings),
            ("feed", self.feed),
            ("help", self.help),
            ("filter", self.filter),
            ("stats", self.stats),
            ("preview", self.preview),
            ("language", self.language),
            ("sources", self.chooser.show),
        ):
            app.add_handler(CommandHandler(name, handler, filters=chats))
        app.add_handler(CallbackQueryHandler(self.chooser.pressed, pattern=SOURCE_BUTTON))
        app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self.migrated))
        app.add_handler(ChatMemberHandler(self.membership, ChatMemberHandler.MY_CHAT_MEMBER))
        ours = ~FOR_ANOTHER_BOT
        app.add_handler(MessageHandler(filters.COMMAND & chats & ours, self.unknown))
        app.add_handler(
            MessageHandler(filters.ChatType.PRIVATE & filters.TEXT & ours, self.unknown)
        )

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("start").inc()
        chat = _chat(update)
        user = update.effective_user
        title = chat.title or chat.full_name
        language = user.language_code if user else None
        created = await asyncio.to_thread(
            self.deps.bot_store.subscribe,
            chat.id,
            chat.type,
            self.deps.now(),
            title,
            language,
            follow=self.sources.defaults(),
        )
        sub = await asyncio.to_thread(self.deps.bot_store.subscriber, chat.id)
        time = sub.counters_time if sub else "09:00"
        _ = translator(reply_language(update, sub))
        await reply(update, _(texts.WELCOME).format(time=time) if created else _(texts.ALREADY))

    async def stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("stop").inc()
        _ = translator(await self._language(update))
        done = await asyncio.to_thread(
            self.deps.bot_store.unsubscribe, _chat(update).id, "stop", self.deps.now()
        )
        await reply(update, _(texts.STOPPED) if done else _(texts.NOT_SUBSCRIBED))

    async def latest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("latest").inc()
        sub = await self._subscriber(update)
        lang = reply_language(update, sub)
        args = context.args or []
        count = 5
        if args:
            if len(args) > 1 or not _COUNT.match(args[0]) or not 1 <= int(args[0]) <= MAX_LATEST:
                usage = translator(lang)(texts.LATEST_USAGE)
                await reply(update, usage.format(max_latest=MAX_LATEST))
                return
            count = int(args[0])
        terms = sub.filters if sub else ()
        statements = await asyncio.to_thread(self._latest, _chat(update).id, count, terms)
        await reply(update, latest_message(statements, lang, self.sources.names()))

    def _chosen_stores(self, chat_id: int) -> list[Store]:
        """The store views of the sources this chat reads: one view of them all when
        it reads every source, else one per source it follows."""
        if not self.sources.several:
            return [self.deps.store]
        keys = self.sources.chosen(self.deps.bot_store.following(chat_id))
        if set(keys) == set(self.sources.keys):
            return [self.deps.store.view(None)]
        return [self.deps.store.view(key) for key in keys]

    def _latest(
        self, chat_id: int, count: int, terms: tuple[chat_filters.Term, ...]
    ) -> list[Statement]:
        """The newest ``count`` statements of the chat's sources its filters let through."""
        stores = self._chosen_stores(chat_id)
        if len(stores) == 1:
            return _newest(stores[0], count, terms)
        found = [s for store in stores for s in _newest(store, count, terms)]
        # Newest first across sources, as the store orders one source's.
        found.sort(key=lambda s: (s.published or s.first_seen.astimezone(LONDON).date(), s.seq))
        return list(reversed(found))[:count]

    async def counters(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("counters").inc()
        lang = await self._language(update)
        today = self.deps.now().astimezone(LONDON).date()
        sections = await asyncio.to_thread(self._counters, _chat(update).id)
        await reply(update, sources_counters_message(sections, today, lang))

    def _counters(self, chat_id: int) -> list[tuple[str | None, list[StoredCounter]]]:
        """The counters of the sources this chat reads, under their names (several sources)."""
        if not self.sources.several:
            return [(None, self.deps.store.counters())]
        keys = self.sources.chosen(self.deps.bot_store.following(chat_id))
        with_counters = set(self.sources.with_counters())
        return [
            (self.sources.name(key), self.deps.store.view(key).counters())
            for key in keys
            if key in with_counters
        ]

    async def settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("settings").inc()
        chat_id = _chat(update).id
        store = self.deps.bot_store
        sub, lang = await self._subscribed(update)
        if sub is None:
            return
        _ = translator(lang)
        args = [a.lower() for a in context.args or []]
        if len(args) == 2 and args[0] == "time" and (m := _TIME.match(args[1])):
            sub = await asyncio.to_thread(
                store.set_counters, chat_id, None, f"{int(m.group(1)):02d}:{m.group(2)}"
            )
        elif len(args) == 2 and args[0] == "counters" and args[1] in ("on", "off"):
            sub = await asyncio.to_thread(store.set_counters, chat_id, args[1] == "on", None)
        elif len(args) == 2 and args[0] == "mode" and args[1] in ("instant", "digest"):
            sub = await asyncio.to_thread(store.set_delivery, chat_id, args[1])
        elif len(args) == 2 and args[0] == "quiet" and args[1] == "off":
            sub = await asyncio.to_thread(store.set_delivery, chat_id, None, None, True)
        elif len(args) == 2 and args[0] == "quiet" and (q := _QUIET.match(args[1])):
            start = f"{int(q.group(1)):02d}:{q.group(2)}"
            end = f"{int(q.group(3)):02d}:{q.group(4)}"
            if start == end:
                await reply(update, _(texts.SETTINGS_USAGE))
                return
            sub = await asyncio.to_thread(store.set_delivery, chat_id, None, (start, end))
        elif args:
            await reply(update, _(texts.SETTINGS_USAGE))
            return
        assert sub is not None
        await reply(update, self._settings_text(sub, lang))

    async def _subscribed(self, update: Update) -> tuple[Subscriber | None, str]:
        """This chat's subscription and reply language; says so (and gives no
        subscription) when the chat is not subscribed."""
        sub = await asyncio.to_thread(self.deps.bot_store.subscriber, _chat(update).id)
        lang = reply_language(update, sub)
        if sub is None or not sub.active:
            await reply(update, translator(lang)(texts.NOT_SUBSCRIBED))
            return None, lang
        return sub, lang

    @staticmethod
    def _settings_text(sub: Subscriber, lang: str = DEFAULT) -> str:
        _ = translator(lang)
        mode = texts.MODE_DIGEST if sub.delivery_mode == "digest" else texts.MODE_INSTANT
        quiet = (
            _(texts.QUIET_HOURS).format(start=sub.quiet_start, end=sub.quiet_end)
            if sub.quiet_start
            else _(texts.QUIET_NONE)
        )
        return _(texts.SETTINGS).format(
            mode=_(mode).format(time=sub.counters_time),
            counters=_(texts.ON) if sub.counters_enabled else _(texts.OFF),
            time=sub.counters_time,
            quiet=quiet,
            filters=html.escape(" ".join(str(t) for t in sub.filters)) or _(texts.FILTERS_NONE),
        )

    async def filter(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("filter").inc()
        chat_id = _chat(update).id
        store = self.deps.bot_store
        sub, lang = await self._subscribed(update)
        if sub is None:
            return
        _ = translator(lang)
        message = update.effective_message
        raw = (message.text or "") if message else ""
        rest = raw.split(maxsplit=2)  # "/filter", action, terms
        action = rest[1].lower() if len(rest) > 1 else "list"
        terms = list(sub.filters)
        try:
            if action == "add" and len(rest) == 3:
                terms = chat_filters.merge(terms, chat_filters.parse_terms(rest[2]))
            elif action == "remove" and len(rest) == 3:
                gone = set(chat_filters.parse_terms(rest[2]))
                terms = [t for t in terms if t not in gone]
            elif action == "clear":
                terms = []
            elif action != "list":
                usage = _(texts.FILTER_USAGE)
                await reply(update, usage.format(max_terms=chat_filters.MAX_TERMS))
                return
        except chat_filters.FilterError as exc:
            error = html.escape(filter_error(exc, lang))
            await reply(update, _(texts.FILTER_ERROR).format(error=error))
            return
        if action != "list":
            await asyncio.to_thread(store.set_filters, chat_id, terms)
        shown = html.escape(" ".join(str(t) for t in terms))
        await reply(
            update, _(texts.FILTER_LIST).format(terms=shown) if terms else _(texts.FILTER_EMPTY)
        )

    async def preview(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("preview").inc()
        _ = translator(await self._language(update))
        if _chat(update).id not in self.deps.admin_chat_ids:
            await reply(update, _(texts.NOT_ADMIN))
            return
        if self.deps.preview is None:
            await reply(update, _(texts.PREVIEW_UNAVAILABLE))
            return
        try:
            page = await asyncio.to_thread(self.deps.preview)
        except FeedbotError as exc:
            await reply(update, _(texts.PREVIEW_FAILED).format(error=html.escape(str(exc))))
            return
        lines = [
            f"{html.escape(e.published.isoformat() if e.published else '—')} "
            f"{html.escape(e.title[:120])}"
            for e in page.entries[:5]
        ]
        counters = [html.escape(f"{c.days} — {c.subject}") for c in page.counters]
        await reply(
            update,
            _(texts.PREVIEW).format(
                entries=len(page.entries),
                counters=len(page.counters),
                first="\n".join(lines),
                counter_lines="\n".join(counters) or "—",
            ),
        )

    async def feed(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("feed").inc()
        _ = translator(await self._language(update))
        base = self.deps.public_url
        if not self.sources.several:
            feeds = _(texts.FEEDS).format(base=base)
        else:
            followed = await asyncio.to_thread(self.deps.bot_store.following, _chat(update).id)
            lines = [
                f"{s.name}: {base}/feeds/{s.id}/statements.atom"
                for s in self.sources.among(self.sources.chosen(followed))
            ]
            feeds = _(texts.FEEDS_SEVERAL).format(base=base, feeds="\n".join(lines))
        await reply(update, html.escape(feeds, quote=False))

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("help").inc()
        _ = translator(await self._language(update))
        intro = (
            _(texts.HELP_SEVERAL_SOURCES)
            if self.sources.several
            else _(texts.HELP_ONE_SOURCE).format(
                source=html.escape(without_credentials(self.deps.source_url))
            )
        )
        await reply(update, _(texts.HELP).format(intro=intro, max_latest=MAX_LATEST))

    async def language(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/language`` shows the chat's language; ``/language en|ru`` chooses it (kept
        for the chat even before it subscribes; statements pushed later follow it)."""
        metrics.COMMANDS.labels("language").inc()
        chat = _chat(update)
        sub = await self._subscriber(update)
        args = [a.lower() for a in context.args or []]
        if not args:
            lang = reply_language(update, sub)
            _ = translator(lang)
            current = (
                texts.LANGUAGE_CHOSEN if sub and sub.language_chosen else texts.LANGUAGE_AUTOMATIC
            )
            name = _(texts.LANGUAGE_NAMES[lang])
            await reply(update, f"{_(current).format(language=name)}\n{_(texts.LANGUAGE_USAGE)}")
            return
        chosen = LANGUAGE_ARGS.get(args[0]) if len(args) == 1 else None
        if chosen is None:
            await reply(update, translator(reply_language(update, sub))(texts.LANGUAGE_USAGE))
            return
        await asyncio.to_thread(
            self.deps.bot_store.set_language, chat.id, chosen, chat.type, self.deps.now()
        )
        _ = translator(chosen)
        await reply(update, _(texts.LANGUAGE_SET).format(language=_(texts.LANGUAGE_NAMES[chosen])))

    async def stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("stats").inc()
        lang = await self._language(update)
        if _chat(update).id not in self.deps.admin_chat_ids:
            await reply(update, translator(lang)(texts.NOT_ADMIN))
            return
        await reply(update, await asyncio.to_thread(self._stats_text, lang))

    def _stats_text(self, lang: str = DEFAULT) -> str:
        _ = translator(lang)
        counts = self.deps.bot_store.subscriber_counts()
        total = counts.pop("total")
        outbox = self.deps.bot_store.outbox_counts()
        common = {
            "total": total,
            "by_type": ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            or _(texts.STATS_NONE),
            "outbox": ", ".join(f"{k} {v}" for k, v in sorted(outbox.items()))
            or _(texts.STATS_EMPTY),
            "statements": self.deps.store.view(None).count_statements(),  # every source's
        }
        if not self.sources.several:
            last_poll, failures = self._poll_state(self.deps.store, self.deps.source_url, _)
            return _(texts.STATS).format(**common, last_poll=last_poll, failures=failures)
        lines = []
        for source in self.sources.all:
            last_poll, failures = self._poll_state(self.deps.store.view(source.key), source.url, _)
            lines.append(
                _(texts.STATS_SOURCE).format(
                    name=html.escape(source.name), last_poll=last_poll, failures=failures
                )
            )
        return _(texts.STATS_SOURCES).format(**common, sources="\n".join(lines))

    @staticmethod
    def _poll_state(store: Store, url: str, _: Callable[[str], str]) -> tuple[str, int]:
        """A source's last poll, as the operator reads it, and its failures in a row."""
        last = store.last_poll()
        failures = store.source_state(url).consecutive_failures
        if last is None:
            return _(texts.STATS_NO_POLL), failures
        text = f"{last.finished_at:%Y-%m-%d %H:%M} UTC, {last.result}"
        if last.error:
            text += f" ({masked_in_text(last.error)})"
        return html.escape(text), failures

    async def unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        metrics.COMMANDS.labels("unknown").inc()
        await reply(update, translator(await self._language(update))(texts.UNKNOWN))

    async def migrated(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.migrate_to_chat_id is None:
            return
        await asyncio.to_thread(
            self.deps.bot_store.move_chat,
            message.chat.id,
            message.migrate_to_chat_id,
            self.deps.now(),
        )

    async def membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change: ChatMemberUpdated | None = update.my_chat_member
        if change is None:
            return
        status = change.new_chat_member.status
        if status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
            reason = "blocked" if change.chat.type == Chat.PRIVATE else "removed"
            await asyncio.to_thread(
                self.deps.bot_store.unsubscribe, change.chat.id, reason, self.deps.now()
            )
