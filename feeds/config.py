"""Typed settings of the source side, read once at start-up from the TOML file
and the environment (which wins). A bad value raises ConfigError naming the key.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from feeds.errors import ConfigError
from feeds.profile import SourceProfile, load_profile

T = TypeVar("T")
DEFAULT_DATABASE_URL = "sqlite:///data/feedbot.sqlite3"
DEFAULT_BROWSER_PATH = "/usr/bin/chromium"  # Debian's; used when source.fetch = "browser"
FETCH_MODES = ("http", "browser")


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = "feedbot/0.1 (+statement feeds; polite polling)"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 60.0  # the whole fetch: connect, headers, body, redirects, retries, waits
    max_bytes: int = 5_000_000  # after decompression
    retries: int = 2
    max_retry_after: float = 120.0  # longer waits are left to the poll back-off
    max_redirects: int = 5
    article_delay: float = 1.0
    articles_per_poll: int = 10
    article_attempts: int = 5
    allow_private_addresses: bool = False


@dataclass(frozen=True)
class SourceSettings:
    url: str
    profile: SourceProfile  # a feed source's statement pages are read with the default's
    profile_path: Path
    poll_seconds: int = 300
    backoff_max_seconds: int = 3600
    fetch: str = "http"  # "browser": render the page in headless Chromium (feeds.browser)
    browser_path: str = DEFAULT_BROWSER_PATH
    id: str = "main"  # short and URL-safe: /feeds/<id>/…, /sources/<id>, --source ID
    name: str = "Statements"
    kind: str = "page"  # page: read with the profile; feed: an Atom/RSS/JSON feed
    default: bool = True  # new subscribers follow it
    counters: bool = True  # the page carries day counters
    primary: bool = True  # the [source] table: its statements keep their ids as stored

    @property
    def key(self) -> str:
        """How the store tells this source's rows apart: "" for the primary source
        (so a database from before several sources needs no rewriting), else its id."""
        return "" if self.primary else self.id


@dataclass(frozen=True)
class FeedSettings:
    folder: Path = Path("data/feeds")
    public_url: str = "http://localhost:8080"
    title: str = "Statements"
    subtitle: str = ""
    author: str = "feedbot"
    entries: int = 50  # per feed document; older ones go to archive documents
    counter_days: int = 30
    websub_hub: str | None = None


@dataclass(frozen=True)
class FeedsConfig:
    source: SourceSettings  # the primary source: [source]
    fetch: FetchSettings
    publish: FeedSettings  # where and how the feed documents are written
    database_url: str
    path: Path
    more_sources: tuple[SourceSettings, ...] = ()  # [[sources]]

    @property
    def sources(self) -> tuple[SourceSettings, ...]:
        return (self.source, *self.more_sources)

    def source_by_id(self, source_id: str | None) -> SourceSettings:
        """The source with this id (None: the primary); ConfigError naming it if none."""
        if source_id is None:
            return self.source
        for source in self.sources:
            if source.id == source_id:
                return source
        known = ", ".join(s.id for s in self.sources)
        raise ConfigError(f"--source {source_id}: no such source (the sources are: {known})")


class SettingsDoc(Mapping[str, Any]):
    """The parsed settings file, remembering which sections and keys the loaders
    asked for: whatever none of them asked for (``poll_second``) is refused by
    ``refuse_unknown`` instead of being silently ignored. The known keys are thus
    the ones the code reads, never a list kept by hand."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self._asked: dict[str, set[str] | None] = {}  # None: the whole section was read

    def __getitem__(self, name: str) -> Any:
        self._asked[name] = None  # read directly: every key in it is the reader's
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def table(self, name: str) -> Mapping[str, Any]:
        """One section for a Section: the keys it asks for are recorded as known."""
        table = self._data.get(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{name}]: must be a table")
        asked = self._asked.setdefault(name, set())
        return _AskedTable(table, asked) if asked is not None else table

    def ask(self, name: str, key: str) -> None:
        asked = self._asked.setdefault(name, set())
        if asked is not None:
            asked.add(key)

    def refuse_unknown(self) -> None:
        """ConfigError naming the first key or section no loader asked for."""
        for name, value in self._data.items():
            if name not in self._asked:
                kind = "section" if isinstance(value, Mapping) else "key"
                shown = f"[{name}]" if kind == "section" else name
                hint = _suggest(name, [n for n in self._asked if n not in self._data])
                raise ConfigError(
                    f"{shown}: unknown {kind}" + (f" (did you mean [{hint}]?)" if hint else "")
                )
            asked = self._asked[name]
            if asked is None or not isinstance(value, Mapping):
                continue
            for key in value:
                if key not in asked:
                    hint = _suggest(key, [k for k in asked if k not in value])
                    raise ConfigError(
                        f"{name}.{key}: unknown key" + (f" (did you mean {hint}?)" if hint else "")
                    )


class _AskedTable(Mapping[str, Any]):
    """A section's table that records every key looked up in it."""

    def __init__(self, table: Mapping[str, Any], asked: set[str]) -> None:
        self._table = table
        self._asked = asked

    def __getitem__(self, key: str) -> Any:
        self._asked.add(key)
        return self._table[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._asked.add(key)
        return key in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def _suggest(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


class Section:
    """Reads one TOML table, with environment overrides and checks per key."""

    def __init__(self, doc: Mapping[str, Any], name: str, env: Mapping[str, str]) -> None:
        self.doc = doc if isinstance(doc, SettingsDoc) else None
        if self.doc is not None:
            table = self.doc.table(name)
        else:
            table = doc.get(name, {})
            if not isinstance(table, Mapping):
                raise ConfigError(f"[{name}]: must be a table")
        self.table = table
        self.name = name
        self.env = env

    def get(
        self,
        key: str,
        kind: Callable[[Any], T],
        default: T,
        env: str | None = None,
        check: Callable[[T], str | None] | None = None,
    ) -> T:
        if self.doc is not None:
            self.doc.ask(self.name, key)  # known even when the environment overrides it
        where = f"{env} (environment)" if env and self.env.get(env) else f"{self.name}.{key}"
        raw: Any = self.env[env] if env and self.env.get(env) else self.table.get(key, default)
        try:
            value = _convert(raw, kind)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where}: {_shown(raw)} is not a valid {_kind_name(kind)}") from None
        problem = _out_of_range(value) if kind in (int, float) else None
        problem = problem or (check(value) if check else None)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        return value


# Beyond this no count, size or number of seconds makes sense, and larger ones
# overflow timers, SQL integers and sleeps far from where they were set.
LARGEST_NUMBER = 2**31 - 1


def _out_of_range(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a number that can be used here"
    if abs(value) > LARGEST_NUMBER:
        return f"{_shown(value)} is out of range (at most {LARGEST_NUMBER:,})"
    return None


def _shown(raw: Any) -> str:
    """A value as it goes into a one-line message (repr: newlines escaped). Never
    shortened here: the process redacts secrets from the whole line, then shortens."""
    return repr(raw)


def _kind_name(kind: Callable[[Any], Any]) -> str:
    names: dict[Any, str] = {
        int: "whole number",
        float: "number",
        bool: "true/false",
        str: "string",
    }
    return names.get(kind) or str(getattr(kind, "__name__", "value"))


def _convert(raw: Any, kind: Callable[[Any], T]) -> T:
    if kind is bool:
        if isinstance(raw, bool):
            return raw  # type: ignore[return-value]
        if isinstance(raw, str) and raw.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return raw.lower() in ("1", "true", "yes", "on")  # type: ignore[return-value]
        raise ValueError(raw)
    if kind is int and isinstance(raw, float | bool):
        raise ValueError(raw)
    if kind in (int, float) and isinstance(raw, str):
        raw = raw.strip()
    return cast(T, kind(raw))


def at_least(minimum: float) -> Callable[[float], str | None]:
    return lambda v: None if v >= minimum else f"must be at least {minimum:g}"


def http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http:// or https:// URL"
    return None


def fetch_mode(value: str) -> str | None:
    return None if value in FETCH_MODES else 'must be "http" or "browser"'


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_feeds_config(doc: Mapping[str, Any], path: Path, env: Mapping[str, str]) -> FeedsConfig:
    src = Section(doc, "source", env)
    profile_name = src.get("profile", str, "sources/embassy-uk.toml")
    profile_path = (path.parent / profile_name).resolve()
    try:
        profile = load_profile(read_toml(profile_path), where=f"profile {profile_path.name}")
    except ConfigError as exc:
        raise ConfigError(f"source.profile: {exc}") from None
    source = SourceSettings(
        url=src.get("url", str, "", env="FEEDBOT_SOURCE_URL", check=http_url),
        profile=profile,
        profile_path=profile_path,
        poll_seconds=src.get(
            "poll_seconds", int, 300, env="FEEDBOT_POLL_SECONDS", check=at_least(1)
        ),
        backoff_max_seconds=src.get("backoff_max_seconds", int, 3600, check=at_least(1)),
        fetch=src.get("fetch", str, "http", env="FEEDBOT_SOURCE_FETCH", check=fetch_mode),
        browser_path=src.get("browser_path", str, DEFAULT_BROWSER_PATH, env="FEEDBOT_BROWSER_PATH"),
        id=src.get("id", str, _slug(profile.name), check=source_id),
        name=src.get("name", str, "", check=None),
        default=src.get("default", bool, True),
        counters=src.get("counters", bool, profile.counters is not None),
    )
    if source.fetch == "browser" and not Path(source.browser_path).is_file():
        raise ConfigError(
            f"source.browser_path: {source.browser_path} does not exist"
            " (install Debian's chromium, or point this at a Chromium binary)"
        )
    f = Section(doc, "fetch", env)
    d = FetchSettings()
    fetch = FetchSettings(
        user_agent=f.get(
            "user_agent", str, d.user_agent, check=lambda v: None if v else "is empty"
        ),
        connect_timeout=f.get("connect_timeout", float, d.connect_timeout, check=at_least(0.1)),
        read_timeout=f.get("read_timeout", float, d.read_timeout, check=at_least(0.1)),
        deadline=f.get("deadline", float, d.deadline, check=at_least(0.1)),
        max_bytes=f.get("max_bytes", int, d.max_bytes, check=at_least(1024)),
        retries=f.get("retries", int, d.retries, check=at_least(0)),
        max_retry_after=f.get("max_retry_after", float, d.max_retry_after, check=at_least(0)),
        max_redirects=f.get("max_redirects", int, d.max_redirects, check=at_least(0)),
        article_delay=f.get("article_delay", float, d.article_delay, check=at_least(0)),
        articles_per_poll=f.get("articles_per_poll", int, d.articles_per_poll, check=at_least(0)),
        article_attempts=f.get("article_attempts", int, d.article_attempts, check=at_least(1)),
        allow_private_addresses=f.get(
            "allow_private_addresses",
            bool,
            d.allow_private_addresses,
            env="FEEDBOT_ALLOW_PRIVATE_ADDRESSES",
        ),
    )
    fd = Section(doc, "feeds", env)
    dfeeds = FeedSettings()
    hub = fd.get("websub_hub", str, "", env="FEEDBOT_WEBSUB_HUB")
    feeds = FeedSettings(
        folder=Path(fd.get("folder", str, str(dfeeds.folder), env="FEEDBOT_FEEDS_DIR")),
        public_url=fd.get(
            "public_url", str, dfeeds.public_url, env="FEEDBOT_PUBLIC_URL", check=http_url
        ).rstrip("/"),
        title=fd.get("title", str, dfeeds.title),
        subtitle=fd.get("subtitle", str, dfeeds.subtitle),
        author=fd.get("author", str, dfeeds.author),
        entries=fd.get("entries", int, dfeeds.entries, check=at_least(1)),
        counter_days=fd.get("counter_days", int, dfeeds.counter_days, check=at_least(1)),
        websub_hub=hub or None,
    )
    db = Section(doc, "database", env)
    database_url = db.get(
        "url",
        str,
        DEFAULT_DATABASE_URL,
        env="DATABASE_URL",
        check=lambda v: (
            None
            if v.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:"))
            else "must be a sqlite:/// or postgresql:// URL"
        ),
    )
    if not source.name:
        source = replace(source, name=feeds.title)
    more = _more_sources(doc, path, source)
    return FeedsConfig(
        source=source,
        fetch=fetch,
        publish=feeds,
        database_url=database_url,
        path=path,
        more_sources=more,
    )


_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
SOURCE_KINDS = ("page", "feed")


RESERVED_IDS = frozenset({"archive"})  # /feeds/archive/ holds the combined archives


def source_id(value: str) -> str | None:
    if value in RESERVED_IDS:
        return f"{value!r} is reserved (it names a folder of the combined feeds)"
    if _SOURCE_ID.match(value):
        return None
    return "must be 1-32 lower-case letters, digits or '-', starting with a letter or digit"


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:32]
    return slug if _SOURCE_ID.match(slug) else "main"


def _more_sources(
    doc: Mapping[str, Any], path: Path, primary: SourceSettings
) -> tuple[SourceSettings, ...]:
    """The ``[[sources]]`` tables: each read and checked like [source], refused with
    one line naming the source on a duplicate or unsafe id, an unknown profile or key."""
    tables = doc.get("sources", [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise ConfigError("sources: must be [[sources]] tables")
    seen = {primary.id}
    loaded = []
    # Sources sharing a profile share one compiled copy (200 sources: 22 MB otherwise).
    profiles: dict[Path, SourceProfile] = {primary.profile_path: primary.profile}
    for n, table in enumerate(tables, start=1):
        label = f"sources[{n}]"
        sub = SettingsDoc({label: table})
        sec = Section(sub, label, {})
        sid = sec.get("id", str, "", check=lambda v: "is required" if not v else source_id(v))
        where = f"source {sid!r}"
        if sid in seen:
            raise ConfigError(f"{where}: the id is used twice")
        seen.add(sid)
        try:
            kind = sec.get(
                "kind",
                str,
                "page",
                check=lambda v: None if v in SOURCE_KINDS else 'must be "page" or "feed"',
            )
            profile, profile_path = primary.profile, primary.profile_path
            has_profile = "profile" in table
            if kind == "page" or has_profile:
                profile_name = sec.get(
                    "profile", str, "", check=lambda v: None if v else "is required"
                )
                profile_path = (path.parent / profile_name).resolve()
                if profile_path not in profiles:
                    profiles[profile_path] = load_profile(
                        read_toml(profile_path), where=f"profile {profile_path.name}"
                    )
                profile = profiles[profile_path]
            source = SourceSettings(
                url=sec.get("url", str, "", check=http_url),
                profile=profile,
                profile_path=profile_path,
                poll_seconds=sec.get("poll_seconds", int, primary.poll_seconds, check=at_least(1)),
                backoff_max_seconds=sec.get(
                    "backoff_max_seconds", int, primary.backoff_max_seconds, check=at_least(1)
                ),
                fetch=sec.get("fetch", str, "http", check=fetch_mode),
                browser_path=sec.get("browser_path", str, primary.browser_path),
                id=sid,
                name=sec.get("name", str, sid),
                kind=kind,
                default=sec.get("default", bool, False),
                counters=sec.get("counters", bool, kind == "page" and profile.counters is not None),
                primary=False,
            )
            sub.refuse_unknown()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        loaded.append(source)
    return tuple(loaded)


def load_feeds_file(path: Path, env: Mapping[str, str] | None = None) -> FeedsConfig:
    """The source side's settings alone, from a settings file and the environment
    (the process's other sections are the process's business)."""
    return load_feeds_config(read_toml(path), path, os.environ if env is None else env)
