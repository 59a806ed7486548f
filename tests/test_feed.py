"""The event feed wakes followers on this process's commits and on other processes' commits."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agent.clock import FakeClock
from agent.queue.catalogue import Catalogue
from agent.store.db import Database
from agent.store.feed import EventFeed
from tests.conftest import make_queue


async def test_follow_sees_backlog_then_new_commits(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock)
    q.take("khai-sinh")
    feed = EventFeed(db, poll_interval=0.05)
    stream = feed.follow(0)
    first = await asyncio.wait_for(anext(stream), 5)
    assert first.seq == 1
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert not pending.done()
    q.take("khai-sinh")  # an in-process commit wakes the follower without polling
    second = await asyncio.wait_for(pending, 5)
    assert second.seq == 2 and second.data["number"] == "A002"
    await stream.aclose()
    feed.close()


async def test_other_process_commit_is_noticed(db: Database, catalogue: Catalogue, clock: FakeClock,
                                               tmp_path: Path) -> None:
    feed = EventFeed(db, poll_interval=0.05)
    stop = asyncio.Event()
    poller = asyncio.create_task(feed.poll(stop))
    other = Database(db.path).open()  # a second connection stands for another process
    stream = feed.follow(0)
    pending = asyncio.ensure_future(anext(stream))
    make_queue(other, catalogue, clock).take("ket-hon")
    got = await asyncio.wait_for(pending, 5)
    assert got.type == "ticket.issued" and got.data["service"] == "ket-hon"
    stop.set()
    await poller
    with contextlib.suppress(StopAsyncIteration):
        await stream.aclose()
    other.close()
    feed.close()
