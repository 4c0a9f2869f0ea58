"""The deployment's sources as the bot sees them: the names that head messages, the
sources a new chat follows, which of them have counters.

Built from ``feeds.config.SourceSettings``. Nothing given (the bot not wired to the
settings) means the one primary source: everything then works as it did before there
were several sources, and no message names a source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.store import PRIMARY
from feeds.config import SourceSettings


@dataclass(frozen=True)
class BotSources:
    all: tuple[SourceSettings, ...] = ()

    @classmethod
    def of(cls, sources: Sequence[SourceSettings] | BotSources) -> BotSources:
        return sources if isinstance(sources, BotSources) else cls(tuple(sources))

    @property
    def several(self) -> bool:
        """More than one source: messages say which source they come from."""
        return len(self.all) > 1

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.all) or PRIMARY

    def defaults(self) -> tuple[str, ...]:
        """The keys of the sources a chat follows at /start."""
        return tuple(s.key for s in self.all if s.default) if self.all else PRIMARY

    def with_counters(self) -> tuple[str, ...]:
        """The keys of the sources that carry day counters."""
        return tuple(s.key for s in self.all if s.counters) if self.all else PRIMARY

    def name(self, key: str) -> str | None:
        """The name that heads a message from this source; None with one source."""
        if not self.several:
            return None
        return next((s.name for s in self.all if s.key == key), None)

    def names(self) -> dict[str, str]:
        """{key: name} of every source when there are several, else empty."""
        return {s.key: s.name for s in self.all} if self.several else {}

    def by_id(self, source_id: str) -> SourceSettings | None:
        return next((s for s in self.all if s.id == source_id), None)

    def among(self, keys: Iterable[str]) -> list[SourceSettings]:
        """The sources with these keys, in the settings' order."""
        wanted = set(keys)
        return [s for s in self.all if s.key in wanted]

    def chosen(self, followed: set[str]) -> tuple[str, ...]:
        """The keys a chat reads (/latest, /counters): those it follows that still
        exist, else every source (a chat that follows nothing sees everything)."""
        keys = tuple(k for k in self.keys if k in followed)
        return keys or self.keys
