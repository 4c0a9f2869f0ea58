"""What the Telegram side is configured with (loaded by the process's settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_API_URL = "https://api.telegram.org/bot"


@dataclass(frozen=True)
class TelegramSettings:
    token: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    admin_chat_ids: tuple[int, ...] = ()
    channel_ids: tuple[int, ...] = ()  # channels that receive every statement
    webhook_url: str | None = None  # public base URL; None: long polling
    paid_broadcast: bool = False  # allow_paid_broadcast: up to 1000 messages/s, paid in Stars
    request_timeout: float = 15.0
    follow_edits: bool = True  # edit sent messages when a statement's title or lead changes
