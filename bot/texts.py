"""What the bot says, in one place."""

from __future__ import annotations

COMMANDS = [
    ("start", "subscribe to new statements"),
    ("stop", "unsubscribe"),
    ("latest", "the latest statements: /latest [N]"),
    ("counters", "today's day counters"),
    ("settings", "daily counters: time and on/off"),
    ("feed", "feed addresses for a feed reader"),
    ("help", "what this bot does"),
]
ADMIN_COMMANDS = [("stats", "operator: subscribers, deliveries, polls")]

HELP = (
    "I post every new statement from {source} as soon as it appears, and the day "
    "counters once a day.\n\n"
    "/start – subscribe\n"
    "/stop – unsubscribe\n"
    "/latest [N] – the latest statements (1–{max_latest})\n"
    "/counters – today's counters\n"
    "/settings – daily counters: <code>/settings time 08:30</code>, "
    "<code>/settings counters off</code>\n"
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
    "Subscribed: {subscribed}\n"
    "Daily counters: {counters} at {time} (London time)\n\n"
    "Change them with:\n"
    "<code>/settings time HH:MM</code>\n"
    "<code>/settings counters on</code> or <code>off</code>"
)
SETTINGS_USAGE = (
    "Usage: <code>/settings time HH:MM</code> (London time, e.g. 08:30) or "
    "<code>/settings counters on|off</code>."
)
SETTINGS_SAVED = "Saved: daily counters {counters} at {time} (London time)."
FEEDS = (
    "Feeds for a feed reader:\n"
    "Atom: {base}/feeds/statements.atom\n"
    "RSS: {base}/feeds/statements.rss\n"
    "JSON Feed: {base}/feeds/statements.json\n"
    "Counters: {base}/feeds/counters.atom"
)
UNKNOWN = "I don't know that command. /help lists what I can do."
NOT_ADMIN = "Sorry, /stats is for the operators of this bot."
STATS = (
    "<b>feedbot</b>\n"
    "Subscribers: {total} ({by_type})\n"
    "Outbox: {outbox}\n"
    "Statements stored: {statements}\n"
    "Last poll: {last_poll}\n"
    "Polls failed in a row: {failures}"
)
