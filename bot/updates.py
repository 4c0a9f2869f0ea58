"""Updates from many chats at once, each chat's in order.

python-telegram-bot handles one update at a time by default, so one user's thirty
``/latest 20`` (each answer paced at one message a second to that chat) held up
everybody else's commands. Here updates of different chats run concurrently,
while a chat's own updates still run one after another (``/start`` then ``/stop``
keeps its meaning). A chat that sends commands far faster than its answers can go
(one a second) gets the first few answered and the rest dropped, so a flood neither
grows memory nor holds a shutdown for minutes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

MAX_CONCURRENT_UPDATES = 256
MAX_WAITING_PER_CHAT = 5  # a chat's updates queued behind its current one; more are dropped


class PerChatUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        if self._waiting.get(chat.id, 0) > MAX_WAITING_PER_CHAT:
            if asyncio.iscoroutine(coroutine):
                coroutine.close()  # never awaited: this update is dropped
            return
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        self._waiting[chat.id] = self._waiting.get(chat.id, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._waiting[chat.id] -= 1
            if not self._waiting[chat.id]:  # forget idle chats: memory stays bounded
                del self._waiting[chat.id]
                del self._locks[chat.id]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
