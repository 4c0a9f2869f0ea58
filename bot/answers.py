"""What a Telegram error means for one outbox item: a pure decision, applied by the sender.

* 429 ``RetryAfter``   → wait ``retry_after`` and keep it pending
* 403 ``Forbidden``    → the chat blocked or removed the bot: unsubscribed
* 400 chat not found   → unsubscribed ("gone")
* 400 ``ChatMigrated`` → the subscription and its pending items move to the new id
* 400 on an edit       → "not modified" is done; a message gone or too old is dropped
* other 400            → failed (the message itself is wrong; visible in /stats)
* timeout              → outcome unknown: retried once, then failed
* other network errors → retried with back-off, failed after ``max_attempts``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.ratelimit import retry_seconds

GONE = (
    "chat not found",
    "user not found",
    "bot was kicked",
    "chat was deleted",
    "group chat was deactivated",
    "peer_id_invalid",
)
RETRY_CAP = 3600.0  # seconds: the longest back-off between two tries of one message

Verdict = Literal["done", "dropped", "unsubscribe", "move", "retry", "failed"]


@dataclass(frozen=True)
class Action:
    verdict: Verdict
    detail: str  # what the outbox row and the log keep
    metric: str  # the ``feedbot_messages_total`` outcome label
    retry_in: float = 0.0  # seconds, for "retry"
    unknown_outcome: bool = False  # "retry" after a timeout: the message may have arrived
    new_chat_id: int | None = None  # for "move"


def action_for(
    exc: TelegramError,
    *,
    editing: bool,
    attempts: int,
    unknown_outcomes: int,
    max_attempts: int,
) -> Action:
    """The action for one failed send (or edit, when ``editing``). ``attempts`` counts
    this one; ``unknown_outcomes`` the earlier timeouts of the same item."""
    message = exc.message
    lower = message.lower()
    # BadRequest and TimedOut are NetworkErrors too: the specific cases come first.
    if isinstance(exc, ChatMigrated):
        return Action(
            "move", f"moved to {exc.new_chat_id}", "migrated", new_chat_id=exc.new_chat_id
        )
    if isinstance(exc, BadRequest):
        if editing and "not modified" in lower:
            return Action("done", "already says this", "edited")
        if editing and ("not found" in lower or "can't be edited" in lower):
            return Action("dropped", f"edit: {message}", "dropped")
        if any(marker in lower for marker in GONE):
            return Action("unsubscribe", "gone", "gone")
        return Action("failed", f"bad request: {message}", "failed")
    if isinstance(exc, Forbidden):
        return Action("unsubscribe", "blocked", "blocked")
    if isinstance(exc, RetryAfter):
        wait = retry_seconds(exc)
        return Action(
            "retry", f"flood control: retry after {wait:.0f}s", "rate_limited", retry_in=wait
        )
    if isinstance(exc, TimedOut):
        if unknown_outcomes >= 1:
            return Action("failed", f"outcome unknown twice: {message}", "failed")
        return Action(
            "retry", f"timed out: {message}", "timeout", retry_in=5.0, unknown_outcome=True
        )
    if attempts >= max_attempts:
        return Action("failed", f"gave up after {attempts} attempts: {message}", "failed")
    return Action("retry", message, "retry", retry_in=min(RETRY_CAP, 5.0 * 2 ** (attempts - 1)))
