"""Prometheus metrics of the source side (exposed by the HTTP server's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

POLLS = Counter("feedbot_polls_total", "Polls of the source by result", ["result"])
POLL_ERRORS = Counter("feedbot_poll_errors_total", "Failed polls by error kind", ["kind"])
FETCH_SECONDS = Histogram(
    "feedbot_fetch_seconds",
    "Time to fetch the source page",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
NEW_STATEMENTS = Counter("feedbot_new_statements_total", "Statements stored for the first time")
EDITED_STATEMENTS = Counter(
    "feedbot_edited_statements_total", "Statements whose title or lead changed"
)
ARTICLES = Counter("feedbot_articles_total", "Statement pages fetched for full text", ["result"])
STATEMENTS_STORED = Gauge("feedbot_statements_stored", "Statements in the store")
CONSECUTIVE_FAILURES = Gauge("feedbot_consecutive_failures", "Polls failed in a row")
FEEDS_WRITTEN = Counter(
    "feedbot_feed_files_written_total", "Feed files rewritten because they changed"
)
WEBSUB_PINGS = Counter(
    "feedbot_websub_pings_total",
    "WebSub publish pings by result (ok, http_error, timeout, unreachable, skipped)",
    ["result"],
)
PAGES_READ = Counter(
    "feedbot_pages_read_total",
    "Source pages read, by reader (selectors; text-layout: the profile no longer fits)",
    ["reader"],
)
FULL_TEXTS = Gauge(
    "feedbot_full_texts",
    "Statement pages whose full text is missing: pending, failing (retried), skipped (for good)",
    ["state"],
)
LAST_READER = Gauge(
    "feedbot_source_reader",
    "1 for the reader that read the source page at the last poll that read it",
    ["reader"],
)
