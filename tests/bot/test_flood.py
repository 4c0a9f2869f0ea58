"""A flood of new statements (a backlog published at once) reaches each chat as one
summary, queued as one row per chat — never thousands of messages."""

from __future__ import annotations

from tests.support.harness import HOME, Harness, drain, subscribe


def page_with_new(n: int) -> str:
    items = "".join(
        f'<li class="news-item"><span class="news-date">07.07.2020</span> - '
        f'<a class="news-title" href="/fnapr/{8000 + i}">Backlog statement {i}</a>'
        f'<p class="news-lead">Lead {i}.</p></li>'
        for i in range(n)
    )
    return HOME.replace('<ul class="news-list">', '<ul class="news-list">' + items, 1)


async def test_a_flood_becomes_one_summary_per_chat(harness: Harness) -> None:
    h, tg = harness, harness.tg
    subscribe(h.ctx.bot_store, [5101, 5102, 5103])
    h.source.set_body("/", page_with_new(60))
    outcome = await h.poll()
    assert outcome.changes is not None and len(outcome.changes.new) == 60
    assert h.ctx.bot_store.outbox_counts() == {"pending": 3}  # one row a chat
    await drain(h.sender())
    for chat in (5101, 5102, 5103):
        (message,) = tg.sent(chat)
        assert "60 new statements" in message["text"]
        assert "Backlog statement 0<" in message["text"]  # the page's first: the newest
        assert "30 more" in message["text"]


async def test_a_few_new_statements_still_arrive_one_by_one(harness: Harness) -> None:
    h, tg = harness, harness.tg
    subscribe(h.ctx.bot_store, [5201])
    h.source.set_body("/", page_with_new(3))
    await h.poll()
    await drain(h.sender())
    assert len(tg.sent(5201)) >= 1
    assert h.ctx.bot_store.outbox_counts().get("sent", 0) == 3
