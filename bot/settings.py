"""All settings of one feedbot process: the source side's plus Telegram and logging."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.alerts import AlertSettings
from feeds.config import FeedsConfig, Section, at_least, load_feeds_config, read_toml
from feeds.errors import ConfigError

DEFAULT_CONFIG = Path("config/feedbot.toml")
DEFAULT_API_URL = "https://api.telegram.org/bot"


def _chat_ids(value: object) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(value)
    return tuple(int(str(item).strip()) for item in items if str(item).strip())


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
    feeds: FeedsConfig
    telegram: TelegramSettings
    log: LogSettings
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)


def config_path(cli_value: str | None, env: Mapping[str, str]) -> Path:
    return Path(cli_value or env.get("FEEDBOT_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    doc = read_toml(path)
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
    return Settings(feeds=feeds, telegram=telegram, log=log, worker=worker, alerts=alerts)
