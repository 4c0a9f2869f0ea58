"""What the bot says, in one place."""

from __future__ import annotations

COMMANDS = [
    ("start", "subscribe to new statements"),
    ("stop", "unsubscribe"),
    ("latest", "the latest statements: /latest [N]"),
    ("counters", "today's day counters"),
    ("settings", "delivery: instant or digest, quiet hours, daily counters"),
    ("filter", "only statements with these words: /filter add WORDS"),
    ("feed", "feed addresses for a feed reader"),
    ("help", "what this bot does"),
]
ADMIN_COMMANDS = [
    ("stats", "operator: subscribers, deliveries, polls"),
    ("preview", "operator: what the source profile reads on the live page now"),
]

HELP = (
    "I post every new statement from {source} as soon as it appears, and the day "
    "counters once a day.\n\n"
    "/start – subscribe\n"
    "/stop – unsubscribe\n"
    "/latest [N] – the latest statements (1–{max_latest})\n"
    "/counters – today's counters\n"
    "/settings – delivery, quiet hours and daily counters\n"
    "/filter – only statements with certain words: "
    '<code>/filter add sanctions "Skripal case" -sport</code>\n'
    "/feed – feed addresses for a feed reader\n"
    "/help – this message"
)
WELCOME = (
    "Subscribed. You will get each new statement as it is published, and the day "
    "counters every day at {time} (London time).\n\n"
    "/latest shows the most recent statements; /settings changes the counters; /stop unsubscribes."
)
ALREADY = "You are already subscribed. /stop unsubscribes; /settings changes the daily counters."
STOPPED = "Unsubscribed. Send /start to subscribe again."
NOT_SUBSCRIBED = "This chat is not subscribed. Send /start to subscribe."
LATEST_USAGE = "Usage: /latest [N] — N is a number from 1 to {max_latest}."
SETTINGS = (
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
SETTINGS_USAGE = (
    "Usage: <code>/settings mode instant|digest</code>, "
    "<code>/settings quiet HH:MM-HH:MM|off</code>, "
    "<code>/settings time HH:MM</code> (London time) or "
    "<code>/settings counters on|off</code>."
)
MODE_INSTANT = "each one as it is published"
MODE_DIGEST = "one digest a day at {time}"
QUIET_HOURS = "{start}–{end}, statements wait until {end}"
QUIET_NONE = "none"
ON = "on"
OFF = "off"
FILTERS_NONE = "none (every statement)"
FILTER_USAGE = (
    "Usage: <code>/filter add WORDS</code>, <code>/filter remove WORDS</code>, "
    "<code>/filter list</code>, <code>/filter clear</code>.\n"
    "Words match whole words in the title and lead, any case; "
    '"quoted phrases" match together; <code>-word</code> excludes. At most {max_terms} terms.'
)
FILTER_ERROR = "That filter cannot be used: {error}."
FILTER_LIST = "Only statements matching these reach this chat: {terms}\n/filter clear removes them."
FILTER_EMPTY = "No filters: every statement reaches this chat."
PREVIEW = (
    "<b>The profile reads the live page now:</b>\n"
    "{entries} statements, {counters} counters.\n\n"
    "{first}\n\n{counter_lines}"
)
PREVIEW_FAILED = "Reading the live page failed: {error}"
PREVIEW_UNAVAILABLE = "Preview is not available in this process."
FEEDS = (
    "Feeds for a feed reader:\n"
    "Atom: {base}/feeds/statements.atom\n"
    "RSS: {base}/feeds/statements.rss\n"
    "JSON Feed: {base}/feeds/statements.json\n"
    "Counters: {base}/feeds/counters.atom"
)
UNKNOWN = "I don't know that command. /help lists what I can do."
NOT_ADMIN = "Sorry, that command is for the operators of this bot."
STATS = (
    "<b>feedbot</b>\n"
    "Subscribers: {total} ({by_type})\n"
    "Outbox: {outbox}\n"
    "Statements stored: {statements}\n"
    "Last poll: {last_poll}\n"
    "Polls failed in a row: {failures}"
)
