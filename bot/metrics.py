"""Prometheus metrics of the Telegram side."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES = Counter(
    "feedbot_messages_total",
    "Telegram deliveries by kind and outcome (sent, failed, blocked, gone, retry, …)",
    ["kind", "outcome"],
)
SUBSCRIBERS = Gauge("feedbot_subscribers", "Active subscribers")
OUTBOX_BACKLOG = Gauge("feedbot_outbox_backlog", "Messages waiting to be sent")
COMMANDS = Counter("feedbot_commands_total", "Bot commands received", ["command"])
