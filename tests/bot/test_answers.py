"""What each Telegram answer does to an outbox item: one table, read like the docs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.answers import RETRY_CAP, action_for

# Errors are made when the test runs (PTB reads PTB_TIMEDELTA as they are built).
CASES: list[tuple[str, Callable[[], TelegramError], bool, int, int, str, str]] = [
    # name, error, editing, attempts, unknown outcomes, verdict, metric
    (
        "flood control",
        lambda: RetryAfter(dt.timedelta(seconds=7)),
        False,
        1,
        0,
        "retry",
        "rate_limited",
    ),
    (
        "blocked",
        lambda: Forbidden("Forbidden: bot was blocked by the user"),
        False,
        1,
        0,
        "unsubscribe",
        "blocked",
    ),
    (
        "chat gone",
        lambda: BadRequest("Bad Request: chat not found"),
        False,
        1,
        0,
        "unsubscribe",
        "gone",
    ),
    (
        "group deleted",
        lambda: BadRequest("Bad Request: group chat was deactivated"),
        False,
        1,
        0,
        "unsubscribe",
        "gone",
    ),
    ("group migrated", lambda: ChatMigrated(-100123), False, 1, 0, "move", "migrated"),
    (
        "broken message",
        lambda: BadRequest("Bad Request: can't parse entities"),
        False,
        1,
        0,
        "failed",
        "failed",
    ),
    (
        "edit: same text",
        lambda: BadRequest("Bad Request: message is not modified"),
        True,
        1,
        0,
        "done",
        "edited",
    ),
    (
        "edit: message gone",
        lambda: BadRequest("Bad Request: message to edit not found"),
        True,
        1,
        0,
        "dropped",
        "dropped",
    ),
    (
        "edit: too old",
        lambda: BadRequest("Bad Request: message can't be edited"),
        True,
        1,
        0,
        "dropped",
        "dropped",
    ),
    ("first timeout", lambda: TimedOut("Timed out"), False, 1, 0, "retry", "timeout"),
    ("second timeout", lambda: TimedOut("Timed out"), False, 2, 1, "failed", "failed"),
    ("network error", lambda: NetworkError("Bad Gateway"), False, 3, 0, "retry", "retry"),
    (
        "network error, last try",
        lambda: NetworkError("Bad Gateway"),
        False,
        8,
        0,
        "failed",
        "failed",
    ),
]


@pytest.mark.parametrize(
    ("error", "editing", "attempts", "unknown", "verdict", "metric"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_answer_has_its_action(
    error: Callable[[], TelegramError],
    editing: bool,
    attempts: int,
    unknown: int,
    verdict: str,
    metric: str,
) -> None:
    action = action_for(
        error(), editing=editing, attempts=attempts, unknown_outcomes=unknown, max_attempts=8
    )
    assert (action.verdict, action.metric) == (verdict, metric)


def test_flood_control_waits_what_telegram_asked() -> None:
    action = action_for(
        RetryAfter(dt.timedelta(seconds=42)),
        editing=False,
        attempts=1,
        unknown_outcomes=0,
        max_attempts=8,
    )
    assert action.retry_in == 42


def test_a_timeout_is_retried_once_as_an_unknown_outcome() -> None:
    action = action_for(
        TimedOut("Timed out"), editing=False, attempts=1, unknown_outcomes=0, max_attempts=8
    )
    assert action.unknown_outcome and action.retry_in > 0


def test_a_migrated_group_names_its_new_id() -> None:
    action = action_for(
        ChatMigrated(-100777), editing=False, attempts=1, unknown_outcomes=0, max_attempts=8
    )
    assert action.new_chat_id == -100777


@pytest.mark.parametrize("attempts", range(1, 20))
def test_back_off_doubles_and_is_capped(attempts: int) -> None:
    action = action_for(
        NetworkError("Bad Gateway"),
        editing=False,
        attempts=attempts,
        unknown_outcomes=0,
        max_attempts=100,
    )
    assert action.retry_in == min(RETRY_CAP, 5.0 * 2 ** (attempts - 1))
