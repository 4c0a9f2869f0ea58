"""Operator commands: subscribers, check-config, JSON logs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys

import pytest

from feedbot.app import open_context
from feedbot.cli import main
from feedbot.settings import load_settings
from tests.conftest import ROOT, ConfigFactory
from tests.support.fake_source import FakeSource
from tests.support.processes import clean_env

TOKEN = "987654321:AAF-not-a-real-token-but-shaped-like-one0"


def test_subscribers_lists_counts_and_exports(
    make_config: ConfigFactory, source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_config(source.url + "/")
    ctx = open_context(load_settings(path, env={}))
    now = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    ctx.bot_store.subscribe(11, "private", now, title="Ann")
    ctx.bot_store.subscribe(-100, "supergroup", now, title="Readers, Inc.")
    ctx.bot_store.subscribe(12, "private", now, title="Bob")
    ctx.bot_store.unsubscribe(12, "stop", now)
    ctx.close()

    assert main(["--config", str(path), "subscribers"]) == 0
    out = capsys.readouterr().out
    assert "2 subscribed (private 1, supergroup 1)" in out
    assert "Ann" in out and "Readers, Inc." in out and "Bob" not in out

    assert main(["--config", str(path), "subscribers", "--all", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["chat_id"] for r in rows} == {"11", "-100", "12"}
    assert next(r for r in rows if r["chat_id"] == "-100")["title"] == "Readers, Inc."
    assert next(r for r in rows if r["chat_id"] == "12")["active"] == "False"

    assert main(["--config", str(path), "--json", "subscribers"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["count"] == {"private": 1, "supergroup": 1, "total": 2}


def test_check_config_masks_secrets_and_checks_the_source(
    make_config: ConfigFactory,
    source: FakeSource,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_URL", "postgresql://feedbot:s3cret-pw@db.internal/feedbot")
    path = make_config(source.url + "/")
    assert main(["--config", str(path), "check-config"]) == 0
    out = capsys.readouterr().out
    assert TOKEN not in out and "s3cret-pw" not in out
    assert '"token": "set (hidden)"' in out and "feedbot:***@db.internal" in out
    assert "finds 11 statements and 2 counters" in out

    source.misbehave("/", "status", status=503)
    assert main(["--config", str(path), "check-config"]) == 1
    assert "503" in capsys.readouterr().err


def test_json_log_lines(make_config: ConfigFactory, source: FakeSource) -> None:
    path = make_config(source.url + "/")
    source.misbehave("/", "status", status=500)
    result = subprocess.run(
        [sys.executable, "-m", "feedbot", "--config", str(path), "poll"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(
            {"FEEDBOT_LOG_FORMAT": "json", "FEEDBOT_LOG_LEVEL": "INFO", "TELEGRAM_BOT_TOKEN": TOKEN}
        ),
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines, result.stderr
    records = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= records[0].keys()
    assert any(r["level"] == "WARNING" and "poll of" in r["message"] for r in records)
    assert TOKEN not in result.stderr and TOKEN not in result.stdout
