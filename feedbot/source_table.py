"""`feedbot sources`: every source with its settings and its state, as the store
knows it (no request is made)."""

from __future__ import annotations

from typing import Any

from feedbot.app import Context
from feeds.urls import masked


def source_rows(ctx: Context) -> list[dict[str, Any]]:
    """One row per source, the primary first: settings, then the last poll's result
    and time, failed polls in a row, statements stored."""
    rows = []
    for source_id, pipeline in ctx.pipelines.items():
        source, store = pipeline.source, pipeline.store
        last = store.last_poll()
        state = store.source_state(source.url)
        rows.append(
            {
                "id": source_id,
                "name": source.name,
                "kind": source.kind,
                "url": masked(source.url),
                "poll_seconds": source.poll_seconds,
                "default": source.default,
                "counters": source.counters,
                "last_poll": last.result if last else None,
                "last_poll_at": (last.finished_at.isoformat(timespec="seconds") if last else None),
                "failures_in_a_row": state.consecutive_failures,
                "statements": store.count_statements(),
            }
        )
    return rows


COLUMNS = (
    ("id", "id"),
    ("kind", "kind"),
    ("poll", "poll_seconds"),
    ("default", "default"),
    ("counters", "counters"),
    ("last poll", "last_poll"),
    ("at", "last_poll_at"),
    ("failures", "failures_in_a_row"),
    ("statements", "statements"),
    ("name", "name"),
    ("url", "url"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_sources(rows: list[dict[str, Any]]) -> None:
    """A plain table, one source a line, columns aligned (the last two left loose)."""
    table = [[title for title, _ in COLUMNS]] + [
        [_cell(row[key]) for _, key in COLUMNS] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        print("  ".join(cells).rstrip())
