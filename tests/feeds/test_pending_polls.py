"""Unchanged polls' records wait in memory and reach the database together: what
another process reads, what a failed write keeps, and what closing writes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from feeds.config import FeedsConfig
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.support.fake_source import FakeSource


@contextmanager
def refusing_poll_records(store: Store) -> Iterator[None]:
    """The database refuses every new poll record (a full disk, say) for a while."""
    with store.engine.begin() as c:
        if store.engine.dialect.name == "sqlite":
            c.exec_driver_sql(
                "CREATE TRIGGER refuse_polls BEFORE INSERT ON polls"
                " BEGIN SELECT RAISE(ABORT, 'no room for poll records'); END"
            )
        else:
            c.exec_driver_sql(
                "CREATE FUNCTION refuse_polls() RETURNS trigger AS $$ BEGIN"
                " RAISE EXCEPTION 'no room for poll records'; END $$ LANGUAGE plpgsql"
            )
            c.exec_driver_sql(
                "CREATE TRIGGER refuse_polls BEFORE INSERT ON polls"
                " FOR EACH ROW EXECUTE FUNCTION refuse_polls()"
            )
    try:
        yield
    finally:
        with store.engine.begin() as c:
            on_polls = "" if store.engine.dialect.name == "sqlite" else " ON polls"
            c.exec_driver_sql(f"DROP TRIGGER refuse_polls{on_polls}")


def test_unchanged_polls_wait_then_reach_the_database_whole(
    pipeline: Pipeline, store: Store, settings: FeedsConfig, source: FakeSource
) -> None:
    url = settings.source.url
    elsewhere = Store(settings.database_url)  # another process's view of the database
    try:
        assert pipeline.poll().result == "ok"
        stored = elsewhere.source_state(url).last_success_at
        assert pipeline.poll().result == "not_modified"
        # Not written yet: another process still sees the first poll alone...
        assert [p.result for p in elsewhere.recent_polls()] == ["ok"]
        # ...while this process reads what it wrote.
        assert [p.result for p in store.recent_polls()] == ["not_modified", "ok"]
        latest = store.source_state(url).last_success_at
        assert stored is not None and latest is not None and latest > stored
        assert elsewhere.source_state(url).last_success_at == latest

        assert pipeline.poll().result == "not_modified"
        with refusing_poll_records(store):
            try:
                store.write_pending()
            except sa.exc.DBAPIError as exc:
                assert "no room for poll records" in str(exc)
            else:
                raise AssertionError("the write should have failed")
            assert len(elsewhere.recent_polls()) == 2  # nothing half written
        assert store.write_pending()  # the refused record waited: written now
        assert [p.result for p in elsewhere.recent_polls()] == ["not_modified"] * 2 + ["ok"]

        # A poll that fails after unchanged ones lands after them.
        assert pipeline.poll().result == "not_modified"
        source.misbehave("/", "status", status=500)
        assert pipeline.poll().result == "failed"
        assert elsewhere.source_state(url).consecutive_failures == 1
        assert [p.result for p in elsewhere.recent_polls(2)] == ["failed", "not_modified"]
    finally:
        elsewhere.close()


def test_closing_the_store_writes_what_waits(
    pipeline: Pipeline, store: Store, settings: FeedsConfig
) -> None:
    """`feedbot poll` polls once and exits: its unchanged poll is on record."""
    pipeline.poll()
    assert pipeline.poll().result == "not_modified"
    store.close()
    elsewhere = Store(settings.database_url)
    try:
        assert [p.result for p in elsewhere.recent_polls()] == ["not_modified", "ok"]
    finally:
        elsewhere.close()


def test_a_read_inside_a_writing_transaction_does_not_wait_for_it(
    pipeline: Pipeline, store: Store, settings: FeedsConfig
) -> None:
    """Unchanged polls waiting are not written by a read made inside a transaction
    that is writing (on a second connection that would wait for the first: SQLite's
    write lock, PostgreSQL's row lock)."""
    url = settings.source.url
    pipeline.poll()
    state = store.source_state(url)
    read: list[int] = []

    def write_then_read() -> None:
        with store.begin() as conn:
            store.save_source_state(state, conn)  # this transaction writes the row
            assert pipeline.poll().result == "not_modified"  # another record waits
            read.append(len(store.recent_polls()))  # no conn: a read of its own

    worker = threading.Thread(target=write_then_read, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the read waited for the transaction around it"
    assert read == [1]  # the waiting record was not written by the read
    assert len(store.recent_polls()) == 2  # it is now


def test_a_refused_write_at_exit_is_one_warning_not_a_crash(
    pipeline: Pipeline, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.poll()
    assert pipeline.poll().result == "not_modified"
    with refusing_poll_records(store), caplog.at_level(logging.WARNING):
        store.close()  # no exception: the process ends as it would have
    assert "unchanged polls' records not written at exit" in caplog.text
    assert "no room for poll records" in caplog.text
