"""What an operator sees when something is wrong, and what they must never see.

Every bad setting, file or database ends a command with one line on stderr
naming what is wrong (exit 2: the configuration; exit 1: the work could not be
done, e.g. the database cannot be opened) — never a traceback. A source URL
with ``user:password@`` is fetched with its credentials, and the password shows
nowhere: not in ids, links, the store, the feeds, ``/healthz``, the home page,
``check-config`` or an error line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from feedbot.app import build_web, open_context
from feedbot.logs import configure_logging, redact, token_secrets
from feedbot.settings import load_settings
from feeds.ids import statement_id
from feeds.urls import masked, masked_in_text, page_base, with_credentials_of, without_credentials
from tests.conftest import PROFILE
from tests.feedbot.test_cli import Cli, cli  # noqa: F401 - the in-process `feedbot` fixture
from tests.support.fake_source import FakeSource

PASSWORD = "s3cr3t-pw"


def settings_text(tmp_path: Path, extra: str = "", **sections: str) -> str:
    """A settings file as an operator writes it; ``sections`` replace whole tables."""
    tables = {
        "source": f'url = "http://127.0.0.1:9/"\nprofile = "{PROFILE}"',
        "fetch": "allow_private_addresses = true\nretries = 0\nconnect_timeout = 2",
        "database": f'url = "sqlite:///{tmp_path / "db.sqlite3"}"',
        "feeds": f'folder = "{tmp_path / "feeds"}"',
    }
    tables.update(sections)
    return extra + "".join(f"[{name}]\n{body}\n\n" for name, body in tables.items())


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "feedbot.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    return path


# --- the settings file ----------------------------------------------------------------

BAD_FILES: list[tuple[str, Callable[[Path], str | bytes], str]] = [
    (
        "typo-in-key",
        lambda t: settings_text(
            t, source=f'url = "http://127.0.0.1:9/"\nprofile = "{PROFILE}"\npoll_second = 5'
        ),
        "source.poll_second: unknown key (did you mean poll_seconds?)",
    ),
    (
        "typo-in-section",
        lambda t: settings_text(t, telgram='api_url = "http://127.0.0.1:9/bot"'),
        "[telgram]: unknown section (did you mean [telegram]?)",
    ),
    ("top-level-key", lambda t: settings_text(t, extra="poll_seconds = 5\n"), "poll_seconds"),
    (
        "infinite-seconds",
        lambda t: settings_text(t, fetch="allow_private_addresses = true\ndeadline = inf"),
        "fetch.deadline: inf is not a number",
    ),
    (
        "nan-seconds",
        lambda t: settings_text(t, fetch="allow_private_addresses = true\nread_timeout = nan"),
        "fetch.read_timeout: nan is not a number",
    ),
    (
        "float-entries",
        lambda t: settings_text(t, feeds=f'folder = "{t}"\nentries = 1e20'),
        "feeds.entries: 1e+20 is not a valid whole number",
    ),
    (
        "huge-entries",
        lambda t: settings_text(t, feeds=f'folder = "{t}"\nentries = 100000000000000000000'),
        "feeds.entries: 100000000000000000000 is out of range",
    ),
    (
        "not-utf8",
        lambda t: settings_text(t, feeds='title = "Caf\u00e9"').encode("latin-1"),
        "is not UTF-8 text",
    ),
    (
        "profile-is-a-folder",
        lambda t: settings_text(t, source=f'url = "http://127.0.0.1:9/"\nprofile = "{t}"'),
        "is a folder",
    ),
    (
        "database-url-garbage",
        lambda t: settings_text(t, database='url = "sqlite:garbage"'),
        "DATABASE_URL sqlite:garbage: not a database URL",
    ),
]


@pytest.mark.parametrize(("case", "text", "says"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_settings_file_is_one_line_and_exit_2(
    cli: Cli,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    case: str,
    text: Callable[[Path], str | bytes],
    says: str,
) -> None:
    r = cli("--config", str(write(tmp_path, text(tmp_path))), "poll")
    assert r.rc == 2, r.err
    assert says in r.one_error_line()
    assert r.out == ""


BAD_ENVIRONMENT = [
    ("huge-poll-seconds", {"FEEDBOT_POLL_SECONDS": "9" * 30}, "FEEDBOT_POLL_SECONDS"),
    ("inf-poll-seconds", {"FEEDBOT_POLL_SECONDS": "inf"}, "FEEDBOT_POLL_SECONDS"),
    ("sqlite-garbage", {"DATABASE_URL": "sqlite:garbage"}, "DATABASE_URL sqlite:garbage"),
    ("bad-port-in-url", {"DATABASE_URL": "postgresql://h:port/db"}, "not a database URL"),
]


@pytest.mark.parametrize(
    ("case", "env", "says"), BAD_ENVIRONMENT, ids=[c[0] for c in BAD_ENVIRONMENT]
)
def test_a_bad_environment_variable_is_one_line_and_exit_2(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
    case: str,
    env: dict[str, str],
    says: str,
) -> None:
    r = cli("--config", str(write(tmp_path, settings_text(tmp_path))), "feed", env=env)
    assert r.rc == 2, r.err
    assert says in r.one_error_line()


def test_every_key_of_the_shipped_settings_file_is_known() -> None:
    """The commented default file (every section, every key) loads as it is."""
    config = Path(__file__).resolve().parents[2] / "config" / "feedbot.toml"
    settings = load_settings(config, env={})
    assert settings.feeds.source.poll_seconds == 300


def test_a_key_set_by_its_environment_variable_is_still_known(tmp_path: Path) -> None:
    path = write(tmp_path, settings_text(tmp_path, http="port = 8080"))
    assert load_settings(path, env={"PORT": "9090"}).http.port == 9090


# --- the database -----------------------------------------------------------------------


def unreachable_postgresql() -> str:
    return f"postgresql://feedbot:{PASSWORD}@127.0.0.1:1/feedbot"


def test_an_unreachable_database_is_one_line_and_exit_1(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = write(tmp_path, settings_text(tmp_path))
    r = cli("--config", str(config), "counters", env={"DATABASE_URL": unreachable_postgresql()})
    assert r.rc == 1, r.err
    line = r.one_error_line()
    assert "DATABASE_URL postgresql://feedbot:***@127.0.0.1:1/feedbot" in line
    assert "cannot open the database" in line and "refused" in line.lower()
    assert PASSWORD not in r.err + r.out


def test_a_read_only_database_is_one_line_and_exit_1(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Opened read-only by the URL itself: root, who may write any file, is refused too.
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "ro.sqlite3"
    sa.create_engine(f"sqlite:///{db}").connect().close()
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    r = cli(
        "--config", str(write(tmp_path, settings_text(tmp_path))), "poll", env={"DATABASE_URL": url}
    )
    assert r.rc == 1, r.err
    line = r.one_error_line()
    assert "DATABASE_URL sqlite:///file:" in line and "readonly database" in line


def test_a_database_folder_that_cannot_be_made_is_one_line_and_exit_1(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a folder", "utf-8")
    url = f"sqlite:///{tmp_path / 'a-file' / 'db.sqlite3'}"
    r = cli(
        "--config", str(write(tmp_path, settings_text(tmp_path))), "poll", env={"DATABASE_URL": url}
    )
    assert r.rc == 1, r.err
    assert "a-file" in r.one_error_line()


# --- credentials in the source URL --------------------------------------------------------


def with_password(source: FakeSource, host: str = "127.0.0.1") -> str:
    return source.url.replace("127.0.0.1", f"reader:{PASSWORD}@{host}") + "/"


def everything_stored(url: str) -> str:
    """Every row of every table, as text."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            return "\n".join(
                repr(row) for table in meta.sorted_tables for row in conn.execute(table.select())
            )
    finally:
        engine.dispose()


def test_a_password_in_the_source_url_shows_nowhere(
    cli: Cli,  # noqa: F811
    make_config: Callable[..., Path],
    source: FakeSource,
    database_url: str,
    tmp_path: Path,
) -> None:
    config = make_config(with_password(source))
    polled = cli("--config", str(config), "--json", "poll")
    assert polled.rc == 0, polled.err
    ids = json.loads(polled.out)["new"]
    assert len(ids) == 11 and all(i.startswith(source.url + "/fnapr/") for i in ids)
    feed = cli("--config", str(config), "feed")
    checked = cli("--config", str(config), "check-config")
    assert checked.rc == 0, checked.err
    assert "reader:***@" + source.url.removeprefix("http://") in checked.out
    stored = everything_stored(database_url)
    assert "/fnapr/6940" in stored
    written = "".join(p.read_text("utf-8") for p in (tmp_path / "feeds").rglob("*") if p.is_file())
    for text in (polled.out, polled.err, feed.out, checked.out, checked.err, stored, written):
        assert PASSWORD not in text


async def test_healthz_the_home_page_and_poll_records_show_no_password(
    make_config: Callable[..., Path], source: FakeSource, database_url: str
) -> None:
    source.misbehave("/", "status", status=503)
    ctx = open_context(load_settings(make_config(with_password(source)), env={}))
    try:
        outcome = ctx.pipeline.poll()
        assert not outcome.ok
        async with TestClient(TestServer(build_web(ctx)[0].app())) as client:
            health = await (await client.get("/healthz")).json()
            home = await (await client.get("/")).text()
    finally:
        ctx.close()
    assert health["source"] == source.url.replace("://", "://reader:***@") + "/"
    assert health["last_poll"]["error"]
    assert PASSWORD not in json.dumps(health)
    assert PASSWORD not in home
    assert PASSWORD not in everything_stored(database_url)


def test_the_same_page_under_another_name_of_the_host_keeps_its_ids(
    make_config: Callable[..., Path], source: FakeSource
) -> None:
    """The source answers under an alias (a redirect to ``localhost``): the page's
    relative links still resolve on the configured host, so nothing is new."""
    source.conditional = False  # the page itself, not "304 not modified", every time
    ctx = open_context(load_settings(make_config(with_password(source)), env={}))
    try:
        first = ctx.pipeline.poll()
        assert first.changes is not None and len(first.changes.new) == 11
        alias = source.url.replace("127.0.0.1", "localhost") + "/"
        source.misbehave("/", "redirect", location=alias, times=1)
        again = ctx.pipeline.poll()
        assert again.ok and again.changes is not None
        assert again.changes.new == []
        assert {s.url for s in ctx.store.statements()} == {
            f"{source.url}/fnapr/{n}" for n in range(6931, 6942)
        }
    finally:
        ctx.close()


# --- the URL helpers --------------------------------------------------------------------


def test_url_helpers() -> None:
    url = "https://user:pa%40ss@Example.org:8443/x/?q=1#f"
    assert without_credentials(url) == "https://example.org:8443/x/?q=1#f"
    assert masked(url) == "https://user:***@example.org:8443/x/?q=1#f"
    assert masked("https://example.org/") == "https://example.org/"
    assert statement_id("http://u:p@h.test/fnapr/1#top", None, "t") == "http://h.test/fnapr/1"
    assert page_base("http://localhost:81/a/", "http://u:p@127.0.0.1:81/") == (
        "http://127.0.0.1:81/a/"
    )
    assert page_base("http://u:p@127.0.0.1:81/a/", "http://u:p@127.0.0.1:81/") == (
        "http://127.0.0.1:81/a/"
    )
    assert with_credentials_of("http://127.0.0.1:81/fnapr/1", "http://u:p@127.0.0.1:81/") == (
        "http://u:p@127.0.0.1:81/fnapr/1"
    )
    assert with_credentials_of("http://other.test/x", "http://u:p@127.0.0.1:81/") == (
        "http://other.test/x"
    )
    line = "GET http://u:hunter2@h.test/x failed; see postgresql://a:b@db/x"
    assert masked_in_text(line) == "GET http://u:***@h.test/x failed; see postgresql://a:***@db/x"


_userinfo = st.text(st.sampled_from("abcXYZ019-._~%!$&'()*+,;="), min_size=1, max_size=12)


@given(user=_userinfo, password=_userinfo, path=st.text(max_size=20))
def test_no_password_survives_the_helpers(user: str, password: str, path: str) -> None:
    url = f"https://{user}:{password}@host.test/{path}"
    assert "@" not in without_credentials(url).split("/")[2]
    assert masked(url).startswith(f"https://{user}:***@host.test/")
    assert f":{password}@" not in masked_in_text(f"see {url} now")


def test_the_token_is_redacted_in_every_form_the_variable_gives_it() -> None:
    token = "123456:short-test-token"
    secrets = token_secrets({"TELEGRAM_BOT_TOKEN": f"  {token}\n"})
    for text in (token, f"/bot{token}/getMe", "/bot123456%3Ashort-test-token/getMe"):
        assert "short-test-token" not in redact(text, secrets)
    assert redact("nothing secret", token_secrets({})) == "nothing secret"


def test_a_token_with_whitespace_around_it_never_reaches_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The variable as a careless paste leaves it; the bot uses it stripped, and
    libraries log it at DEBUG inside request URLs, plain and percent-encoded."""
    token = "123456:short-test-token"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("DEBUG", "text", token_secrets({"TELEGRAM_BOT_TOKEN": f" {token}\n"}))
        logging.getLogger("telegram.ext").debug("POST https://api.test/bot%s/getMe", token)
        logging.getLogger("httpx").warning("GET /bot%s/x", "123456%3Ashort-test-token")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert err.count("[REDACTED]") == 2 and "short-test-token" not in err
