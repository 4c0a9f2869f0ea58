"""The ``feedbot`` command line (also ``python -m feedbot``).

Exit codes: 0 done; 1 the work failed (source down, bad page); 2 bad usage or
bad configuration — always with one clear line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from feedbot.app import Context, open_context
from feedbot.feed_check import AS_PAGE_HINT
from feedbot.logs import configure_logging, redact, token_secrets
from feedbot.poller import poll_and_queue
from feedbot.settings import Settings, config_path, load_settings
from feedbot.source_table import print_sources, source_rows
from feeds import render
from feeds.clock import london_today, utcnow
from feeds.config import SourceSettings
from feeds.errors import ConfigError, FeedbotError, NotAFeed, SourceError
from feeds.fetch_factory import make_fetcher
from feeds.model import Page, page_json
from feeds.parse import explain_page, parse_page
from feeds.urls import masked, masked_in_text

log = logging.getLogger("feedbot")


class UsageError(FeedbotError):
    kind = "usage"


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def read_target(
    target: str, settings: Settings, base_url: str | None = None, source_url: str | None = None
) -> tuple[bytes, str, str | None]:
    """A page to read, from a URL (fetched as the source is) or a file: (body, base URL,
    content type). A file's links resolve against ``base_url``, else the source URL."""
    if target.startswith(("http://", "https://")):
        fetcher = make_fetcher(settings.feeds)
        try:
            response = fetcher.get(target)
        finally:
            fetcher.close()
        return response.body, response.url, response.content_type
    try:
        body = Path(target).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {target}: {exc.strerror}") from None
    return body, base_url or source_url or settings.feeds.source.url, None


def read_as_source(
    source: SourceSettings, body: bytes, base: str, ctype: str | None
) -> tuple[Page, list[str]]:
    """A page read as this source reads it (a feed as a feed, a page by its profile),
    and how it was read."""
    if source.kind == "feed":
        from feeds.feedpage import parse_feed

        page = parse_feed(body, base, ctype)
        return page, list(page.notes)
    return explain_page(body, base, source.profile, ctype)


def cmd_parse(args: argparse.Namespace, settings: Settings) -> int:
    source = settings.feeds.source_by_id(args.source)
    body, base, ctype = read_target(args.target, settings, source_url=source.url)
    page, notes = read_as_source(source, body, base, ctype)
    if args.explain:
        for note in notes:
            print(f"explain: {note}", file=sys.stderr)
    _print_json(page_json(page))
    return 0


def cmd_profile_suggest(args: argparse.Namespace, settings: Settings) -> int:
    """A commented source profile for a page feedbot has never seen (stdout), and
    what that profile reads (stderr, or all of it as JSON)."""
    from feeds.suggest import suggest_profile

    body, base, ctype = read_target(args.target, settings, args.base_url)
    suggestion = suggest_profile(body, base, ctype)
    if args.json:
        _print_json(suggestion.as_json())
    else:
        sys.stdout.write(suggestion.toml)
        for line in suggestion.summary_lines():
            print(line, file=sys.stderr)
    return 0


def cmd_poll(args: argparse.Namespace, ctx: Context) -> int:
    """One poll of the chosen source, or of every source in turn."""
    several = args.source is None and len(ctx.pipelines) > 1
    chosen = list(ctx.pipelines) if several else [ctx.pipeline_for(args.source).source.id]
    reports: dict[str, dict[str, Any]] = {}
    ok = True
    for source_id in chosen:
        report, polled_ok = _poll_one(args, ctx, source_id, named=several)
        reports[source_id] = report
        ok = ok and polled_ok
    if args.json:
        _print_json(reports if several else reports[chosen[0]])
    return 0 if ok else 1


def _poll_one(
    args: argparse.Namespace, ctx: Context, source_id: str, named: bool
) -> tuple[dict[str, Any], bool]:
    pipeline = ctx.pipelines[source_id]
    outcome = poll_and_queue(
        pipeline,
        ctx.bot_store,
        ctx.settings.telegram.follow_edits,
        utcnow(),
        accept_retitles=args.accept_retitles,
    )
    # The service leaves statement pages to its full-text job; a one-shot poll (cron)
    # reads the due ones now, within the per-poll cap.
    full_texts = pipeline.fetch_full_texts(ctx.settings.feeds.fetch.articles_per_poll)
    changes = outcome.changes
    report = {
        "result": outcome.result,
        "error": str(outcome.error) if outcome.error else None,
        "new": [s.id for s in changes.new] if changes else [],
        "edited": [s.id for s in changes.edited] if changes else [],
        "first_fill": bool(changes and changes.first_fill),
        "full_texts_fetched": full_texts,
        "feeds_written": outcome.feeds_written,
    }
    prefix = f"{source_id}: " if named else ""
    if not args.json:
        fetched = f"; {full_texts} full texts fetched" if full_texts else ""
        print(prefix + outcome.summary() + fetched)
        if outcome.changes:
            for s in outcome.changes.new:
                print(f"  new: {s.published or '----------'}  {s.title}")
            for s in outcome.changes.edited:
                print(f"  edited: {s.title}")
    if outcome.error:
        print(f"feedbot: {prefix}{outcome.error}", file=sys.stderr)
    return report, outcome.ok


def cmd_feed(args: argparse.Namespace, ctx: Context) -> int:
    # Rendered by the publisher itself, so the bytes are those the HTTP server and
    # static servers hand out (archive links included).
    documents = ctx.pipeline.builder.current(london_today())
    (body,) = (d.body for d in documents if d.name == f"statements.{args.format}")
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return 0


def cmd_counters(args: argparse.Namespace, ctx: Context) -> int:
    day = args.date or london_today()
    counters = ctx.store.counters()
    if not counters:
        raise SourceError("no counters stored yet: run `feedbot poll` first")
    if args.json:
        _print_json(
            [
                {
                    "days": c.days_on(day),
                    "subject": c.subject,
                    "note": c.note,
                    "since": c.since.isoformat(),
                    "date": day.isoformat(),
                }
                for c in counters
            ]
        )
    else:
        for c in counters:
            print(render.counter_line(c, day))
    return 0


def cmd_service(args: argparse.Namespace, ctx: Context) -> int:
    from feedbot.feed_check import refuse_html_feeds
    from feedbot.service import ROLES, serve_forever

    role = ROLES[args.command]
    if role.worker:  # the roles that poll check their feed sources first
        refuse_html_feeds(list(ctx.pipelines.values()))
    return serve_forever(ctx, role)


def cmd_backfill(args: argparse.Namespace, ctx: Context) -> int:
    import dataclasses

    from tqdm import tqdm

    from feeds.backfill import BackfillResult, backfill

    pipeline = ctx.pipeline_for(args.source)
    source = pipeline.source
    if source.kind == "feed":
        raise ConfigError(f"--source {source.id}: a feed source has no archive lists to walk")
    # The walk reads the chosen source's profile and URL, and stores as that source.
    config = dataclasses.replace(ctx.settings.feeds, source=source)

    with tqdm(desc="archive", unit=" pages", file=sys.stderr, disable=args.json or None) as bar:

        def progress(result: BackfillResult, _url: str) -> None:
            bar.update(1)
            bar.set_postfix(statements=result.seen, new=result.new)

        result = backfill(
            config,
            pipeline.store,
            pipeline.fetcher,
            args.max_pages,
            args.since,
            progress,
            lists=args.list,
            restart=args.restart,
        )
    if result.new:
        pipeline.publish()
    summary = {
        "pages": result.pages,
        "pages_skipped": result.skipped,
        "statements": result.seen,
        "new": result.new,
        "finished": result.finished,
        "bounded": result.bounded,
        "lists": result.lists,
        "error": str(result.error) if result.error else None,
    }
    if args.json:
        _print_json(summary)
    else:
        print(
            f"{result.pages} archive pages read"
            + (f" ({result.skipped} already walked)" if result.skipped else "")
            + f"; {result.seen} statements, {result.new} new"
            + (
                "; stopped at --max-pages — run again to go on"
                if result.bounded
                else ("" if result.finished else "; interrupted — run again to resume")
            )
        )
    if result.error:
        print(f"feedbot: {result.error}", file=sys.stderr)
        return 1
    return 0


def cmd_subscribers(args: argparse.Namespace, ctx: Context) -> int:
    subs = ctx.bot_store.subscribers(active_only=not args.all)
    sources = ctx.settings.feeds.sources
    follows = ctx.bot_store.all_follows()
    rows: list[dict[str, Any]] = [
        {
            "chat_id": s.chat_id,
            "type": s.chat_type,
            "title": s.title,
            "active": s.active,
            "subscribed_at": s.subscribed_at.isoformat(timespec="seconds"),
            "counters": s.counters_time if s.counters_enabled else "off",
            "language": s.language,
            "origin": s.origin,
            # The ids of the sources the chat follows, in the settings' order.
            "sources": [src.id for src in sources if src.key in follows.get(s.chat_id, set())],
        }
        for s in subs
    ]
    if args.csv:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["chat_id"])
        writer.writeheader()
        writer.writerows({**r, "sources": " ".join(r["sources"])} for r in rows)
        return 0
    counts = ctx.bot_store.subscriber_counts()
    if args.json:
        _print_json({"count": counts, "subscribers": rows})
        return 0
    several = len(sources) > 1
    for r in rows:
        state = "" if r["active"] else "  (unsubscribed)"
        following = f"  follows {','.join(r['sources']) or '-'}" if several else ""
        print(
            f"{r['chat_id']:>16}  {r['type']:<10}  {r['subscribed_at']}  "
            f"counters {r['counters']:<5}  {r['title'] or ''}{state}{following}"
        )
    by_type = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "total")
    print(f"{counts['total']} subscribed" + (f" ({by_type})" if by_type else ""))
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    from feeds.fetch import Fetcher

    config = settings.feeds
    chosen = [config.source_by_id(args.source)] if args.source else list(config.sources)
    effective = _masked_urls(_plain(settings))
    effective["telegram"]["token"] = "set (hidden)" if settings.telegram.token else None
    effective["feeds"]["database_url"] = mask_password(settings.feeds.database_url)
    print(json.dumps(effective, indent=2, default=str, ensure_ascii=False))
    named = args.source is not None or len(config.sources) > 1
    fetcher = Fetcher(config.fetch)
    try:
        for source in chosen:
            _check_source(fetcher, source, named)
    finally:
        fetcher.close()
    return 0


def _check_source(fetcher: Any, source: SourceSettings, named: bool) -> None:
    """Fetch the source once and say what its reader finds; a failure is one line
    naming the source (where there are several), a feed that answers HTML exit 2."""
    where = f"source {source.id!r}: " if named else ""
    try:
        response = fetcher.get(source.url)
        try:
            if source.kind == "feed":
                page, _notes = read_as_source(
                    source, response.body, response.url, response.content_type
                )
            else:
                page = parse_page(
                    response.body, response.url, source.profile, response.content_type
                )
        except NotAFeed as exc:
            raise ConfigError(f"{masked_in_text(str(exc))} {AS_PAGE_HINT}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None
    except SourceError as exc:
        if not where:
            raise
        raise SourceError(f"{where}{exc}") from None
    if source.kind == "feed":
        print(
            f"{where or 'source '}OK: {masked(response.url)} answered in "
            f"{response.elapsed:.2f}s; the feed holds {len(page.entries)} entries"
        )
        return
    print(
        f"{where or 'source '}OK: {masked(response.url)} answered in {response.elapsed:.2f}s; "
        f"profile {source.profile.name!r} finds {len(page.entries)} statements and "
        f"{len(page.counters)} counters"
    )


def cmd_sources(args: argparse.Namespace, ctx: Context) -> int:
    rows = source_rows(ctx)
    if args.json:
        _print_json(rows)
    else:
        print_sources(rows)
    return 0


def cmd_migrate_db(args: argparse.Namespace, ctx: Context) -> int:
    from feedbot.dbcopy import copy_database

    report = copy_database(ctx.store.engine, args.to)
    if args.json:
        _print_json([r.__dict__ for r in report])
    else:
        for r in report:
            state = "ok" if r.verified else "MISMATCH"
            print(f"{r.name:<20} {r.rows:>8} rows  sha256 {r.checksum[:16]}  {state}")
    if not all(r.verified for r in report):
        print("feedbot: the copy differs from the source (see above)", file=sys.stderr)
        return 1
    print(f"copied to {mask_password(args.to)}: every table verified by count and checksum")
    return 0


def _plain(value: Any) -> Any:
    """Settings as JSON-ready data; a source profile is shown by its name."""
    import dataclasses

    from feeds.profile import SourceProfile

    if isinstance(value, SourceProfile):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _masked_urls(value: Any) -> Any:
    """Settings data with the password of every ``user:password@`` URL masked."""
    if isinstance(value, dict):
        return {k: _masked_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_urls(v) for v in value]
    return masked(value) if isinstance(value, str) else value


def mask_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable)"


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        # argparse prints the whole usage; every failure here is one clear line.
        self.exit(2, f"feedbot: {message} (see feedbot --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="feedbot",
        description="Turns a page of official statements into Atom feeds and Telegram messages.",
    )
    parser.add_argument(
        "--config", help="settings file (else $FEEDBOT_CONFIG, else config/feedbot.toml)"
    )
    parser.add_argument("--json", action="store_true", help="print data as JSON")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("run", help="the service: polling, Telegram bot, HTTP server")
    sub.add_parser("sources", help="list the sources with their state")
    p = sub.add_parser("poll", help="one poll cycle now; prints what changed")
    _source_option(p, "poll this source only (default: every source)")
    p.add_argument(
        "--accept-retitles",
        action="store_true",
        help="store a page that retitles most statements at once (held as suspicious otherwise)",
    )
    p = sub.add_parser("parse", help="read one page with the source profile and print it as JSON")
    p.add_argument("target", metavar="PATH_OR_URL")
    _source_option(p, "read it as this source does (default: the first source)")
    p.add_argument(
        "--explain", action="store_true", help="say on stderr how the page was read, and why"
    )
    p = sub.add_parser("profile", help="source profiles: suggest one for a new page")
    profile_sub = p.add_subparsers(dest="profile_command", required=True, parser_class=_Parser)
    p = profile_sub.add_parser(
        "suggest", help="print a commented source profile for a page feedbot has never seen"
    )
    p.add_argument("target", metavar="URL_OR_FILE")
    p.add_argument("--base-url", metavar="URL", help="the address a saved FILE came from")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p = sub.add_parser("feed", help="print the current feed")
    p.add_argument("--format", choices=["atom", "rss", "json"], default="atom")
    p = sub.add_parser("counters", help="print the counters as of a day (default today, London)")
    p.add_argument("--date", type=_date, metavar="YYYY-MM-DD")
    sub.add_parser("serve", help="the HTTP server alone")
    sub.add_parser(
        "web", help="the HTTP server alone, feeds from the database (scale-out web tier)"
    )
    sub.add_parser("worker", help="polling, daily counters and the bot, without HTTP (scale-out)")
    p = sub.add_parser("backfill", help="walk the source's archive pages and store every statement")
    _source_option(p, "walk this source's archive (default: the first source)")
    p.add_argument("--max-pages", type=int, metavar="N", help="read at most N archive pages")
    p.add_argument(
        "--since", type=_date, metavar="YYYY-MM-DD", help="stop at statements older than this"
    )
    p.add_argument(
        "--list",
        action="append",
        metavar="NAME",
        help="archive list to walk (the profile's [archive.lists], or 'all'); repeatable",
    )
    p.add_argument(
        "--restart", action="store_true", help="forget an interrupted walk and start again"
    )
    p = sub.add_parser("subscribers", help="list and count subscribers")
    p.add_argument("--all", action="store_true", help="include chats that unsubscribed")
    p.add_argument("--csv", action="store_true", help="export as CSV")
    p = sub.add_parser(
        "check-config", help="print the effective settings and check every source once"
    )
    _source_option(p, "check this source only")
    p = sub.add_parser("migrate-db", help="copy this database into another (e.g. PostgreSQL)")
    p.add_argument("--to", required=True, metavar="DATABASE_URL", help="the empty target database")
    for name in sub.choices:
        sub.choices[name].add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return parser


def _source_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--source", metavar="ID", help=help)


COMMANDS_WITH_STORE: dict[str, Callable[[argparse.Namespace, Context], int]] = {
    "poll": cmd_poll,
    "sources": cmd_sources,
    "feed": cmd_feed,
    "counters": cmd_counters,
    "serve": cmd_service,
    "run": cmd_service,
    "web": cmd_service,
    "worker": cmd_service,
    "backfill": cmd_backfill,
    "subscribers": cmd_subscribers,
    "migrate-db": cmd_migrate_db,
}


def main(argv: Sequence[str] | None = None) -> int:
    # python-telegram-bot 22 reports durations (retry_after) as timedelta only when
    # asked to, and warns on every RetryAfter otherwise.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    args = build_parser().parse_args(argv)
    secrets = token_secrets(os.environ)
    try:
        settings = load_settings(config_path(args.config, os.environ))
        # Unless a level is set, a one-shot command only logs errors: it reports its
        # own outcome, and the service's warnings would only repeat it.
        level = settings.log.level or (
            "INFO" if args.command in ("run", "serve", "web", "worker") else "ERROR"
        )
        configure_logging(level, settings.log.format, secrets)
        if args.command == "parse":
            return cmd_parse(args, settings)
        if args.command == "profile":
            return cmd_profile_suggest(args, settings)
        if args.command == "check-config":
            return cmd_check_config(args, settings)
        ctx = open_context(settings)
        try:
            return COMMANDS_WITH_STORE[args.command](args, ctx)
        finally:
            ctx.close()
    except (ConfigError, UsageError) as exc:
        return _fail(str(exc), 2, secrets)
    except FeedbotError as exc:
        return _fail(str(exc), 1, secrets)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or folder the work needs: feeds folder, data/
        log.debug("stopped by an OS error", exc_info=True)
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", 1, secrets)
    except Exception as exc:
        # A bug, not a user's mistake: still one line; the traceback is a log level away.
        log.debug("internal error", exc_info=True)
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} "
            "(FEEDBOT_LOG_LEVEL=DEBUG shows the traceback)",
            1,
            secrets,
        )


def _fail(message: str, code: int, secrets: tuple[str, ...]) -> int:
    """The one line on stderr every failed command ends with (README: exit codes)."""
    # Redacted before it is shortened, so no part of a secret survives a cut.
    line = " ".join(redact(f"feedbot: {message}", secrets).split())
    if len(line) > 500:
        line = line[:497] + "..."
    print(line, file=sys.stderr)
    return code
