"""What the bot says, in one place: the English texts, which are also the message
ids of the Russian catalogue (``bot/locale/ru/LC_MESSAGES/feedbot.po``).

Each text is marked with ``N_`` and translated where it is used, in the chat's
language: ``translator(lang)(texts.WELCOME).format(time=...)``.
"""

from __future__ import annotations

from bot.i18n import N_

COMMANDS = [
    ("start", N_("subscribe to new statements")),
    ("stop", N_("unsubscribe")),
    ("latest", N_("the latest statements: /latest [N]")),
    ("counters", N_("today's day counters")),
    ("settings", N_("delivery: instant or digest, quiet hours, daily counters")),
    ("filter", N_("only statements with these words: /filter add WORDS")),
    ("sources", N_("the sources to follow: a button each")),
    ("feed", N_("feed addresses for a feed reader")),
    ("language", N_("the bot's language: /language en|ru")),
    ("help", N_("what this bot does")),
]
ADMIN_COMMANDS = [
    ("stats", N_("operator: subscribers, deliveries, polls")),
    ("preview", N_("operator: what the source profile reads on the live page now")),
]

HELP_ONE_SOURCE = N_(
    "I post every new statement from {source} as soon as it appears, and the day "
    "counters once a day."
)
HELP_SEVERAL_SOURCES = N_(
    "I post every new statement from the sources this chat follows as soon as it "
    "appears, and their day counters once a day."
)
HELP = N_(
    "{intro}\n\n"
    "/start – subscribe\n"
    "/stop – unsubscribe\n"
    "/latest [N] – the latest statements (1–{max_latest})\n"
    "/counters – today's counters\n"
    "/settings – delivery, quiet hours and daily counters\n"
    "/filter – only statements with certain words: "
    '<code>/filter add sanctions "Skripal case" -sport</code>\n'
    "/sources – choose the sources to follow\n"
    "/feed – feed addresses for a feed reader\n"
    "/language – English or Russian: <code>/language ru</code>\n"
    "/help – this message"
)
WELCOME = N_(
    "Subscribed. You will get each new statement as it is published, and the day "
    "counters every day at {time} (London time).\n\n"
    "/latest shows the most recent statements; /settings changes the counters; /stop unsubscribes."
)
ALREADY = N_(
    "You are already subscribed. /stop unsubscribes; /settings changes the daily counters."
)
STOPPED = N_("Unsubscribed. Send /start to subscribe again.")
NOT_SUBSCRIBED = N_("This chat is not subscribed. Send /start to subscribe.")
LATEST_USAGE = N_("Usage: /latest [N] — N is a number from 1 to {max_latest}.")
SETTINGS = N_(
    "<b>Settings for this chat</b>\n"
    "Statements: {mode}\n"
    "Quiet hours: {quiet}\n"
    "Daily counters: {counters}, at {time} (London time)\n"
    "Filters: {filters}\n\n"
    "Change them with:\n"
    "<code>/settings mode instant</code> or <code>digest</code>\n"
    "<code>/settings quiet 22:00-07:00</code> or <code>/settings quiet off</code>\n"
    "<code>/settings time HH:MM</code> (counters and digest)\n"
    "<code>/settings counters on</code> or <code>off</code>\n"
    "<code>/filter</code> to choose statements by words"
)
SETTINGS_USAGE = N_(
    "Usage: <code>/settings mode instant|digest</code>, "
    "<code>/settings quiet HH:MM-HH:MM|off</code>, "
    "<code>/settings time HH:MM</code> (London time) or "
    "<code>/settings counters on|off</code>."
)
MODE_INSTANT = N_("each one as it is published")
MODE_DIGEST = N_("one digest a day at {time}")
QUIET_HOURS = N_("{start}–{end}, statements wait until {end}")
QUIET_NONE = N_("none")
ON = N_("on")
OFF = N_("off")
FILTERS_NONE = N_("none (every statement)")
FILTER_USAGE = N_(
    "Usage: <code>/filter add WORDS</code>, <code>/filter remove WORDS</code>, "
    "<code>/filter list</code>, <code>/filter clear</code>.\n"
    "Words match whole words in the title and lead, any case; "
    '"quoted phrases" match together; <code>-word</code> excludes. At most {max_terms} terms.'
)
FILTER_ERROR = N_("That filter cannot be used: {error}.")
# bot.filters.FilterError's messages (English there); {max_length} and {max_terms} are its limits
FILTER_ERRORS = (
    N_("a quote is not closed"),
    N_("no words to filter on"),
    N_("a term may have at most {max_length} characters"),
    N_("a chat may have at most {max_terms} filter terms"),
)
FILTER_LIST = N_(
    "Only statements matching these reach this chat: {terms}\n/filter clear removes them."
)
FILTER_EMPTY = N_("No filters: every statement reaches this chat.")
PREVIEW = N_(
    "<b>The profile reads the live page now:</b>\n"
    "{entries} statements, {counters} counters.\n\n"
    "{first}\n\n{counter_lines}"
)
PREVIEW_FAILED = N_("Reading the live page failed: {error}")
PREVIEW_UNAVAILABLE = N_("Preview is not available in this process.")
FEEDS = N_(
    "Feeds for a feed reader:\n"
    "Atom: {base}/feeds/statements.atom\n"
    "RSS: {base}/feeds/statements.rss\n"
    "JSON Feed: {base}/feeds/statements.json\n"
    "Counters: {base}/feeds/counters.atom"
)
FEEDS_SEVERAL = N_(
    "Feeds for a feed reader, one for each source this chat follows:\n"
    "{feeds}\n\n"
    "All sources in one feed: {base}/feeds/statements.atom\n"
    "Every feed, to import into a feed reader (OPML): {base}/feeds.opml"
)
# /sources and its buttons
SOURCES = N_("<b>Sources</b>\nPress a source to follow it (➕) or to leave it (✅).")
SOURCES_NOT_SUBSCRIBED = N_("This chat is not subscribed: following a source subscribes it.")
SOURCES_NONE_FOLLOWED = N_(
    "This chat follows no source now: nothing reaches it until it follows one."
)
SOURCES_ONLY_ONE = N_("This bot follows one source: /help says which.")
FOLLOWING_SOURCE = N_("Following {source}.")
LEFT_SOURCE = N_("You left {source}.")
SOURCE_GONE = N_("That source is no longer offered.")
UNKNOWN = N_("I don't know that command. /help lists what I can do.")
NOT_ADMIN = N_("Sorry, that command is for the operators of this bot.")
STATS = N_(
    "<b>feedbot</b>\n"
    "Subscribers: {total} ({by_type})\n"
    "Outbox: {outbox}\n"
    "Statements stored: {statements}\n"
    "Last poll: {last_poll}\n"
    "Polls failed in a row: {failures}"
)
STATS_SOURCES = N_(
    "<b>feedbot</b>\n"
    "Subscribers: {total} ({by_type})\n"
    "Outbox: {outbox}\n"
    "Statements stored: {statements}\n"
    "Sources:\n"
    "{sources}"
)
STATS_SOURCE = N_("• {name}: last poll {last_poll}; failed in a row: {failures}")
STATS_NONE = N_("none")
STATS_EMPTY = N_("empty")
STATS_NO_POLL = N_("none yet")

# /language; each language's name is shown in the language of the reply.
LANGUAGE_NAMES = {"en": N_("English"), "ru": N_("Russian")}
LANGUAGE_CHOSEN = N_("This chat's language: {language}.")
LANGUAGE_AUTOMATIC = N_("This chat's language: {language}, from your Telegram settings.")
LANGUAGE_USAGE = N_(
    "Usage: <code>/language en</code> for English, <code>/language ru</code> for Russian."
)
LANGUAGE_SET = N_("Done: this chat's language is now {language}.")

# Operator alerts (feedbot/alerts.py decides when; these are what the admins read).
SOURCE_DOWN = N_("⚠️ The source failed {failures} polls in a row: {error}")
NO_STATEMENTS = N_("⚠️ The profile finds no statements on the page: {error}")
SOURCE_BACK = N_("✅ The source answers again.")
FEWER = N_(
    "⚠️ The profile finds {found} statements on the page, usually {usual}: "
    "has the layout changed? /preview shows what it reads."
)
LAYOUT_BACK_UNCHANGED = N_("✅ The profile reads the page again.")
LAYOUT_BACK = N_("✅ The profile reads the page again ({found} statements).")
COUNTER = N_("ℹ️ Counters: {anomaly}.")
FALLBACK = N_(
    "⚠️ The profile's selectors no longer find the statements; feedbot reads the page by "
    "its text layout instead ({found} statements). Check with /preview and "
    "`feedbot parse --explain`, then regenerate the profile with `feedbot profile suggest`."
)
FALLBACK_BACK = N_("✅ The profile's selectors read the page again.")
SUSPICIOUS = N_("⚠️ A poll was held back and nothing was stored: {error}")
SUSPICIOUS_BACK = N_("✅ The page reads as usual again.")
