"""The ``feedbot`` command line as a user runs it: a few end-to-end runs of
``python -m feedbot`` in a subprocess, the rest through ``feedbot.cli.main`` in-process.

Every run has a (fake) bot token in its environment, and every run checks the
token appears nowhere in what the command printed."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest

from feedbot.cli import build_parser, main
from feeds.clock import LONDON
from tests.support.fake_source import FakeSource

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
HOME = FIXTURES / "site" / "index.html"
CAPTURE = FIXTURES / "seeds" / "statements-page-2020-07-06.txt"
PROFILE = ROOT / "config" / "sources" / "embassy-uk.toml"
TOKEN = "123456:ABCDEFabcdef_ghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def one_error_line(self) -> str:
        """The command failed with exactly one clear line on stderr."""
        assert len(self.err_lines) == 1, self.err
        line = self.err_lines[0]
        assert line.startswith("feedbot: "), line
        assert "Traceback" not in self.err
        return line


def no_secrets(result: Result) -> Result:
    assert TOKEN not in result.out and TOKEN not in result.err
    assert "ABCDEFabcdef" not in result.out + result.err
    return result


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any feedbot setting, plus a bot token."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "FEEDBOT_")) and k not in ("DATABASE_URL", "PORT")
    }
    env["TELEGRAM_BOT_TOKEN"] = TOKEN
    env.update(extra or {})
    return env


def run_bot(*args: str, env: dict[str, str] | None = None) -> Result:
    """``python -m feedbot ARGS`` from the project folder, as a user would type it."""
    proc = subprocess.run(
        [sys.executable, "-m", "feedbot", *args],
        cwd=ROOT,
        env=clean_env(env),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return no_secrets(Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode()))


Cli = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """``feedbot.cli.main(ARGS)`` in this process, with a clean environment."""
    for key in list(os.environ):
        if key.startswith(("TELEGRAM_", "FEEDBOT_")) or key in ("DATABASE_URL", "PORT"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        capsys.readouterr()
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            try:
                rc = main(list(args))
            except SystemExit as exc:  # argparse: --help and usage errors
                rc = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return no_secrets(Result(rc, out, err))

    yield run
    # main() points the root logger at this test's captured stderr: undo that.
    for handler in root.handlers:
        if handler not in saved[0]:
            root.removeHandler(handler)
    for handler in saved[0]:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved[1])


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@pytest.fixture
def plain_config(tmp_path: Path) -> Path:
    """Settings for commands that never open the store (parse, usage and config errors)."""
    return write_toml(
        tmp_path / "plain.toml",
        {
            "source": {"url": "http://127.0.0.1:9/", "profile": str(PROFILE)},
            "fetch": {"allow_private_addresses": True, "retries": 0, "connect_timeout": 2},
            "database": {"url": f"sqlite:///{tmp_path / 'plain.sqlite3'}"},
            "feeds": {"folder": str(tmp_path / "plain-feeds")},
        },
    )


@pytest.fixture
def config(make_config: Callable[..., Path], source: FakeSource) -> Path:
    """Settings pointing at the fake source, on SQLite or PostgreSQL."""
    return make_config(source.url + "/")


def expected_home() -> dict[str, Any]:
    return json.loads((FIXTURES / "expected-home.json").read_text("utf-8"))


def assert_reads_home(doc: dict[str, Any]) -> None:
    """``doc`` holds what expected-home.json lists, key by key."""
    want = expected_home()
    assert doc["as_of"] == want["as_of"]
    assert [{k: c[k] for k in ("days", "subject", "note")} for c in doc["counters"]] == want[
        "counters"
    ]
    assert [c["since"] for c in doc["counters"]] == ["2018-03-04", "2018-03-12"]
    assert len(doc["entries"]) == len(want["entries"])
    for got, exp in zip(doc["entries"], want["entries"], strict=True):
        for key, value in exp.items():
            if key == "url_path":
                assert urlsplit(got["url"]).path == value, got
            else:
                assert got[key] == value, (key, got["title"])
    ids = [e["id"] for e in doc["entries"]]
    assert all(ids) and len(set(ids)) == len(ids)


# --- parse ---------------------------------------------------------------------------


def test_parse_fixture_page_end_to_end(plain_config: Path) -> None:
    r = run_bot("--config", str(plain_config), "parse", "tests/fixtures/site/index.html")
    assert r.rc == 0, r.err
    assert r.err == ""
    assert_reads_home(json.loads(r.out))


def test_parse_text_capture_reads_the_same_page(cli: Cli, plain_config: Path) -> None:
    html = cli("--config", str(plain_config), "parse", str(HOME))
    text = cli("--config", str(plain_config), "parse", str(CAPTURE))
    assert html.rc == text.rc == 0, text.err
    page, capture = json.loads(html.out), json.loads(text.out)
    assert capture["as_of"] == "2020-07-06"
    assert capture["counters"] == page["counters"]
    assert [e["url"] for e in capture["entries"]] == [None] * 11
    keys = ("title", "published", "summary", "featured")
    assert [{k: e[k] for k in keys} for e in capture["entries"]] == [
        {k: e[k] for k in keys} for e in page["entries"]
    ]


def test_parse_url_of_the_source(cli: Cli, plain_config: Path, source: FakeSource) -> None:
    r = cli("--config", str(plain_config), "parse", source.url + "/")
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert_reads_home(doc)
    assert all(e["url"].startswith(source.url + "/fnapr/") for e in doc["entries"])
    assert source.count("/") == 1


def test_parse_a_page_the_profile_cannot_read_fails(
    cli: Cli, plain_config: Path, source: FakeSource
) -> None:
    r = cli("--config", str(plain_config), "parse", str(FIXTURES / "pages" / "neither.txt"))
    assert r.rc == 1
    assert "no statements" in r.one_error_line()
    assert r.out == ""
    r = cli("--config", str(plain_config), "parse", source.url + "/no/such/page")
    assert r.rc == 1
    assert "404" in r.one_error_line()
    assert r.out == ""


def test_parse_a_missing_file_is_bad_usage(cli: Cli, plain_config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-page.html"
    r = cli("--config", str(plain_config), "parse", str(missing))
    assert r.rc == 2
    assert str(missing) in r.one_error_line()
    assert r.out == ""


# --- poll, counters, feed ------------------------------------------------------------


def test_poll_end_to_end(config: Path, store: Any) -> None:
    first = run_bot("--config", str(config), "poll")
    assert first.rc == 0, first.err
    assert first.err == ""
    assert "11 new" in first.out
    for entry in expected_home()["entries"]:
        assert entry["title"] in first.out
    assert store.count_statements() == 11

    second = run_bot("--config", str(config), "poll")
    assert second.rc == 0, second.err
    assert "not modified" in second.out
    assert " new:" not in second.out
    assert store.count_statements() == 11


def test_poll_with_the_source_down_fails_with_one_line(
    config: Path, source: FakeSource, store: Any
) -> None:
    source.misbehave("/", "status", status=500)
    r = run_bot("--config", str(config), "poll")
    assert r.rc == 1
    line = r.one_error_line()
    assert "500" in line
    assert store.count_statements() == 0
    assert store.last_poll().result == "failed"


def test_poll_json(cli: Cli, config: Path) -> None:
    r = cli("--config", str(config), "--json", "poll")
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert doc["result"] == "ok"
    assert doc["first_fill"] is True
    assert len(doc["new"]) == 11
    assert "statements.atom" in doc["feeds_written"]


def test_counters(cli: Cli, config: Path) -> None:
    r = cli("--config", str(config), "counters", "--date", "2020-07-06")
    assert r.rc == 1
    assert "poll" in r.one_error_line()  # nothing stored yet: says what to do

    assert cli("--config", str(config), "poll").rc == 0
    r = cli("--config", str(config), "counters", "--date", "2020-07-06")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("855 days") and "Salisbury" in lines[0]
    assert lines[1].startswith("847 days") and "Glushkov" in lines[1]

    r = cli("--config", str(config), "counters", "--date", "2020-07-07")
    assert [line.split()[0] for line in r.out.splitlines()] == ["856", "848"]

    today = dt.datetime.now(LONDON).date()
    r = cli("--config", str(config), "counters")
    assert [int(line.split()[0]) for line in r.out.splitlines()] == [
        (today - dt.date(2018, 3, 4)).days,
        (today - dt.date(2018, 3, 12)).days,
    ]

    for args in (["--json", "counters"], ["counters", "--json"]):
        r = cli("--config", str(config), *args, "--date", "2020-07-07")
        assert r.rc == 0, r.err
        doc = json.loads(r.out)
        assert [(c["days"], c["since"], c["date"]) for c in doc] == [
            (856, "2018-03-04", "2020-07-07"),
            (848, "2018-03-12", "2020-07-07"),
        ]
        assert doc[0]["subject"] == "the Salisbury incident"
        assert doc[0]["note"].startswith("no credible information")


def test_feed_prints_the_published_feed(cli: Cli, config: Path, store: Any, tmp_path: Path) -> None:
    assert cli("--config", str(config), "poll").rc == 0
    ids = {s.id for s in store.statements()}
    for fmt in ("atom", "rss"):
        r = cli("--config", str(config), "feed", "--format", fmt)
        assert r.rc == 0, r.err
        parsed = feedparser.parse(r.out.encode())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert len(parsed.entries) == 11
        assert {e.id for e in parsed.entries} == ids
        # The same document the HTTP server and static servers hand out.
        assert r.out.encode() == (tmp_path / "feeds" / f"statements.{fmt}").read_bytes()
    r = cli("--config", str(config), "feed", "--format", "json")
    doc = json.loads(r.out)
    assert len(doc["items"]) == 11
    assert {item["id"] for item in doc["items"]} == ids
    default = cli("--config", str(config), "feed")
    assert feedparser.parse(default.out.encode()).version == "atom10"


# --- usage and configuration errors --------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["feed", "--format", "xml"],
        ["frobnicate"],
        ["counters", "--date", "2020-13-01"],
        ["counters", "--date", "yesterday"],
        ["parse"],
        [],
        ["poll", "--nope"],
    ],
    ids=lambda a: " ".join(a) or "no-command",
)
def test_bad_usage_is_one_line_and_exit_2(cli: Cli, plain_config: Path, args: list[str]) -> None:
    r = cli("--config", str(plain_config), *args)
    assert r.rc == 2
    r.one_error_line()
    assert r.out == ""


def test_bad_usage_end_to_end(plain_config: Path) -> None:
    r = run_bot("--config", str(plain_config), "feed", "--format", "xml")
    assert r.rc == 2
    line = r.one_error_line()
    assert "xml" in line and "--format" in line
    assert r.out == ""


def _bad_profile(tmp_path: Path) -> dict[str, str]:
    text = PROFILE.read_text("utf-8")
    bad = re.sub(r'(?m)^item = ".*"$', 'item = "ul.news-list li[["', text)
    assert bad != text
    (tmp_path / "bad-profile.toml").write_text(bad, "utf-8")
    write_toml(
        tmp_path / "bad.toml",
        {"source": {"url": "http://127.0.0.1:9/", "profile": "bad-profile.toml"}},
    )
    return {"FEEDBOT_CONFIG": str(tmp_path / "bad.toml")}


BAD_CONFIG: list[tuple[str, dict[str, str], str]] = [
    ("poll-zero", {"FEEDBOT_POLL_SECONDS": "0"}, "FEEDBOT_POLL_SECONDS"),
    ("poll-abc", {"FEEDBOT_POLL_SECONDS": "abc"}, "FEEDBOT_POLL_SECONDS"),
    ("poll-token", {"FEEDBOT_POLL_SECONDS": TOKEN}, "FEEDBOT_POLL_SECONDS"),
    ("port", {"PORT": "70000"}, "PORT"),
    ("port-abc", {"PORT": "http"}, "PORT"),
    ("source-ftp", {"FEEDBOT_SOURCE_URL": "ftp://x"}, "FEEDBOT_SOURCE_URL"),
    ("database-mysql", {"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ("public-url", {"FEEDBOT_PUBLIC_URL": "feeds.example"}, "FEEDBOT_PUBLIC_URL"),
    ("bad-token", {"TELEGRAM_BOT_TOKEN": "not a token"}, "TELEGRAM_BOT_TOKEN"),
    ("missing-file", {"FEEDBOT_CONFIG": "/nonexistent/feedbot.toml"}, "/nonexistent/feedbot.toml"),
    ("bad-profile", {}, "list.item"),
]


@pytest.mark.parametrize(("case", "env", "names"), BAD_CONFIG, ids=[c[0] for c in BAD_CONFIG])
def test_bad_configuration_is_one_line_naming_the_key(
    cli: Cli, plain_config: Path, tmp_path: Path, case: str, env: dict[str, str], names: str
) -> None:
    if case == "bad-profile":
        env = _bad_profile(tmp_path)
    args = [] if "FEEDBOT_CONFIG" in env else ["--config", str(plain_config)]
    for command in ("poll", "feed"):
        r = cli(*args, command, env=env)
        assert r.rc == 2, (command, r.err)
        line = r.one_error_line()
        assert names in line, line
        assert r.out == ""
    assert not (tmp_path / "plain.sqlite3").exists()  # stopped before opening anything


def test_bad_configuration_end_to_end(plain_config: Path, tmp_path: Path) -> None:
    r = run_bot("--config", str(plain_config), "poll", env={"FEEDBOT_POLL_SECONDS": "0"})
    assert r.rc == 2
    assert "FEEDBOT_POLL_SECONDS" in r.one_error_line()
    r = run_bot("--config", str(tmp_path / "absent.toml"), "counters")
    assert r.rc == 2
    assert "absent.toml" in r.one_error_line()
    (tmp_path / "broken.toml").write_text("[source\nurl = 1\n", "utf-8")
    r = run_bot("--config", str(tmp_path / "broken.toml"), "poll")
    assert r.rc == 2
    assert "broken.toml" in r.one_error_line()


# --- help and docs -------------------------------------------------------------------


def subcommands() -> list[str]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if a.choices and a.dest == "command")
    assert isinstance(sub.choices, dict)
    return sorted(sub.choices)


def test_help_lists_every_command() -> None:
    r = run_bot("--help")
    assert r.rc == 0
    assert r.out.startswith("usage: feedbot")
    listed = set(re.findall(r"(?m)^ {4}([\w-]+)\s", r.out))
    assert set(subcommands()) <= listed, r.out
    assert {"run", "poll", "parse", "feed", "counters", "serve"} <= listed


def test_every_command_has_its_own_help(cli: Cli) -> None:
    for name in subcommands():
        r = cli(name, "--help")
        assert r.rc == 0, name
        assert r.out.startswith(f"usage: feedbot {name}"), r.out


def test_every_command_is_documented_in_the_readme() -> None:
    readme = ROOT / "README.md"
    assert readme.is_file(), "README.md is missing"
    text = readme.read_text("utf-8")
    missing = [
        name for name in subcommands() if not re.search(rf"\b(?:feedbot|bot) {name}\b", text)
    ]
    assert not missing, f"commands not mentioned in README.md: {missing}"


def test_parse_says_a_statement_page_is_one_statement_and_explains_itself(
    cli: Cli, plain_config: Path
) -> None:
    page = FIXTURES / "site" / "fnapr" / "6940.html"
    r = cli("--config", str(plain_config), "parse", "--explain", str(page))
    assert r.rc == 0
    doc = json.loads(r.out)
    assert doc["kind"] == "statement"
    assert len(doc["entries"]) == 1 and doc["entries"][0]["published"] == "2020-06-24"
    assert "explain:" in r.err
    home = cli("--config", str(plain_config), "parse", str(FIXTURES / "pages" / "unknown-cms.html"))
    assert home.rc == 0
    assert json.loads(home.out)["reader"] == "text-layout"


@pytest.mark.parametrize("markup", ["unknown-cms", "unknown-table", "unknown-inline"])
def test_profile_suggest_writes_a_profile_that_reads_the_page(
    cli: Cli, plain_config: Path, tmp_path: Path, markup: str
) -> None:
    page = FIXTURES / "pages" / f"{markup}.html"
    base = "https://www.rusemb.org.uk/"
    r = cli("--config", str(plain_config), "profile", "suggest", str(page), "--base-url", base)
    assert r.rc == 0, r.err
    assert r.out.startswith("# Source profile suggested by `feedbot profile suggest`")
    assert "statements: 11" in r.err
    # An operator saves it and points the settings at it.
    (tmp_path / "suggested.toml").write_text(r.out, "utf-8")
    config = write_toml(
        tmp_path / "suggested-config.toml",
        {
            "source": {"url": base, "profile": str(tmp_path / "suggested.toml")},
            "database": {"url": f"sqlite:///{tmp_path / 's.sqlite3'}"},
        },
    )
    parsed = cli("--config", str(config), "parse", str(page))
    assert parsed.rc == 0, parsed.err
    doc = json.loads(parsed.out)
    assert doc["reader"] == "selectors"
    # The same statements, dates and links as the default profile reads from the model site.
    model = cli("--config", str(plain_config), "parse", str(FIXTURES / "site" / "index.html"))
    expected = json.loads(model.out)

    def read(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (e["title"], e["published"], urlsplit(e["url"]).path, e["featured"]) for e in entries
        ]

    assert read(doc["entries"]) == read(expected["entries"])


def test_profile_suggest_on_a_page_without_a_dated_list_is_one_line(
    cli: Cli, plain_config: Path
) -> None:
    r = cli(
        "--config",
        str(plain_config),
        "profile",
        "suggest",
        str(FIXTURES / "site" / "fnapr" / "6940.html"),
    )
    assert r.rc == 1
    assert "no repeated block with a date and a link" in r.one_error_line()
