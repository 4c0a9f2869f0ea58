"""One bad byte garbles one character, never the page; a page that would retitle most
known statements at once is held: nothing stored, published or pushed."""

from __future__ import annotations

import re

from feeds.errors import SuspiciousPage
from feeds.pipeline import Pipeline
from feeds.store import Store
from tests.conftest import FIXTURES
from tests.support.fake_source import FakeSource

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")


def feed_bytes(pipeline: Pipeline) -> dict[str, bytes]:
    folder = pipeline.config.publish.folder
    return {p.name: p.read_bytes() for p in folder.glob("*.*")}


def test_one_bad_byte_costs_one_character(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    titles = {s.id: s.title for s in store.statements(limit=50)}
    body = HOME.encode("utf-8")
    # A stray byte inside one title of a page that declares UTF-8.
    target = b"Comment by the Information and Press Department"
    assert target in body
    source.set_body("/", body.replace(target, target[:10] + b"\xff" + target[10:], 1))
    outcome = pipeline.poll()
    assert outcome.ok and outcome.changes is not None
    assert len(outcome.changes.edited) == 1
    (edited,) = outcome.changes.edited
    assert "\ufffd" in edited.title and edited.title.replace("\ufffd", "") == titles[edited.id]
    for s in store.statements(limit=50):
        if s.id != edited.id:
            assert s.title == titles[s.id]


def test_a_page_that_retitles_most_statements_is_held(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    before = {s.id: (s.title, s.summary) for s in store.statements(limit=50)}
    feeds = feed_bytes(pipeline)
    garbled = re.sub(
        r'(class="news-title"[^>]*>)([^<]+)<',
        lambda m: m.group(1) + "Ð\x9f" + m.group(2) + "<",
        HOME,
    )
    source.set_body("/", garbled)
    outcome = pipeline.poll()
    assert outcome.result == "failed"
    assert isinstance(outcome.error, SuspiciousPage)
    assert "held as suspicious" in str(outcome.error)
    assert {s.id: (s.title, s.summary) for s in store.statements(limit=50)} == before
    assert all(len(store.versions(i)) == 1 for i in before)
    assert feed_bytes(pipeline) == feeds
    assert store.recent_polls(1)[0].error_kind == "suspicious"
    source.set_body("/", HOME)
    assert pipeline.poll().ok  # the page as it was: polling goes on


def test_a_single_edit_is_not_suspicious(pipeline: Pipeline, source: FakeSource) -> None:
    pipeline.poll()
    source.set_body(
        "/", HOME.replace("Comment by the Information", "Comment (updated) by the Information", 1)
    )
    outcome = pipeline.poll()
    assert outcome.ok and outcome.changes is not None and len(outcome.changes.edited) == 1


def test_an_operator_can_accept_a_page_that_retitles_everything(
    pipeline: Pipeline, store: Store, source: FakeSource
) -> None:
    pipeline.poll()
    renamed = re.sub(r'(class="news-title"[^>]*>)([^<]+)<', r"\1Statement: \2<", HOME)
    source.set_body("/", renamed)
    assert pipeline.poll().result == "failed"
    outcome = pipeline.poll(accept_retitles=True)
    assert outcome.ok and outcome.changes is not None and len(outcome.changes.edited) >= 4
