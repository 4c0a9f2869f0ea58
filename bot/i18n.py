"""The bot's two languages, English and Russian, with gettext.

The English texts are the message ids (the gettext convention): English needs
no catalogue. The Russian catalogue is ``locale/ru/LC_MESSAGES/feedbot.po``,
committed as text and compiled in memory the first time it is needed, so a
plain ``pip install -e .`` works without a build step.

Texts defined at module level are marked with ``N_`` and translated where they
are used: ``translator(lang)(texts.WELCOME)``. Counts use ``plural(lang)``
(Russian has three plural forms). To refresh the catalogue after changing texts::

    pybabel extract -k N_ -k ngettext:1,2 --no-location -o /tmp/feedbot.pot bot
    pybabel update -i /tmp/feedbot.pot -D feedbot -d bot/locale -l ru \
        --no-fuzzy-matching --no-wrap --ignore-pot-creation-date

and translate the entries left empty.

``tests/test_i18n.py`` fails while a marked text has no Russian translation.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
from collections.abc import Callable
from pathlib import Path

from babel.dates import format_date as _babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "feedbot"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"
LANGUAGES = ("en", "ru")


def N_(message: str) -> str:
    """Marks a text for the catalogue; it is translated later, where it is used."""
    return message


def language_for(code: str | None) -> str:
    """The bot's language for a Telegram ``language_code`` (``ru``, ``ru-RU``, …)."""
    if code:
        base = code.strip().lower().replace("_", "-").split("-", 1)[0]
        if base in LANGUAGES:
            return base
    return DEFAULT


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue for ``lang`` (English: the ids themselves)."""
    lang = language_for(lang)
    if lang == DEFAULT:
        return gettext.NullTranslations()
    with catalogue_path(lang).open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)


def translator(lang: str) -> Callable[[str], str]:
    """``gettext`` for one language."""
    return translations(lang).gettext


def plural(lang: str) -> Callable[[str, str, int], str]:
    """``ngettext`` for one language: ``plural(lang)(singular, plural, n)``."""
    return translations(lang).ngettext


@functools.lru_cache(maxsize=4096)
def format_date(day: dt.date, lang: str) -> str:
    """A date as people write it: "24 June 2020", "24 июня 2020"."""
    return _babel_format_date(day, "d MMMM y", locale=language_for(lang))
