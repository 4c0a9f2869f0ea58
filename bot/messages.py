"""Telegram messages as plain functions of plain data.

Everything taken from the source page is escaped with ``html.escape``; the
only tags are the ones written here. Telegram refuses messages over 4096
characters and python-telegram-bot does not check, so long messages are split
here: between paragraphs where possible, inside a paragraph at a space
otherwise, and always on raw text before escaping — so a split never falls
inside a tag or an entity.

Our own words (the date, headers) are in the chat's language (``lang``); what
the source published — titles, leads, the counters' sentences — stays as it is.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.i18n import N_, plural, translator
from bot.i18n import format_date as _format_date
from feeds.links import safe_link
from feeds.model import Statement, StoredCounter
from feeds.render import counter_line

LIMIT = 4096


def length(text: str) -> int:
    """Telegram counts UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Block:
    """A paragraph of a message: ready HTML, or plain text to escape (and split if needed)."""

    html: str | None = None
    text: str | None = None

    def render(self) -> str:
        return self.html if self.html is not None else html.escape(self.text or "", quote=False)


def _split_text(text: str, limit: int) -> list[str]:
    """Raw text cut into pieces whose escaped form fits ``limit``, at spaces when possible."""
    pieces: list[str] = []
    rest = text
    while length(html.escape(rest, quote=False)) > limit:
        # Find the longest prefix that fits once escaped, then back off to a space.
        lo, hi = 1, len(rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if length(html.escape(rest[:mid], quote=False)) <= limit:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        space = rest.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def pack(blocks: Sequence[Block], limit: int = LIMIT, separator: str = "\n\n") -> list[str]:
    """Blocks joined into as few messages as fit under ``limit``."""
    expanded: list[str] = []
    for block in blocks:
        rendered = block.render()
        if length(rendered) <= limit:
            expanded.append(rendered)
        elif block.text is not None:
            expanded += [html.escape(p, quote=False) for p in _split_text(block.text, limit)]
        else:
            raise ValueError("an HTML block longer than a message cannot be split safely")
    messages: list[str] = []
    current = ""
    for part in expanded:
        candidate = f"{current}{separator}{part}" if current else part
        if length(candidate) <= limit:
            current = candidate
        else:
            messages.append(current)
            current = part
    if current:
        messages.append(current)
    return messages


UNDATED = N_("undated")
NO_COUNTERS = N_("No counters are known yet.")
COUNTERS_ON = N_("Counters on {date}")
NO_STATEMENTS = N_("No statements have been stored yet.")
AND_MORE = N_("…and {n} more: /latest 20")


def format_date(day: dt.date, lang: str = "en") -> str:
    return _format_date(day, lang)


def _when(day: dt.date | None, lang: str) -> str:
    return format_date(day, lang) if day else translator(lang)(UNDATED)


# What one statement may take in a chat. A page with a 100 KB "title" must not
# become a wall of 26 messages: the rest is cut with an ellipsis, and the button
# below the last message leads to the full text.
MAX_PARTS = 3
TEXT_BUDGET = 10_000  # characters of title and lead
TITLE_CHARS = 1_000  # a longer title is cut (in listings too)


def cut(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` characters, at a space when one is
    near, ending with an ellipsis when anything was cut."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 0)]
    space = head.rfind(" ")
    if space > len(head) // 2:
        head = head[:space]
    return head.rstrip() + "…"


def statement_message(s: Statement, lang: str = "en", source: str | None = None) -> list[str]:
    """Title in bold, date, lead; the link to the statement goes in a button below.
    With several sources, an italic first line names the statement's ``source``.
    At most MAX_PARTS messages, however long the title and lead are."""
    budget = TEXT_BUDGET
    while True:
        parts = pack(_statement_blocks(s, lang, budget, source))
        # Text that escapes to much more (every "&" is "&amp;") may still need more
        # messages than allowed: show less of it.
        if len(parts) <= MAX_PARTS or budget <= 500:
            return parts[:MAX_PARTS]
        budget //= 2


def _statement_blocks(s: Statement, lang: str, budget: int, source: str | None) -> list[Block]:
    when = _when(s.published, lang)
    title = cut(s.title, min(TITLE_CHARS, budget))
    # The source's name is the operator's words: short, but escaped and cut all the same.
    named = f"<i>{html.escape(cut(source, 200), quote=False)}</i>\n" if source else ""
    blocks = [
        Block(html=f"{named}<b>{html.escape(title, quote=False)}</b>\n<i>{when}</i>")
        if length(html.escape(title, quote=False)) < LIMIT - 100 - length(named)
        else Block(text=title),
    ]
    if s.summary and s.summary != s.title:
        lead = cut(s.summary, budget - len(title))
        blocks += [Block(text=p) for p in lead.split("\n\n") if p.strip()]
    return blocks


def button_url(s: Statement) -> str | None:
    """The address for the statement's "read" button, when it may carry one: Telegram
    refuses a whole message whose button is not an http(s) link (BUTTON_URL_INVALID),
    so any other stored link is left off and the statement still goes out."""
    return safe_link(s.url)


def counters_message(
    counters: Sequence[StoredCounter], day: dt.date, lang: str = "en"
) -> list[str]:
    return sources_counters_message([(None, counters)], day, lang)


def sources_counters_message(
    sections: Sequence[tuple[str | None, Sequence[StoredCounter]]],
    day: dt.date,
    lang: str = "en",
) -> list[str]:
    """The counters of several sources in one message, each source's headed by its
    name (a section named None has no heading: the one source of a deployment)."""
    _ = translator(lang)
    sections = [(name, counters) for name, counters in sections if counters]
    if not sections:
        return [_(NO_COUNTERS)]
    header = html.escape(_(COUNTERS_ON).format(date=format_date(day, lang)), quote=False)
    blocks = [Block(html=f"<b>{header}</b>")]
    for name, counters in sections:
        if name:
            blocks.append(Block(html=f"<i>{html.escape(cut(name, 200), quote=False)}</i>"))
        for c in counters:
            days = c.days_on(day)
            line = counter_line(c, day)
            rest = line[len(str(days)) :]
            blocks.append(Block(html=f"<b>{days}</b>{html.escape(rest, quote=False)}"))
    return pack(blocks)


def latest_message(
    statements: Sequence[Statement], lang: str = "en", names: Mapping[str, str] | None = None
) -> list[str]:
    """A listing of statements; with ``names`` ({source key: name}, given when there
    are several sources) each names its source."""
    if not statements:
        return [translator(lang)(NO_STATEMENTS)]
    return pack(_listing(statements, lang, names))


BUNDLE_LISTED = 30


def bundle_message(
    statements: Sequence[Statement],
    lang: str = "en",
    total: int | None = None,
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """Several statements in one message: date and linked title each (``total``: how
    many there are in all, when only the first are given)."""
    shown = list(statements)[:BUNDLE_LISTED]
    n = max(total or 0, len(statements))
    ngettext = plural(lang)
    header = ngettext("{n} new statement", "{n} new statements", n).format(n=n)
    blocks = [Block(html=f"<b>{html.escape(header, quote=False)}</b>")]
    blocks += _listing(shown, lang, names)
    if n > len(shown):
        blocks.append(Block(text=translator(lang)(AND_MORE).format(n=n - len(shown))))
    return pack(blocks)


def _listing(
    statements: Sequence[Statement], lang: str = "en", names: Mapping[str, str] | None = None
) -> list[Block]:
    blocks = []
    for s in statements:
        when = _when(s.published, lang)
        if names and (name := names.get(s.source)):
            when = f"{when} · {cut(name, 200)}"
        shown = cut(s.title, TITLE_CHARS)
        title = html.escape(shown, quote=False)
        url = safe_link(s.url)
        linked = f'<a href="{html.escape(url)}">{title}</a>' if url else title
        blocks.append(
            Block(html=f"<i>{html.escape(when, quote=False)}</i>\n{linked}")
            if length(linked) < 3500
            else Block(text=f"{when}\n{shown}")
        )
    return blocks
