"""All settings of one feedbot process: the source side's plus Telegram and logging."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import DEFAULT_API_URL, TelegramSettings
from feeds.config import (
    FeedsConfig,
    Section,
    SettingsDoc,
    at_least,
    load_feeds_config,
    read_toml,
)
from feeds.errors import ConfigError

DEFAULT_CONFIG = Path("config/feedbot.toml")


def _chat_ids(value: object) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(value)
    return tuple(int(str(item).strip()) for item in items if str(item).strip())


def _seconds_between(low: float, high: float) -> Callable[[float], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low:g} and {high:g} seconds"


@dataclass(frozen=True)
class HttpSettings:
    host: str = "0.0.0.0"  # noqa: S104 - a service meant to be reached
    port: int = 8080
    unhealthy_after_seconds: int = 3600
    feed_recheck_seconds: float = 0.5  # how often a served feed file is checked for changes
    # Open connections allowed at once; more are answered 503 and closed. Kept well
    # below the open-file limit (1024 by default), which the database, the bot and
    # the feed files share.
    max_connections: int = 800
    idle_timeout: float = 60.0  # a kept-alive connection with no request is closed after this
    header_timeout: float = 10.0  # a new connection must have sent a request's head by then


@dataclass(frozen=True)
class AlertSettings:
    failures: int = 3
    drop_ratio: float = 0.5


@dataclass(frozen=True)
class WorkerSettings:
    """The lease that makes one worker per database do the polling and sending."""

    lease_seconds: float = 20.0  # a dead holder's lease is free after this
    renew_seconds: float = 5.0  # how often the holder renews, and stand-bys try
    same_host_takeover: bool = True  # take over at once from a dead process on this host


@dataclass(frozen=True)
class LogSettings:
    level: str = ""  # empty: INFO for the services, ERROR for one-shot commands
    format: str = "text"


@dataclass(frozen=True)
class Settings:
    feeds: FeedsConfig  # the source side's own settings
    http: HttpSettings
    telegram: TelegramSettings
    log: LogSettings
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)


def config_path(cli_value: str | None, env: Mapping[str, str]) -> Path:
    return Path(cli_value or env.get("FEEDBOT_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    doc = SettingsDoc(read_toml(path))
    feeds = load_feeds_config(doc, path, env)
    tg = Section(doc, "telegram", env)
    token = env.get("TELEGRAM_BOT_TOKEN", "").strip() or None
    if token is not None and (":" not in token or " " in token):
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN (environment): not a bot token (expected 123456:ABC…)"
        )
    if "token" in tg.table:
        raise ConfigError("telegram.token: keep the bot token out of files; set TELEGRAM_BOT_TOKEN")
    telegram = TelegramSettings(
        token=token,
        api_url=tg.get(
            "api_url",
            str,
            DEFAULT_API_URL,
            env="TELEGRAM_API_URL",
            check=lambda v: (
                None if v.startswith(("http://", "https://")) else "must be an http(s) URL"
            ),
        ),
        admin_chat_ids=tg.get("admin_chat_ids", _chat_ids, (), env="FEEDBOT_ADMIN_CHAT_IDS"),
        channel_ids=tg.get("channel_ids", _chat_ids, (), env="FEEDBOT_CHANNEL_IDS"),
        webhook_url=tg.get(
            "webhook_url",
            str,
            "",
            env="FEEDBOT_WEBHOOK_URL",
            check=lambda v: (
                None
                if not v or v.startswith("https://") or v.startswith("http://")
                else "must be the public https:// base URL of this service"
            ),
        )
        or None,
        paid_broadcast=tg.get("paid_broadcast", bool, False, env="FEEDBOT_PAID_BROADCAST"),
        request_timeout=tg.get("request_timeout", float, 15.0, check=at_least(1)),
        follow_edits=tg.get("follow_edits", bool, True, env="FEEDBOT_FOLLOW_EDITS"),
    )
    lg = Section(doc, "log", env)
    log = LogSettings(
        level=lg.get(
            "level",
            str.upper,
            "",
            env="FEEDBOT_LOG_LEVEL",
            check=lambda v: (
                None
                if v in ("", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
                else "must be DEBUG, INFO, WARNING, ERROR or CRITICAL"
            ),
        ),
        format=lg.get(
            "format",
            str.lower,
            "text",
            env="FEEDBOT_LOG_FORMAT",
            check=lambda v: None if v in ("text", "json") else "must be text or json",
        ),
    )
    w = Section(doc, "worker", env)
    renew = w.get("renew_seconds", float, 5.0, check=at_least(0.1))
    worker = WorkerSettings(
        lease_seconds=w.get(
            "lease_seconds",
            float,
            20.0,
            check=lambda v: None if v > renew else "must be longer than worker.renew_seconds",
        ),
        renew_seconds=renew,
        same_host_takeover=w.get("same_host_takeover", bool, True),
    )
    h = Section(doc, "http", env)
    http = HttpSettings(
        host=h.get("host", str, HttpSettings.host, env="FEEDBOT_HOST"),
        port=h.get(
            "port",
            int,
            HttpSettings.port,
            env="PORT",
            check=lambda v: None if 0 <= v <= 65535 else "must be a port number (0-65535)",
        ),
        unhealthy_after_seconds=h.get(
            "unhealthy_after_seconds", int, HttpSettings.unhealthy_after_seconds, check=at_least(1)
        ),
        feed_recheck_seconds=h.get(
            "feed_recheck_seconds", float, HttpSettings.feed_recheck_seconds, check=at_least(0)
        ),
        max_connections=h.get(
            "max_connections",
            int,
            HttpSettings.max_connections,
            env="FEEDBOT_MAX_CONNECTIONS",
            check=lambda v: None if 1 <= v <= 1_000_000 else "must be between 1 and 1000000",
        ),
        idle_timeout=h.get(
            "idle_timeout", float, HttpSettings.idle_timeout, check=_seconds_between(1, 3600)
        ),
        header_timeout=h.get(
            "header_timeout", float, HttpSettings.header_timeout, check=_seconds_between(1, 300)
        ),
    )
    a = Section(doc, "alerts", env)
    alerts = AlertSettings(
        failures=a.get("failures", int, 3, check=at_least(1)),
        drop_ratio=a.get(
            "drop_ratio",
            float,
            0.5,
            check=lambda v: None if 0 < v < 1 else "must be between 0 and 1",
        ),
    )
    # Last, once every loader has asked for its keys: a typo is refused, not ignored.
    doc.refuse_unknown()
    return Settings(
        feeds=feeds, http=http, telegram=telegram, log=log, worker=worker, alerts=alerts
    )
