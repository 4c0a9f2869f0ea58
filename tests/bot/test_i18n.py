"""Two languages: English (the message ids) and Russian (bot/locale/ru/.../feedbot.po).

The catalogue is checked against the texts marked in the code: a text without a
Russian translation, a translation without a text, or a translation that loses a
placeholder, a tag or a command fails here. End to end, with the fake Bot API:
replies follow the chat's choice or the user's Telegram language, pushed
statements the subscriber's language, and what the source published stays as it is.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import bot
from bot import filters as chat_filters
from bot import texts
from bot.handlers import filter_error
from bot.i18n import catalogue_path, format_date, language_for, plural, translator
from bot.messages import bundle_message, counters_message, statement_message
from feedbot.alerts import AlertWatch
from feedbot.app import open_context
from feedbot.settings import AlertSettings, Settings
from feeds.model import Statement, StoredCounter
from feeds.pipeline import Pipeline
from tests.conftest import FIXTURES
from tests.support.fake_source import FakeSource
from tests.support.harness import Running

BOT_DIR = Path(bot.__file__).parent
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
PLURAL_FORMS = (
    "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);"
)
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
TAG = re.compile(r"</?[a-z]+[^>]*>")
COMMAND = re.compile(r"(?<![\w}])/[a-z]+")
CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)

MessageId = str | tuple[str, str]


def extracted() -> dict[MessageId, list[str]]:
    """Every text marked in bot/ (``N_``, ``_``, ``ngettext``), with where it is."""
    found: dict[MessageId, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(BOT_DIR), keywords=KEYWORDS, comment_tags=()
    ):
        key = tuple(message) if isinstance(message, (tuple, list)) else message
        assert isinstance(key, str) or len(key) == 2, key
        found.setdefault(key, []).append(f"{filename}:{lineno}")  # type: ignore[arg-type]
    return found


def load_catalogue() -> Catalog:
    with catalogue_path("ru").open("rb") as po:
        return read_po(po, locale="ru", domain="feedbot")


def problems(catalog: Catalog, marked: Iterable[MessageId]) -> list[str]:
    """Everything wrong between the marked texts and a catalogue; empty when all is well."""
    found: list[str] = []
    marked = set(marked)
    for key in sorted(marked, key=str):
        msgid = key[0] if isinstance(key, tuple) else key
        if not msgid.strip():
            found.append(f"an empty English text is marked: {key!r}")
            continue
        message = catalog.get(msgid)
        if message is None:
            found.append(f"no Russian translation: {msgid!r}")
            continue
        if message.fuzzy:
            found.append(f"fuzzy translation: {msgid!r}")
        if isinstance(key, tuple) != message.pluralizable:
            found.append(f"plural forms differ between code and catalogue: {msgid!r}")
            continue
        if isinstance(key, tuple) and tuple(message.id) != key:
            found.append(f"plural text differs: {key!r} vs {message.id!r}")
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if len(strings) != catalog.num_plurals and message.pluralizable:
            found.append(f"{len(strings)} plural forms instead of 3: {msgid!r}")
        for index, translated in enumerate(strings):
            english = key[1] if isinstance(key, tuple) and index else msgid
            if not translated or not translated.strip():
                found.append(f"empty Russian translation: {msgid!r}")
                continue
            for what, pattern in (("placeholders", PLACEHOLDER), ("tags", TAG)):
                if Counter(pattern.findall(english)) != Counter(pattern.findall(translated)):
                    found.append(f"{what} differ: {english!r} -> {translated!r}")
            if set(COMMAND.findall(english)) != set(COMMAND.findall(translated)):
                found.append(f"commands differ: {english!r} -> {translated!r}")
            if not CYRILLIC.search(translated):
                found.append(f"not Russian: {english!r} -> {translated!r}")
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    marked_ids = {k[0] if isinstance(k, tuple) else k for k in marked}
    found += [f"in the catalogue but not in the code: {i!r}" for i in sorted(ids - marked_ids)]
    found += [f"obsolete entry: {i!r}" for i in catalog.obsolete]
    return found


# -- the catalogue ------------------------------------------------------------


def test_every_marked_text_has_a_russian_translation_and_nothing_else_is_there() -> None:
    marked = extracted()
    assert len(marked) > 50  # the extraction really found the texts
    assert problems(load_catalogue(), marked) == []


def test_the_check_fails_for_a_missing_or_extra_key() -> None:
    marked = extracted()
    catalog = load_catalogue()
    catalog.delete(texts.WELCOME)
    assert any(
        "no Russian translation" in p and "Subscribed" in p for p in problems(catalog, marked)
    )
    catalog = load_catalogue()
    catalog.add("A text nobody marks", "Текст, который никто не отметил")
    assert problems(catalog, marked) == [
        "in the catalogue but not in the code: 'A text nobody marks'"
    ]
    catalog = load_catalogue()
    catalog[texts.STOPPED].string = "Подписка отменена. Отправьте /begin."
    assert any("commands differ" in p for p in problems(catalog, marked))
    catalog = load_catalogue()
    catalog[texts.LATEST_USAGE].string = "Использование: /latest [N]."
    assert any("placeholders differ" in p for p in problems(catalog, marked))
    catalog = load_catalogue()
    catalog[texts.STOPPED].flags.add("fuzzy")
    assert any("fuzzy" in p for p in problems(catalog, marked))


def test_every_text_of_the_texts_module_is_marked() -> None:
    marked = {k[0] if isinstance(k, tuple) else k for k in extracted()}
    strings: list[str] = []
    for name, value in vars(texts).items():
        if not name.isupper():
            continue
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            strings += value.values()
        elif isinstance(value, (list, tuple)):
            for item in value:
                strings.append(item[1] if isinstance(item, tuple) else item)
    assert len(strings) > 40
    assert [s for s in strings if s not in marked] == []


def test_the_catalogue_header_declares_russian_plurals() -> None:
    catalog = load_catalogue()
    assert catalog.locale is not None and str(catalog.locale) == "ru"
    assert catalog.num_plurals == 3
    assert f'"Plural-Forms: {PLURAL_FORMS}\\n"' in catalogue_path("ru").read_text("utf-8")
    assert not catalog.fuzzy


def test_languages_translators_plurals_and_dates() -> None:
    assert [
        language_for(c) for c in ("ru", "ru-RU", "RU", "ru_UA", "en", "en-GB", "uk", "", None)
    ] == [
        "ru",
        "ru",
        "ru",
        "ru",
        "en",
        "en",
        "en",
        "en",
        "en",
    ]
    assert translator("en")(texts.STOPPED) == texts.STOPPED
    assert (
        translator("ru")(texts.STOPPED)
        == "Подписка отменена. Отправьте /start, чтобы подписаться снова."
    )
    ngettext = plural("ru")
    forms = {
        n: ngettext("{n} new statement", "{n} new statements", n)
        for n in (1, 2, 5, 11, 21, 22, 111)
    }
    assert forms == {
        1: "{n} новое заявление",
        2: "{n} новых заявления",
        5: "{n} новых заявлений",
        11: "{n} новых заявлений",
        21: "{n} новое заявление",
        22: "{n} новых заявления",
        111: "{n} новых заявлений",
    }
    assert plural("en")("{n} new statement", "{n} new statements", 1) == "{n} new statement"
    assert format_date(dt.date(2020, 6, 24), "en") == "24 June 2020"
    assert format_date(dt.date(2020, 6, 24), "ru") == "24 июня 2020"
    assert format_date(dt.date(2018, 3, 4), "ru") == "4 марта 2018"


def test_filter_errors_are_translated() -> None:
    errors = []
    for attempt in (
        lambda: chat_filters.parse_terms('"unclosed'),
        lambda: chat_filters.parse_terms("- ---"),
        lambda: chat_filters.parse_terms("x" * (chat_filters.MAX_TERM_LENGTH + 1)),
        lambda: chat_filters.merge(
            [], chat_filters.parse_terms(" ".join(f"w{i}" for i in range(30)))
        ),
    ):
        with pytest.raises(chat_filters.FilterError) as caught:
            attempt()
        errors.append(caught.value)
    assert [filter_error(e, "en") for e in errors] == [str(e) for e in errors]
    russian = [filter_error(e, "ru") for e in errors]
    assert all(CYRILLIC.search(r) for r in russian), russian
    assert "60" in russian[2] and "20" in russian[3]


# -- messages -------------------------------------------------------------------


def statement(
    title: str, summary: str, published: dt.date | None = dt.date(2020, 6, 24), n: int = 1
) -> Statement:
    seen = dt.datetime(2020, 7, 6, tzinfo=dt.UTC)
    return Statement(
        seq=n,
        id=f"https://example.org/{n}",
        url=f"https://example.org/{n}",
        title=title,
        summary=summary,
        content=None,
        published=published,
        featured=False,
        first_seen=seen,
        last_seen=seen,
        edited_at=None,
    )


def test_messages_in_russian_keep_the_source_text() -> None:
    s = statement("Statement by the Foreign Ministry", "The lead, as published.")
    assert statement_message(s, "ru") == [
        "<b>Statement by the Foreign Ministry</b>\n<i>24 июня 2020</i>\n\nThe lead, as published."
    ]
    assert statement_message(s) == [
        "<b>Statement by the Foreign Ministry</b>\n<i>24 June 2020</i>\n\nThe lead, as published."
    ]
    assert "<i>без даты</i>" in statement_message(statement("T", "L", None), "ru")[0]
    counter = StoredCounter(
        key="k",
        subject="the Salisbury incident",
        note="no credible information",
        since=dt.date(2018, 3, 4),
        page_days=855,
        page_as_of=dt.date(2020, 7, 6),
        active=True,
        first_seen=dt.datetime(2020, 7, 6, tzinfo=dt.UTC),
    )
    (message,) = counters_message([counter], dt.date(2020, 7, 6), "ru")
    assert message.startswith("<b>Счётчики на 6 июля 2020</b>\n\n<b>855</b>")
    (english,) = counters_message([counter], dt.date(2020, 7, 6))
    # The counter's own sentence is the page's, in both languages.
    assert message.split("\n\n")[1] == english.split("\n\n")[1]
    assert counters_message([], dt.date(2020, 7, 6), "ru") == ["Счётчиков пока нет."]
    many = [statement(f"Title {i}", "", n=i) for i in range(33)]
    (bundle,) = bundle_message(many, "ru")
    assert bundle.startswith("<b>33 новых заявления</b>")
    assert bundle.endswith("…и ещё 3: /latest 20")
    assert bundle_message(many[:21], "ru")[0].startswith("<b>21 новое заявление</b>")
    assert bundle_message(many[:5])[0].startswith("<b>5 new statements</b>")


def test_alerts_reach_each_operator_in_their_language(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    ctx = open_context(settings)
    now = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
    ctx.bot_store.set_language(901, "ru", "private", now)  # an operator who never subscribed
    watch = AlertWatch(ctx.store, ctx.bot_store, (900, 901), AlertSettings(failures=1))
    watch.after_poll(pipeline.poll(), now)
    source.misbehave("/", "status", status=503)
    (sent,) = watch.after_poll(pipeline.poll(), now)
    assert "failed 1 polls in a row" in sent  # the English text is what the log shows
    recorded = [text for _at, _kind, text in ctx.bot_store.recent_alerts(10)]
    assert len(recorded) == 2
    assert any("Источник не отвечает (неудачных опросов подряд: 1)" in t for t in recorded)
    by_chat = {
        item.chat_id: ctx.bot_store.alert_text(int(item.ref))
        for item in ctx.bot_store.next_due(now + dt.timedelta(seconds=1), 10)
    }
    assert "failed 1 polls" in str(by_chat[900]) and "Источник" in str(by_chat[901])
    sub = ctx.bot_store.subscriber(901)
    assert sub is not None and not sub.active and sub.language == "ru" and sub.language_chosen
    ctx.close()


# -- end to end with the fake Bot API --------------------------------------------

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")


def with_new_statement(n: int, title: str, lead: str) -> str:
    item = f"""<ul class="news-list">
      <li class="news-item"><span class="news-date">07.07.2020</span> - <a class="news-title" href="/fnapr/{n}">{title}</a>
        <p class="news-lead">{lead}</p></li>"""
    return HOME.replace('<ul class="news-list">', item, 1)


@pytest.mark.one_database
async def test_replies_follow_the_telegram_language_until_the_chat_chooses(
    running: Running,
) -> None:
    welcome = await running.command(301, "/start", language_code="ru")
    assert welcome.startswith("Подписка оформлена. Каждое новое заявление придёт сюда")
    assert "в 09:00 (по лондонскому времени)" in welcome
    help_ru = await running.command(301, "/help", language_code="ru-RU")
    assert "/start – подписаться" in help_ru and "/language – русский или английский" in help_ru
    assert "Вы уже подписаны" in await running.command(301, "/start", language_code="ru")
    assert await running.command(301, "/language", language_code="ru") == (
        "Язык этого чата: русский, по настройкам вашего Telegram.\n"
        "Использование: <code>/language en</code> — английский, "
        "<code>/language ru</code> — русский."
    )
    assert "Настройки этого чата" in await running.command(301, "/settings", language_code="ru")
    assert "Я не знаю такой команды" in await running.command(
        301, "/frobnicate", language_code="ru"
    )

    done = await running.command(301, "/language en", language_code="ru")
    assert done == "Done: this chat's language is now English."
    # The chat's choice wins over the user's Telegram language from now on.
    assert "/start – subscribe" in await running.command(301, "/help", language_code="ru")
    assert "Settings for this chat" in await running.command(301, "/settings", language_code="ru")
    assert (await running.command(301, "/language", language_code="ru")).startswith(
        "This chat's language: English.\nUsage: <code>/language en</code>"
    )
    assert (await running.command(301, "/language fr", language_code="ru")).startswith("Usage:")
    sub = running.ctx.bot_store.subscriber(301)
    assert sub is not None and sub.language == "en" and sub.language_chosen and sub.active

    # An English-speaking user gets English; /language ru in a chat that never subscribed.
    assert "/start – subscribe" in await running.command(302, "/help")
    chosen = await running.command(302, "/language ru")
    assert chosen == "Готово: теперь язык этого чата — русский."
    assert "Этот чат не подписан" in await running.command(302, "/stop")
    assert "Подписка оформлена" in await running.command(302, "/start")
    assert running.ctx.bot_store.subscriber_counts()["total"] == 2


@pytest.mark.one_database
async def test_a_group_follows_whoever_writes_until_it_chooses(running: Running) -> None:
    group = -4001
    kw: dict[str, object] = {"chat_type": "group", "title": "Readers"}
    await running.command(group, "/start", user_id=11, language_code="ru", **kw)
    assert "/start – subscribe" in await running.command(
        group, "/help", user_id=12, language_code="en", **kw
    )
    assert "/start – подписаться" in await running.command(
        group, "/help", user_id=11, language_code="ru", **kw
    )
    await running.command(group, "/language ru", user_id=11, language_code="ru", **kw)
    assert "/start – подписаться" in await running.command(
        group, "/help", user_id=12, language_code="en", **kw
    )


async def test_pushed_statements_speak_the_subscribers_language(running: Running) -> None:
    await running.command(401, "/start", language_code="ru")  # Russian from Telegram
    await running.command(402, "/start", language_code="en-GB")
    await running.command(403, "/language ru")  # chosen before subscribing, kept
    await running.command(403, "/start")
    title = "Foreign Ministry statement on the &quot;Skripal case&quot;"
    lead = "The lead, word for word &amp; as published."
    running.source.set_body("/", with_new_statement(7101, title, lead))
    pushed: dict[int, dict[str, object]] = {}

    def arrived() -> bool:
        for chat in (401, 402, 403):
            for m in running.tg.sent(chat):
                if "Skripal case" in str(m["text"]):
                    pushed[chat] = m
        return len(pushed) == 3

    await running.until(arrived)
    page_title = 'Foreign Ministry statement on the "Skripal case"'
    page_lead = "The lead, word for word &amp; as published."  # escaped once for HTML
    for chat in (401, 403):
        assert pushed[chat]["text"] == f"<b>{page_title}</b>\n<i>7 июля 2020</i>\n\n{page_lead}"
        button = pushed[chat]["reply_markup"]["inline_keyboard"][0][0]  # type: ignore[index]
        assert button["text"] == "Читать заявление"
        assert button["url"] == running.source.url + "/fnapr/7101"
    assert pushed[402]["text"] == f"<b>{page_title}</b>\n<i>7 July 2020</i>\n\n{page_lead}"
    english = pushed[402]["reply_markup"]["inline_keyboard"][0][0]  # type: ignore[index]
    assert english["text"] == "Read the statement"


async def test_command_menus_in_both_languages(running: Running) -> None:
    tg = running.tg
    english = {c["command"]: c["description"] for c in tg.commands()}
    russian = {c["command"]: c["description"] for c in tg.commands(language_code="ru")}
    assert set(english) == set(russian) == {n for n, _ in texts.COMMANDS}
    assert "language" in english
    assert english["start"] == "subscribe to new statements"
    assert russian["start"] == "подписаться на новые заявления"
    assert russian["language"] == "язык бота: /language en|ru"
    assert all(CYRILLIC.search(d) for d in russian.values())
    operators = {"type": "chat", "chat_id": 900}
    admin_ru = {c["command"]: c["description"] for c in tg.commands(operators, language_code="ru")}
    admin_en = {c["command"]: c["description"] for c in tg.commands(operators)}
    assert admin_ru["stats"] == "оператор: подписчики, доставка, опросы"
    assert admin_en["stats"] == "operator: subscribers, deliveries, polls"
    assert (await running.command(900, "/stats", language_code="ru")).startswith(
        "<b>feedbot</b>\nПодписчики: 0 (нет)\n"
    )
