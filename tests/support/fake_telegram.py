"""A fake Telegram Bot API server for tests.

The real python-telegram-bot stack (``Bot``/``Application``, HTTPX request, ``AIORateLimiter``,
error mapping) talks to this server over real HTTP on 127.0.0.1::

    with FakeTelegram() as tg:
        app = (
            ApplicationBuilder()
            .token(tg.token)
            .base_url(tg.api_url)  # "http://127.0.0.1:PORT/bot" -> /bot<TOKEN>/<method>
            .base_file_url(tg.file_url)
            .build()
        )
        tg.send_command(42, "/start")
        ...
        assert tg.sent(chat_id=42)[0]["text"] == "Hello"

The server runs its own asyncio loop in a background thread, so it can be used from sync and
async tests alike; all helper methods are thread-safe.

Responses follow the Bot API shape exactly as PTB parses it (``telegram/request/_baserequest.py``):
success is ``{"ok": true, "result": ...}``; errors carry ``error_code``/``description`` and, for
floods and migrations, ``parameters.retry_after`` / ``parameters.migrate_to_chat_id``. PTB maps
401/404 -> ``InvalidToken``, 403 -> ``Forbidden``, 400 -> ``BadRequest`` (or ``ChatMigrated``),
409 -> ``Conflict``, 429 with ``retry_after`` -> ``RetryAfter``, anything else -> ``NetworkError``.

Flood limits (see :meth:`FakeTelegram._flood_wait`) are sliding windows over the times at which
*accepted* requests of a rate-limited method (``sendMessage``/``editMessageText`` by default)
were processed:

* overall: at most ``global_per_sec`` per 1 s (``paid_per_sec`` when the request has
  ``allow_paid_broadcast=true``);
* one private chat (positive id): at most ``private_per_sec`` per 1 s;
* one group/supergroup/channel (negative id or ``@username``): at most ``group_per_min`` per 60 s.

A request is refused with 429 only if the window, shortened by ``slack`` seconds, already holds
``limit`` accepted requests — i.e. the 31st request arriving less than ``1.0 - slack`` s after the
1st is refused, while a client that spaces its calls exactly by the limit never is, even with a
little network jitter. Refused, failed (4xx/5xx) and non-limited calls do not consume quota.

Note that PTB's ``AIORateLimiter`` uses leaky buckets (a burst of ``max_rate`` up front, then a
steady drip), which can put up to ~2x the limit into one sliding window; with its default
``max_retries=0`` such a burst surfaces as ``RetryAfter`` here, as it may on the real API.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self

from aiohttp import web

__all__ = ["ApiError", "Call", "FakeTelegram"]

JSONDict = dict[str, Any]
Handler = Callable[[JSONDict], Any | Awaitable[Any]]

DEFAULT_TOKEN = "123456:TEST-TOKEN"

# Form values that are plain strings in the Bot API; everything else PTB sends JSON-encoded
# (ints, bools, lists, objects such as reply_markup), so it is decoded with json.loads.
_STRING_KEYS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "secret_token",
        "ip_address",
        "action",
        "language_code",
        "business_connection_id",
        "message_effect_id",
        "description",
        "short_description",
        "name",
        "title",
        "query",
        "emoji",
        "custom_emoji_id",
    }
)

# Methods whose failures/fates are tied to the target chat.
_CHAT_METHODS = frozenset({"sendmessage", "editmessagetext", "sendchataction"})

# Telegram leaves these out of getUpdates unless allowed_updates names them explicitly.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Tags accepted by parse_mode=HTML (https://core.telegram.org/bots/api#html-style).
_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "blockquote",
    }
)
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)?([^<>]*)>")

MAX_TEXT_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Call:
    """One request answered by the fake (recorded when the answer is sent)."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() on arrival
    chat_id: int | None
    status: int


class ApiError(Exception):
    """An error answer; raise it from a custom handler (see :meth:`FakeTelegram.set_handler`)."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(f"{status} {description}")
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _too_many(retry_after: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        HTTPStatus.TOO_MANY_REQUESTS,
        f"Too Many Requests: retry after {seconds}",
        {"retry_after": seconds},
    )


def _status_error(status: int, description: str | None) -> ApiError:
    if description is None:
        try:
            description = HTTPStatus(status).phrase
        except ValueError:
            description = "Unknown Error"
    return ApiError(status, description)


class _Window:
    """Timestamps of accepted requests within the last ``span`` seconds."""

    __slots__ = ("limit", "span", "stamps")

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self.stamps: deque[float] = deque()

    def wait(self, now: float, limit: int | None = None) -> float:
        """0 if one more request fits at ``now``, else seconds until it would."""
        cutoff = now - self.span
        stamps = self.stamps
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        limit = self.limit if limit is None else limit
        if len(stamps) < limit:
            return 0.0
        # The request fits once enough old stamps have left the window.
        return stamps[len(stamps) - limit] + self.span - now


def _decode_value(key: str, value: str) -> Any:
    if key in _STRING_KEYS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channelname"


def _as_chat_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
    return None


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _parse_html(text: str) -> str:
    """Validate Telegram-HTML like the Bot API does and return the visible text."""

    def fail(reason: str) -> ApiError:
        return ApiError(HTTPStatus.BAD_REQUEST, f"Bad Request: can't parse entities: {reason}")

    stack: list[str] = []
    parts: list[str] = []
    pos = 0
    while (start := text.find("<", pos)) != -1:
        parts.append(text[pos:start])
        offset = _byte_offset(text, start)
        match = _TAG_RE.match(text, start)
        if match is None:
            raise fail(f"Unclosed start tag at byte offset {offset}")
        closing, name, attrs = match.group(1), (match.group(2) or "").lower(), match.group(3)
        if closing:
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {offset}")
            if stack[-1] != name:
                raise fail(
                    f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>", '
                    f'found "</{name}>"'
                )
            stack.pop()
        else:
            if name not in _HTML_TAGS:
                raise fail(f'Unsupported start tag "{name}" at byte offset {offset}')
            if name == "span" and "tg-spoiler" not in attrs:
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
            stack.append(name)
        pos = match.end()
    parts.append(text[pos:])
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return html.unescape("".join(parts))


class FakeTelegram:
    """Fake Bot API server on 127.0.0.1; use as ``with FakeTelegram() as tg: ...``.

    Args:
        token: the only token accepted; others get 401 Unauthorized.
        enforce_limits: answer flood-limit violations with 429 (see module docstring).
        global_per_sec / private_per_sec / group_per_min / paid_per_sec: the limits;
            ``None`` disables one of them.
        slack: seconds by which each window is shortened, to tolerate arrival jitter.
        limited_methods: methods subject to the flood limits.
        max_poll_wait: cap on getUpdates long-poll waits, to keep tests fast.
        validate_html: reject malformed ``parse_mode=HTML`` text like Telegram does.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        enforce_limits: bool = True,
        global_per_sec: int | None = 30,
        private_per_sec: int | None = 1,
        group_per_min: int | None = 20,
        paid_per_sec: int | None = 1000,
        slack: float = 0.05,
        limited_methods: tuple[str, ...] = ("sendMessage", "editMessageText"),
        max_poll_wait: float = 1.0,
        validate_html: bool = True,
        bot_id: int = 123456,
        bot_username: str = "feedbot_test_bot",
        bot_first_name: str = "feedbot",
    ) -> None:
        if not 0.0 <= slack < 1.0:
            raise ValueError("slack must be in [0, 1)")
        self.token = token
        self.enforce_limits = enforce_limits
        self.global_per_sec = global_per_sec
        self.private_per_sec = private_per_sec
        self.group_per_min = group_per_min
        self.paid_per_sec = paid_per_sec
        self.slack = slack
        self.limited_methods = frozenset(m.lower() for m in limited_methods)
        self.max_poll_wait = max_poll_wait
        self.validate_html = validate_html
        self.bot_user: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

        # One lock guards all state: handlers run on the server thread, helpers on the test's.
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._too_many = 0
        self._updates: deque[JSONDict] = deque()
        self._next_update_id = 100_000_001
        self._chats: dict[int | str, JSONDict] = {}
        self._last_message_id: dict[int | str, int] = {}
        self._messages: dict[tuple[int | str, int], JSONDict] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._webhook: JSONDict = {}
        self._fates: dict[int | str, ApiError] = {}
        self._failures: list[tuple[int | None, str | None, ApiError, list[int]]] = []
        self._forced_retry: list[tuple[int | None, str | None, int, list[int]]] = []
        self._delays: dict[str, tuple[float, list[int] | None]] = {}
        self._global = _Window(global_per_sec or 0, 1.0 - slack)
        self._per_chat: dict[int | str, _Window] = {}

        self._handlers: dict[str, tuple[str, Handler]] = {}
        for name, handler in self._builtin_handlers().items():
            self.set_handler(name, handler)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._update_event: asyncio.Event | None = None
        self._closing = False
        self._port = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server thread and wait until it listens."""
        if self._thread is not None:
            raise RuntimeError("FakeTelegram already started")
        self._closing = False
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, errors), name="fake-telegram", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("FakeTelegram did not start in time")
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]

    def stop(self) -> None:
        """Stop the server (pending long polls are answered empty) and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start() in the caller's thread
            errors.append(exc)
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            # Cancel whatever aiohttp left behind so the loop closes cleanly.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        self._update_event = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # Short shutdown timeout: only capped long polls can be in flight.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def _shutdown(self) -> None:
        self._closing = True
        self._wake_pollers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:PORT``."""
        if not self._port:
            raise RuntimeError("FakeTelegram is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """Value for PTB's ``base_url``: requests go to ``{api_url}{token}/{method}``."""
        return f"{self.url}/bot"

    @property
    def file_url(self) -> str:
        """Value for PTB's ``base_file_url`` (file downloads answer 404)."""
        return f"{self.url}/file/bot"

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[Call]:
        """Snapshot of all answered requests, in answer order."""
        with self._lock:
            return list(self._calls)

    @property
    def too_many(self) -> int:
        """Number of 429 answers so far."""
        with self._lock:
            return self._too_many

    def calls_of(self, method: str) -> list[Call]:
        key = method.lower()
        with self._lock:
            return [c for c in self._calls if c.method.lower() == key]

    def sent(self, chat_id: int | None = None) -> list[JSONDict]:
        """Params of successful sendMessage calls, optionally for one chat."""
        return [
            c.params
            for c in self.calls_of("sendMessage")
            if c.status == HTTPStatus.OK and (chat_id is None or c.chat_id == chat_id)
        ]

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """Commands last set with setMyCommands for that scope and language."""
        with self._lock:
            return list(self._commands.get(self._commands_key(scope, language_code), []))

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._too_many = 0

    def reset_limits(self) -> None:
        """Forget flood-limit history (e.g. between phases of a test)."""
        with self._lock:
            self._global.stamps.clear()
            self._per_chat.clear()

    async def wait_for(
        self,
        method: str = "sendMessage",
        count: int = 1,
        *,
        chat_id: int | None = None,
        ok_only: bool = True,
        timeout: float = 5.0,
    ) -> list[Call]:
        """Wait (without blocking the caller's loop) until ``count`` matching calls arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                c
                for c in self.calls_of(method)
                if (chat_id is None or c.chat_id == chat_id)
                and (not ok_only or c.status == HTTPStatus.OK)
            ]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(found)}/{count} {method} calls after {timeout} s")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ chats and fates

    def set_chat(
        self,
        chat_id: int,
        type: str,  # mirrors the Bot API field name
        title: str | None = None,
        *,
        username: str | None = None,
        first_name: str | None = None,
    ) -> None:
        """Declare a chat so getChat and message objects describe it correctly."""
        with self._lock:
            self._set_chat_locked(chat_id, type, title, username, first_name)

    def block(self, chat_id: int, description: str | None = None) -> None:
        """Sends to this chat answer 403 (blocked by the user / kicked from the group)."""
        with self._lock:
            if description is None:
                kind = self._chat_type(chat_id)
                description = {
                    "private": "Forbidden: bot was blocked by the user",
                    "group": "Forbidden: bot was kicked from the group chat",
                    "supergroup": "Forbidden: bot was kicked from the supergroup chat",
                    "channel": "Forbidden: bot is not a member of the channel chat",
                }[kind]
            self._fates[chat_id] = ApiError(HTTPStatus.FORBIDDEN, description)

    def gone(self, chat_id: int) -> None:
        """Sends to (and getChat of) this chat answer 400 "chat not found"."""
        with self._lock:
            self._fates[chat_id] = ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: chat not found")

    def migrate(self, chat_id: int, new_chat_id: int) -> None:
        """The group was upgraded: sends answer 400 with ``migrate_to_chat_id``."""
        with self._lock:
            old = self._chat_object(chat_id)
            self._set_chat_locked(new_chat_id, "supergroup", old.get("title"), None, None)
            self._fates[chat_id] = ApiError(
                HTTPStatus.BAD_REQUEST,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": new_chat_id},
            )

    def restore(self, chat_id: int) -> None:
        """Undo block/gone/migrate for a chat."""
        with self._lock:
            self._fates.pop(chat_id, None)

    def fail_next(
        self,
        chat_id: int | None,
        status: int = 500,
        times: int = 1,
        *,
        description: str | None = None,
        method: str | None = "sendMessage",
    ) -> None:
        """The next ``times`` calls of ``method`` (None: any) for ``chat_id`` (None: any chat)
        answer ``status`` with the standard phrase (e.g. "Internal Server Error")."""
        with self._lock:
            error = _status_error(status, description)
            self._failures.append((chat_id, method and method.lower(), error, [times]))

    def force_retry_after(
        self,
        seconds: int,
        times: int = 1,
        *,
        chat_id: int | None = None,
        method: str | None = "sendMessage",
    ) -> None:
        """The next ``times`` calls of ``method`` answer 429 with this ``retry_after``."""
        with self._lock:
            self._forced_retry.append((chat_id, method and method.lower(), seconds, [times]))

    def delay(self, method: str, seconds: float, times: int | None = None) -> None:
        """Sleep ``seconds`` before answering ``method`` (``times`` calls, None: until reset;
        ``seconds=0`` removes the delay)."""
        with self._lock:
            if seconds <= 0:
                self._delays.pop(method.lower(), None)
            else:
                self._delays[method.lower()] = (seconds, None if times is None else [times])

    def set_handler(self, method: str, handler: Handler) -> None:
        """Answer ``method`` with ``handler(params)`` (sync or async); raise ApiError to fail."""
        with self._lock:
            self._handlers[method.lower()] = (method, handler)

    # ------------------------------------------------------------------ updates

    def add_update(self, update: JSONDict) -> JSONDict:
        """Queue a raw update; ``update_id`` is assigned if missing. Returns the update."""
        with self._lock:
            update = dict(update)
            if "update_id" not in update:
                update["update_id"] = self._next_update_id
            self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
            self._updates.append(update)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_pollers)
        return update

    def send_command(
        self,
        chat_id: int,
        text: str,
        chat_type: str = "private",
        user_id: int | None = None,
        language_code: str | None = "en",
        username: str | None = None,
        title: str | None = None,
    ) -> JSONDict:
        """Queue a message (a ``channel_post`` for channels) as if a user typed ``text``."""
        with self._lock:
            self._set_chat_locked(chat_id, chat_type, title, None, None)
            chat = self._chat_object(chat_id)
            if chat_type == "private" and username is not None:
                chat["username"] = username
            message_id = self._next_message_id(chat_id)
        message: JSONDict = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            length = len(command.encode("utf-16-le")) // 2  # entity offsets are UTF-16 units
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if chat_type == "channel":
            message["sender_chat"] = chat
            return self.add_update({"channel_post": message})
        if user_id is None:
            user_id = chat_id if chat_type == "private" else 1001
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        message["from"] = user
        return self.add_update({"message": message})

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        user_id: int | None = None,
        language_code: str | None = "en",
    ) -> JSONDict:
        """Queue a ``callback_query`` as if a user pressed the inline button with this
        ``data`` under a message the bot sent; the answer shows in ``calls_of``
        ("answerCallbackQuery") and edits in :meth:`message`."""
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            message = json.loads(json.dumps(message))
            query_id = str(self._next_update_id)
        if user_id is None:
            user_id = chat_id if chat_id > 0 else 1001
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        if language_code is not None:
            user["language_code"] = language_code
        return self.add_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": message,
                    "chat_instance": str(chat_id),
                    "data": data,
                }
            }
        )

    def message(self, chat_id: int, message_id: int) -> JSONDict:
        """A message the bot sent, as it stands now (after any edits)."""
        with self._lock:
            return json.loads(json.dumps(self._messages[(chat_id, message_id)]))

    def bot_messages(self, chat_id: int) -> list[JSONDict]:
        """The messages the bot sent to a chat, oldest first, as they stand now."""
        with self._lock:
            found = [
                m
                for (chat, _id), m in sorted(self._messages.items(), key=lambda kv: kv[0][1])
                if chat == chat_id
            ]
            return json.loads(json.dumps(found))

    def add_my_chat_member(
        self,
        chat_id: int,
        chat_type: str,
        new_status: str,
        old_status: str = "left",
        *,
        user_id: int = 1001,
        title: str | None = None,
    ) -> JSONDict:
        """Queue a ``my_chat_member`` update (bot added/removed/promoted; a private chat's
        ``kicked`` means the user blocked the bot)."""
        with self._lock:
            self._set_chat_locked(chat_id, chat_type, title, None, None)
            chat = self._chat_object(chat_id)
        actor = chat_id if chat_type == "private" else user_id
        return self.add_update(
            {
                "my_chat_member": {
                    "chat": chat,
                    "from": {"id": actor, "is_bot": False, "first_name": f"User{actor}"},
                    "date": int(time.time()),
                    "old_chat_member": self._member(old_status, chat_type),
                    "new_chat_member": self._member(new_status, chat_type),
                }
            }
        )

    def _member(self, status: str, chat_type: str) -> JSONDict:
        member: JSONDict = {"status": status, "user": dict(self.bot_user)}
        if status == "kicked":
            member["until_date"] = 0
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            rights = (
                "can_manage_chat can_delete_messages can_manage_video_chats can_restrict_members "
                "can_change_info can_invite_users can_pin_messages"
            )
            member.update(dict.fromkeys(rights.split(), True))
            member.update(
                can_be_edited=False,
                is_anonymous=False,
                can_promote_members=False,
                can_post_stories=False,
                can_edit_stories=False,
                can_delete_stories=False,
            )
            if chat_type == "channel":
                member.update(can_post_messages=True, can_edit_messages=True)
        elif status == "restricted":
            rights = (
                "can_change_info can_invite_users can_pin_messages can_send_messages "
                "can_send_polls can_send_other_messages can_add_web_page_previews "
                "can_manage_topics can_send_audios can_send_documents can_send_photos "
                "can_send_videos can_send_video_notes can_send_voice_notes can_edit_tag"
            )
            member.update(dict.fromkeys(rights.split(), False))
            member.update(is_member=True, until_date=0)
        return member

    def _wake_pollers(self) -> None:
        # Runs on the server loop: release current waiters, arm a fresh event for the next.
        if self._update_event is not None:
            self._update_event.set()
            self._update_event = asyncio.Event()

    # ------------------------------------------------------------------ HTTP plumbing

    async def _not_found(self, request: web.Request) -> web.Response:
        return self._json(HTTPStatus.NOT_FOUND, ApiError(404, "Not Found").body())

    @staticmethod
    def _json(status: int, body: JSONDict) -> web.Response:
        return web.Response(
            status=status, body=json.dumps(body).encode(), content_type="application/json"
        )

    @staticmethod
    async def _read_params(request: web.Request) -> JSONDict:
        params: JSONDict = {k: _decode_value(k, v) for k, v in request.query.items()}
        if not request.body_exists:
            return params
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
            return params
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                params[key] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "size": len(data),
                }
            else:
                text = value if isinstance(value, str) else bytes(value).decode()
                params[key] = _decode_value(key, text)
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        name = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except ValueError:
            params = {}
            body: JSONDict = ApiError(400, "Bad Request: invalid request body").body()
            return self._finish(name, params, at, HTTPStatus.BAD_REQUEST, body)
        status: int = HTTPStatus.OK
        try:
            result = await self._dispatch(request.match_info["token"], name, params)
            body = {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.status, exc.body()
        if (entry := self._handlers.get(name.lower())) is not None:
            name = entry[0]  # record the canonical spelling; method names are case-insensitive
        return self._finish(name, params, at, status, body)

    def _finish(
        self, name: str, params: JSONDict, at: float, status: int, body: JSONDict
    ) -> web.Response:
        call = Call(name, params, at, _as_chat_id(params.get("chat_id")), int(status))
        with self._lock:
            self._calls.append(call)
            if status == HTTPStatus.TOO_MANY_REQUESTS:
                self._too_many += 1
        return self._json(status, body)

    async def _dispatch(self, token: str, name: str, params: JSONDict) -> Any:
        if token != self.token:
            raise ApiError(HTTPStatus.UNAUTHORIZED, "Unauthorized")
        key = name.lower()
        entry = self._handlers.get(key)
        if entry is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "Not Found")
        if seconds := self._take_delay(key):
            await asyncio.sleep(seconds)

        chat = params.get("chat_id")
        chat_key: int | str | None = _as_chat_id(chat)
        if chat_key is None and isinstance(chat, str) and chat:
            chat_key = chat  # "@username"
        windows = self._preflight(key, chat_key, params)

        result = entry[1](params)
        if inspect.isawaitable(result):
            result = await result
        if windows:
            now = time.monotonic()
            with self._lock:
                for window in windows:
                    window.stamps.append(now)
        return result

    def _take_delay(self, key: str) -> float:
        with self._lock:
            entry = self._delays.get(key)
            if entry is None:
                return 0.0
            seconds, left = entry
            if left is not None:
                left[0] -= 1
                if left[0] <= 0:
                    del self._delays[key]
            return seconds

    def _preflight(self, key: str, chat: int | str | None, params: JSONDict) -> list[_Window]:
        """Apply injected failures, chat fates and flood limits, in that order.

        Returns the flood windows to charge once the call succeeds.
        """
        with self._lock:
            for target, method, error, left in self._failures:
                if left[0] > 0 and method in (None, key) and target in (None, chat):
                    left[0] -= 1
                    self._failures = [f for f in self._failures if f[3][0] > 0]
                    raise error
            fate = self._fates.get(chat) if chat is not None else None
            if fate is not None and (
                key in _CHAT_METHODS or (key == "getchat" and fate.status != HTTPStatus.FORBIDDEN)
            ):
                raise fate
            for target, method, seconds, left in self._forced_retry:
                if left[0] > 0 and method in (None, key) and target in (None, chat):
                    left[0] -= 1
                    self._forced_retry = [f for f in self._forced_retry if f[3][0] > 0]
                    raise _too_many(seconds)
            if not self.enforce_limits or key not in self.limited_methods:
                return []
            return self._flood_wait(chat, params.get("allow_paid_broadcast") is True)

    def _flood_wait(self, chat: int | str | None, paid: bool) -> list[_Window]:
        """Raise 429 if this request would exceed a limit; else return the windows to charge.

        Rule per window (span shortened by ``slack``): refuse iff the number of accepted
        requests with ``now - t < span`` already equals the limit; ``retry_after`` is the
        ceiling of the time until the oldest blocking request leaves the window (min 1 s).
        """
        now = time.monotonic()
        windows: list[_Window] = []
        wait = 0.0
        limit = self.paid_per_sec if paid else self.global_per_sec
        if limit is not None:
            wait = max(wait, self._global.wait(now, limit))
            windows.append(self._global)
        if chat is not None:
            window = self._per_chat.get(chat)
            if window is None:
                if self._chat_type(chat) == "private":
                    limit, span = self.private_per_sec, 1.0
                else:
                    limit, span = self.group_per_min, 60.0
                if limit is not None:
                    window = self._per_chat[chat] = _Window(limit, span - self.slack)
            if window is not None:
                wait = max(wait, window.wait(now))
                windows.append(window)
        if wait > 0:
            raise _too_many(wait)
        return windows

    # ------------------------------------------------------------------ chat state (locked)

    def _set_chat_locked(
        self,
        chat_id: int | str,
        kind: str,
        title: str | None,
        username: str | None,
        first_name: str | None,
    ) -> None:
        chat = self._chats.setdefault(chat_id, {"id": chat_id})
        chat["type"] = kind
        if kind == "private":
            chat.pop("title", None)
            chat["first_name"] = first_name or chat.get("first_name") or f"User{chat_id}"
        else:
            chat.pop("first_name", None)
            chat["title"] = title or chat.get("title") or f"Chat {chat_id}"
        if username is not None:
            chat["username"] = username
        self._per_chat.pop(chat_id, None)  # the limit depends on the type

    def _chat_type(self, chat_id: int | str) -> str:
        known = self._chats.get(chat_id)
        if known is not None:
            return str(known["type"])
        if isinstance(chat_id, str):
            return "channel"  # "@username" targets are public channels/supergroups
        return "private" if chat_id > 0 else "supergroup"

    def _chat_object(self, chat_id: int | str) -> JSONDict:
        known = self._chats.get(chat_id)
        if known is not None:
            return dict(known)
        if self._chat_type(chat_id) == "private":
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        return {"id": chat_id, "type": self._chat_type(chat_id), "title": f"Chat {chat_id}"}

    def _next_message_id(self, chat_id: int | str) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope = scope or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(language_code or "")

    # ------------------------------------------------------------------ Bot API methods

    def _builtin_handlers(self) -> dict[str, Handler]:
        def ok(_: JSONDict) -> bool:
            return True

        return {
            "getMe": lambda _: dict(self.bot_user),
            "getUpdates": self._get_updates,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "getChat": self._get_chat,
            "sendChatAction": ok,
            "answerCallbackQuery": ok,
            "deleteMessage": ok,
            "close": ok,
            "logOut": ok,
        }

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self._webhook.get("url"):
            raise ApiError(
                HTTPStatus.CONFLICT,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        wait = min(float(params.get("timeout") or 0), self.max_poll_wait)
        allowed = set(params.get("allowed_updates") or ())
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                if offset > 0:  # acknowledge everything before offset
                    while self._updates and self._updates[0]["update_id"] < offset:
                        self._updates.popleft()
                elif offset < 0:  # keep only the last -offset updates
                    while len(self._updates) > -offset:
                        self._updates.popleft()
                batch = [u for u in self._updates if self._wanted(u, allowed)][:limit]
            remaining = deadline - time.monotonic()
            if batch or self._closing or remaining <= 0 or self._update_event is None:
                return batch
            # Captured right after the check on this loop, so a wake-up cannot be missed.
            event = self._update_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    @staticmethod
    def _wanted(update: JSONDict, allowed: set[str]) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        return kind in allowed if allowed else kind not in _OPT_IN_UPDATES

    def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: commands must be an array")
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        with self._lock:
            self._commands[key] = [dict(c) for c in commands]
        return True

    def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self.commands(params.get("scope"), params.get("language_code") or "")

    def _delete_my_commands(self, params: JSONDict) -> bool:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        with self._lock:
            self._commands.pop(key, None)
        return True

    def _set_webhook(self, params: JSONDict) -> bool:
        with self._lock:
            self._webhook = {"url": str(params.get("url") or "")}
            if params.get("drop_pending_updates") is True:
                self._updates.clear()
        return True

    def _delete_webhook(self, params: JSONDict) -> bool:
        with self._lock:
            self._webhook = {}
            if params.get("drop_pending_updates") is True:
                self._updates.clear()
        return True

    def _get_webhook_info(self, _: JSONDict) -> JSONDict:
        with self._lock:
            return {
                "url": self._webhook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }

    def _get_chat(self, params: JSONDict) -> JSONDict:
        chat = params.get("chat_id")
        if chat is None or chat == "":
            raise ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: chat_id is empty")
        with self._lock:
            info = self._chat_object(_as_chat_id(chat) or chat)
        # Fields ChatFullInfo requires in PTB 22.
        info.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return info

    def _check_text(self, params: JSONDict) -> str:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message text is empty")
        parse_mode = str(params.get("parse_mode") or "")
        visible: str | None = text
        if parse_mode.upper() == "HTML":
            visible = _parse_html(text) if self.validate_html else None
        elif parse_mode:
            visible = None  # Markdown length depends on parsing; don't guess
        if visible is not None:
            if not visible.strip():
                raise ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message text is empty")
            if len(visible) > MAX_TEXT_LENGTH:
                raise ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message is too long")
        return text

    def _chat_key(self, params: JSONDict) -> int | str:
        chat = params.get("chat_id")
        if chat is None or chat == "":
            raise ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: chat_id is empty")
        as_int = _as_chat_id(chat)
        return as_int if as_int is not None else str(chat)

    def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._chat_key(params)
        text = self._check_text(params)
        with self._lock:
            chat_obj = self._chat_object(chat)
            message: JSONDict = {
                "message_id": self._next_message_id(chat),
                "date": int(time.time()),
                "chat": chat_obj,
                "text": text,
            }
            if chat_obj["type"] == "channel":
                message["sender_chat"] = chat_obj
            else:
                message["from"] = dict(self.bot_user)
            if thread_id := params.get("message_thread_id"):
                message["message_thread_id"] = thread_id
            markup = params.get("reply_markup")
            if isinstance(markup, dict) and "inline_keyboard" in markup:
                message["reply_markup"] = markup
            self._messages[(chat, message["message_id"])] = message
            return dict(message)

    def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        text = self._check_text(params)
        if params.get("inline_message_id"):
            return True
        chat = self._chat_key(params)
        message_id = _as_chat_id(params.get("message_id"))
        with self._lock:
            message = self._messages.get((chat, message_id or 0))
            if message is None:
                raise ApiError(HTTPStatus.BAD_REQUEST, "Bad Request: message to edit not found")
            markup = params.get("reply_markup")
            markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
            if message["text"] == text and message.get("reply_markup") == markup:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            message["text"] = text
            message["edit_date"] = int(time.time())
            if markup is None:
                message.pop("reply_markup", None)
            else:
                message["reply_markup"] = markup
            return dict(message)
