"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL when
FEEDBOT_TEST_DATABASE_URL is set), the fixture site on a local HTTP server,
and settings files written the way an operator would write them."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbot.settings import Settings, load_settings
from feeds.fetch import Fetcher
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.support.databases import postgresql_schema
from tests.support.fake_source import FakeSource
from tests.support.harness import harness, running, tg  # noqa: F401 - shared fixtures

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PROFILE = ROOT / "config" / "sources" / "embassy-uk.toml"
PG_URL = os.environ.get("FEEDBOT_TEST_DATABASE_URL")

DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``one_database`` (what the bot says, not what it stores) run on
    SQLite alone: their PostgreSQL copies are left out, not skipped."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("database_url") == "postgresql"
        (drop if on_pg and item.get_closest_marker("one_database") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A command run in-process (``feedbot.cli.main``) configures the root logger as
    the process would; the next test must not inherit its level or handlers."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `feedbot` sets at start: RetryAfter.retry_after as a timedelta, no warning.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for each test: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedbot.sqlite3'}"
        return
    assert PG_URL is not None
    with postgresql_schema(PG_URL) as url:
        yield url


@pytest.fixture
def source() -> Iterator[FakeSource]:
    with FakeSource(root=FIXTURES / "site") as src:
        yield src


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), "utf-8")
    return path


ConfigFactory = Callable[..., Path]


@pytest.fixture
def make_config(tmp_path: Path, database_url: str) -> ConfigFactory:
    """Writes a settings file for a test; keyword arguments override sections."""

    def make(source_url: str = "http://127.0.0.1:9/", **sections: dict[str, Any]) -> Path:
        base: dict[str, dict[str, Any]] = {
            "source": {"url": source_url, "profile": str(PROFILE), "poll_seconds": 1},
            "fetch": {
                "article_delay": 0,
                "allow_private_addresses": True,
                "retries": 1,
                "connect_timeout": 2,
                "read_timeout": 2,
                "deadline": 5,
            },
            "database": {"url": database_url},
            "feeds": {"folder": str(tmp_path / "feeds"), "public_url": "http://feeds.test"},
            "http": {"host": "127.0.0.1", "port": 0},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        return write_config(tmp_path / "feedbot.toml", base)

    return make


@pytest.fixture
def settings(make_config: ConfigFactory, source: FakeSource) -> Settings:
    return load_settings(make_config(source.url + "/"), env={})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.feeds.database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def pipeline(settings: Settings, store: Store) -> Iterator[Pipeline]:
    fetcher = Fetcher(settings.feeds.fetch, sleep=lambda _s: None)
    yield Pipeline(settings.feeds, store, fetcher, sleep=lambda _s: None)
    fetcher.close()
