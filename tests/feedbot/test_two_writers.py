"""Several feedbot processes on one database: polls of one source take turns, and
processes starting together on an empty database take turns at the migrations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from feeds.store import Store
from tests.conftest import ROOT, ConfigFactory
from tests.support.fake_source import FakeSource

pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "FEEDBOT_")) and k not in ("DATABASE_URL", "PORT")
    }


def start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "feedbot", "--config", str(config), *args],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _out, err = proc.communicate(timeout=90)
    return proc.returncode, err.decode()


def test_four_processes_on_an_empty_database_take_turns(
    make_config: ConfigFactory, source: FakeSource, database_url: str
) -> None:
    # The page answers slowly, so that the polls overlap as well as the migrations.
    source.misbehave("/", "slow", seconds=0.3)
    config = make_config(source.url + "/", fetch={"articles_per_poll": 0})
    procs = [start(config, "poll") for _ in range(4)]
    results = [finish(p) for p in procs]
    for rc, err in results:
        assert "Traceback" not in err, err
        assert rc == 0, err
    store = Store(database_url)
    try:
        assert store.count_statements() == 11
        assert len({s.id for s in store.statements(limit=100)}) == 11
    finally:
        store.close()


def test_two_polls_at_once_never_conflict(
    make_config: ConfigFactory, source: FakeSource, database_url: str
) -> None:
    config = make_config(source.url + "/", fetch={"articles_per_poll": 0})
    rc, err = finish(start(config, "poll"))
    assert rc == 0, err
    source.misbehave("/", "slow", seconds=0.3)
    for n in range(3):
        page = (ROOT / "tests" / "fixtures" / "site" / "index.html").read_text("utf-8")
        item = (
            f'<li class="news-item"><span class="news-date">0{n + 1}.07.2020</span> - '
            f'<a class="news-title" href="/fnapr/{7100 + n}">Round {n} statement</a>'
            '<p class="news-lead">A lead.</p></li>'
        )
        source.set_body(
            "/", page.replace('<ul class="news-list">', '<ul class="news-list">' + item, 1)
        )
        pair = [start(config, "poll"), start(config, "poll")]
        for rc, err in (finish(p) for p in pair):
            assert "Traceback" not in err and "IntegrityError" not in err, err
            assert rc == 0, err
    store = Store(database_url)
    try:
        assert store.count_statements() == 11 + 3
    finally:
        store.close()
