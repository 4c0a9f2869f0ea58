"""Operator alerts: one message when a problem starts, one when it ends; counter
anomalies reported once; all visible on /healthz."""

from __future__ import annotations

import datetime as dt

from feedbot.alerts import AlertWatch
from feedbot.app import Context, open_context
from feedbot.settings import AlertSettings, Settings
from feeds.pipeline import Pipeline
from tests.conftest import FIXTURES
from tests.support.fake_source import FakeSource

HOME = (FIXTURES / "site" / "index.html").read_text("utf-8")
ADMINS = (900, 901)
NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)


def watch(ctx: Context) -> AlertWatch:
    return AlertWatch(ctx.store, ctx.bot_store, ADMINS, AlertSettings(failures=3, drop_ratio=0.5))


def alert_kinds(ctx: Context) -> list[str]:
    return [kind for _at, kind, _text in reversed(ctx.bot_store.recent_alerts(50))]


def test_source_down_and_recovered_once_each(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    ctx = open_context(settings)
    w = watch(ctx)
    assert w.after_poll(pipeline.poll(), NOW) == []
    source.misbehave("/", "status", status=503)
    sent = [w.after_poll(pipeline.poll(), NOW) for _ in range(5)]
    assert [len(s) for s in sent] == [0, 0, 1, 0, 0]
    assert "failed 3 polls in a row" in sent[2][0]
    source.clear()
    back = [w.after_poll(pipeline.poll(), NOW) for _ in range(3)]
    assert [len(s) for s in back] == [1, 0, 0]
    assert alert_kinds(ctx) == ["source_down", "source_down_recovered"]
    # Each alert goes to every operator chat, through the outbox.
    assert ctx.bot_store.outbox_counts() == {"pending": 4}
    ctx.close()


def test_a_page_the_profile_cannot_read_alerts_at_once(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    ctx = open_context(settings)
    w = watch(ctx)
    w.after_poll(pipeline.poll(), NOW)
    source.set_body("/", "<html><body><div class='new-design'>Welcome</div></body></html>")
    first = w.after_poll(pipeline.poll(), NOW)
    assert len(first) == 1 and "finds no statements" in first[0]
    assert w.after_poll(pipeline.poll(), NOW) == []
    source.set_body("/", HOME)
    assert any("reads the page again" in t for t in w.after_poll(pipeline.poll(), NOW))
    ctx.close()


def test_far_fewer_statements_than_usual(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    ctx = open_context(settings)
    w = watch(ctx)
    source.conditional = False  # every poll reads the page: a count each time
    for _ in range(4):
        assert w.after_poll(pipeline.poll(), NOW) == []
    start = HOME.index('<li class="news-item">')
    end = HOME.rindex("</li>") + len("</li>")
    source.set_body("/", HOME[:start] + HOME[end:])  # only the featured statement is left
    fewer = w.after_poll(pipeline.poll(), NOW)
    assert len(fewer) == 1 and "finds 1 statements on the page, usually 11" in fewer[0]
    assert w.after_poll(pipeline.poll(), NOW) == []
    ctx.close()


def test_counter_anomalies_are_reported_once(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    ctx = open_context(settings)
    w = watch(ctx)
    w.after_poll(pipeline.poll(), NOW)  # the first fill: nothing to compare with
    jumped = HOME.replace(
        '<span class="counter-days">855</span>', '<span class="counter-days">900</span>'
    )
    jumped = jumped.replace(
        "</ul>\n  </header>",
        '<li class="counter"><span class="counter-days">3</span> days have passed since a new event</li>'
        "</ul>\n  </header>",
    )
    source.set_body("/", jumped)
    texts = w.after_poll(pipeline.poll(), NOW)
    assert any(
        "jumped" in t and "Salisbury" in t and "says 900" in t and "makes 855" in t for t in texts
    )
    assert any("a new counter on the page: 3 days since a new event" in t for t in texts)
    assert w.after_poll(pipeline.poll(), NOW) == []  # the same page again: nothing new
    gone = jumped.replace(
        '<li class="counter"><span class="counter-days">847</span>',
        '<li class="other"><span>847</span>',
    )
    source.set_body("/", gone)
    texts = w.after_poll(pipeline.poll(), NOW)
    assert len(texts) == 1 and "Glushkov" in texts[0] and "no longer on the page" in texts[0]
    # The counters now computed follow the page's own start dates.
    days = {c.subject: c.days_on(dt.date(2020, 7, 6)) for c in ctx.store.counters()}
    assert days["the Salisbury incident"] == 900
    ctx.close()


def test_a_source_read_by_its_text_layout_alerts_once_and_recovers_once(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    ctx = open_context(settings)
    w = watch(ctx)
    w.after_poll(pipeline.poll(), NOW)
    # The site moves to a markup the profile's selectors do not know.
    source.set_body("/", (FIXTURES / "pages" / "unknown-cms.html").read_text("utf-8"))
    fallen = pipeline.poll()
    assert fallen.ok and fallen.page is not None and fallen.page.reader == "text-layout"
    assert "read by text-layout" in fallen.summary()
    first = w.after_poll(fallen, NOW)
    assert len(first) == 1 and "text layout" in first[0]
    source.set_body("/", (FIXTURES / "pages" / "unknown-table.html").read_text("utf-8"))
    assert w.after_poll(pipeline.poll(), NOW) == []  # still falling back: no second alert
    assert ctx.store.recent_polls(1)[0].reader == "text-layout"
    source.set_body("/", HOME)
    back = w.after_poll(pipeline.poll(), NOW)
    assert any("selectors read the page again" in t for t in back)
    assert alert_kinds(ctx) == ["fallback", "fallback_recovered"]
    ctx.close()


def test_a_page_held_as_suspicious_alerts_the_operators_once(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    ctx = open_context(settings)
    w = watch(ctx)
    w.after_poll(pipeline.poll(), NOW)
    garbled = HOME
    for n in range(6931, 6941):
        garbled = garbled.replace(f'href="/fnapr/{n}">', f'href="/fnapr/{n}">Ð\x9f', 1)
    source.set_body("/", garbled)
    first = w.after_poll(pipeline.poll(), NOW)
    assert len(first) == 1 and "held back" in first[0]
    assert w.after_poll(pipeline.poll(), NOW) == []
    source.set_body("/", HOME)
    assert any("reads as usual again" in t for t in w.after_poll(pipeline.poll(), NOW))
    ctx.close()


def test_an_alert_raised_before_a_restart_ends_once_after_it(
    settings: Settings, pipeline: Pipeline, source: FakeSource
) -> None:
    """The service stops while the source is down; the next one, with a new watch,
    sends the recovery (once) when the page answers again, unchanged (304)."""
    ctx = open_context(settings)
    before = watch(ctx)
    before.after_poll(pipeline.poll(), NOW)
    source.misbehave("/", "status", status=503)
    for _ in range(3):
        before.after_poll(pipeline.poll(), NOW)
    source.clear()
    after = watch(ctx)  # the restarted service's
    unchanged = pipeline.poll()
    assert unchanged.result == "not_modified"
    assert not after.idle_after(unchanged)  # it has not looked yet: it must look
    assert len(after.after_poll(unchanged, NOW)) == 1
    again = pipeline.poll()
    assert after.idle_after(again)  # nothing on any more: the next polls need nothing
    assert after.after_poll(again, NOW) == []
    assert alert_kinds(ctx) == ["source_down", "source_down_recovered"]
    ctx.close()
