"""`feedbot backfill` from the command line: history is stored, never pushed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from feedbot.app import open_context
from feedbot.cli import main
from feedbot.settings import load_settings
from tests.conftest import FIXTURES, ConfigFactory
from tests.support.fake_source import FakeSource


@pytest.fixture
def archive() -> Iterator[FakeSource]:
    """The archive pages, under the fixture site's home page."""
    with FakeSource(root=FIXTURES / "archive") as src:
        src.set_body("/", (FIXTURES / "site" / "index.html").read_bytes())
        yield src


def test_backfilled_statements_are_not_pushed_to_subscribers(
    make_config: ConfigFactory, archive: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_config(archive.url + "/")
    assert main(["--config", str(path), "poll"]) == 0
    ctx = open_context(load_settings(path, env={}))
    ctx.bot_store.subscribe(7, "private", dt.datetime.now(dt.UTC))
    capsys.readouterr()
    assert main(["--config", str(path), "backfill"]) == 0
    out = capsys.readouterr().out
    assert "4 archive pages read; 23 statements, 20 new" in out
    assert ctx.store.count_statements() == 31
    assert ctx.bot_store.outbox_counts() == {}
    feed = (ctx.settings.feeds.publish.folder / "statements.atom").read_text("utf-8")
    assert "Archived statement number 20" in feed
    ctx.close()
