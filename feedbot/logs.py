"""One logging set-up for the process: readable text or JSON lines, secrets redacted.

python-telegram-bot and httpx log request URLs, and the Bot API puts the token
in every URL, so a filter on the root handler replaces the token wherever it
appears — in the message, its arguments and any traceback. The same filter
masks the password of any ``scheme://user:password@`` URL (a source behind
basic auth, a database URL in a driver's message).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import quote

from feeds.urls import masked_in_text

# A bot token looks like 123456789:AA…; redact any such shape even if not ours.
_TOKEN_SHAPE = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")
REDACTED = "[REDACTED]"


TOKEN_VARIABLE = "TELEGRAM_BOT_TOKEN"  # noqa: S105 - the name, not the token


def token_secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    """Every form the bot token may take in a log line: the variable's raw value
    (surrounding whitespace and all), the stripped token the bot uses, and the
    stripped token as it appears percent-encoded in a URL."""
    raw = env.get(TOKEN_VARIABLE, "")
    token = raw.strip()
    forms = {raw, raw.strip("\r\n"), token, quote(token, safe=""), quote(token, safe=":")}
    # Longest first, so a shorter form never leaves the rest of a longer one behind;
    # a value of a few characters is no token, and replacing it would garble every line.
    return tuple(sorted((f for f in forms if len(f.strip()) >= 4), key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return masked_in_text(_TOKEN_SHAPE.sub(REDACTED, text))


class RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: tuple[str, ...], json_lines: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.secrets = secrets
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        if self.json_lines:
            doc: dict[str, Any] = {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                doc["exception"] = self.formatException(record.exc_info)
            return redact(json.dumps(doc, ensure_ascii=False), self.secrets)
        return redact(super().format(record), self.secrets)


def configure_logging(
    level: str = "INFO",
    fmt: str = "text",
    secrets: tuple[str, ...] = (),
    stream: TextIO | None = None,
) -> None:
    """The root handler: to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets, fmt == "json"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO, with the token in the URL: keep it quieter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
