"""Every lifecycle path of a ticket, on a real SQLite file, with an injected clock."""

from __future__ import annotations

import json

import pytest

from agent.clock import FakeClock
from agent.errors import InvalidInput, NotFound, Refused
from agent.queue.catalogue import Catalogue
from agent.queue.service import QueueService
from agent.store import events
from agent.store.db import Database
from tests.conftest import make_queue


def types(db: Database) -> list[str]:
    return [e.type for e in events.since(db.conn, 0)]


def test_numbering_per_prefix_shared_by_services(queue: QueueService) -> None:
    a1 = queue.take("khai-sinh").ticket
    a2 = queue.take("ket-hon").ticket  # same prefix A: one numbering
    b1 = queue.take("chung-thuc-ban-sao").ticket
    assert [a1.number, a2.number, b1.number] == ["A001", "A002", "B001"]


def test_issue_call_start_done(queue: QueueService, db: Database, clock: FakeClock) -> None:
    issued = queue.take("khai-sinh")
    assert issued.ahead == 0 and issued.ticket.state == "waiting"
    clock.advance(minutes=5)
    res = queue.next(1)
    assert res.ticket is not None and res.ticket.state == "called" and res.ticket.counter == 1
    clock.advance(minutes=1)
    assert queue.start(1).ticket is not None
    clock.advance(minutes=7)
    res = queue.done(1)
    assert res.closed is not None and res.closed.state == "done"
    assert types(db) == ["ticket.issued", "ticket.called", "ticket.serving", "ticket.done"]
    done = events.since(db.conn, 3)[0]
    assert done.data["service_seconds"] == 7 * 60
    called = events.since(db.conn, 1)[0]
    assert called.data["waited_seconds"] == 5 * 60
    assert queue.current(1) is None


def test_recall_counts_then_auto_no_show(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock, auto_no_show_recalls=2)
    q.take("khai-sinh")
    q.next(1)
    assert q.recall(1).ticket.recalls == 1  # type: ignore[union-attr]
    assert q.recall(1).ticket.recalls == 2  # type: ignore[union-attr]
    res = q.recall(1)  # past the limit: no-show
    assert res.ticket is None and res.closed is not None and res.closed.state == "no_show"
    last = events.since(db.conn, 0)[-1]
    assert last.type == "ticket.no_show" and last.data["reason"] == "max_recalls"


def test_no_show_by_counter_and_by_timeout(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock, auto_no_show_minutes=10)
    q.take("khai-sinh")
    q.take("khai-sinh")
    q.next(1)
    assert q.no_show(1).closed.state == "no_show"  # type: ignore[union-attr]
    q.next(1)
    clock.advance(minutes=9)
    assert q.sweep() == 0
    clock.advance(minutes=2)
    assert q.sweep() == 1
    last = events.since(db.conn, 0)[-1]
    assert last.type == "ticket.no_show" and last.data["reason"] == "timeout"
    assert q.current(1) is None


def test_recall_resets_timeout(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock, auto_no_show_minutes=10)
    q.take("khai-sinh")
    q.next(1)
    clock.advance(minutes=8)
    q.recall(1)
    clock.advance(minutes=8)
    assert q.sweep() == 0  # 8 minutes since the recall


def test_next_closes_current(queue: QueueService) -> None:
    queue.take("khai-sinh")
    queue.take("khai-sinh")
    queue.take("khai-sinh")
    queue.next(1)
    queue.start(1)
    res = queue.next(1)  # serving → done
    assert res.closed is not None and res.closed.state == "done"
    res = queue.next(1)  # called, never started → no-show
    assert res.closed is not None and res.closed.state == "no_show"


def test_empty_queue_next_is_not_an_error(queue: QueueService) -> None:
    res = queue.next(1)
    assert res.ticket is None and "Không có ai" in res.note


def test_cancel(queue: QueueService, db: Database) -> None:
    t = queue.take("khai-sinh").ticket
    assert queue.cancel(t.number).state == "cancelled"
    with pytest.raises(Refused):
        queue.cancel(t.number)
    assert queue.next(1).ticket is None
    assert types(db)[-1] == "ticket.cancelled"


def test_transfer_keeps_arrival_order(queue: QueueService, clock: FakeClock) -> None:
    first = queue.take("khai-sinh").ticket  # A001 arrives first
    clock.advance(minutes=1)
    for _ in range(3):
        queue.take("chung-thuc-ban-sao")  # B001..B003 arrive later
        clock.advance(minutes=1)
    queue.next(1)
    res = queue.transfer(1, "chung-thuc-ban-sao")
    assert res.closed is not None and res.closed.service == "chung-thuc-ban-sao"
    assert res.closed.number == first.number and res.closed.first_service == "khai-sinh"
    # Counter 3 serves Chứng thực: the transferred resident goes first, ahead of B001..B003.
    nxt = queue.next(3).ticket
    assert nxt is not None and nxt.number == "A001"
    assert queue.next(3).ticket.number == "B001"  # type: ignore[union-attr]


def test_transfer_to_same_or_unknown_service_refused(queue: QueueService) -> None:
    queue.take("khai-sinh")
    queue.next(1)
    with pytest.raises(Refused):
        queue.transfer(1, "khai-sinh")
    with pytest.raises(NotFound):
        queue.transfer(1, "khong-co")
    assert queue.current(1) is not None  # nothing changed


def test_hold_and_return(queue: QueueService, clock: FakeClock, db: Database) -> None:
    queue.take("khai-sinh")
    clock.advance(minutes=1)
    queue.take("khai-sinh")
    queue.next(1)
    held = queue.hold(1).closed
    assert held is not None and held.state == "held" and queue.current(1) is None
    assert queue.next(1).ticket.number == "A002"  # type: ignore[union-attr]
    back = queue.return_("A001")
    assert back.state == "waiting"
    queue.take("khai-sinh")  # A003 arrives after, but A001 keeps its original arrival
    assert queue.next(2).ticket.number == "A001"  # type: ignore[union-attr]
    assert "ticket.held" in types(db) and "ticket.returned" in types(db)


def test_call_specific_with_reason_audited(queue: QueueService, db: Database) -> None:
    queue.take("khai-sinh")
    queue.take("khai-sinh")
    with pytest.raises(InvalidInput):
        queue.call(1, "A002", " ")
    res = queue.call(1, "A002", "hồ sơ bổ sung")
    assert res.ticket is not None and res.ticket.number == "A002"
    ev = events.since(db.conn, 0)[-1]
    assert ev.type == "ticket.called" and ev.data["reason"] == "hồ sơ bổ sung" and ev.data["out_of_order"]


def test_counter_that_does_not_serve_the_service(queue: QueueService) -> None:
    queue.take("khai-sinh")
    with pytest.raises(Refused) as err:
        queue.call(6, "A001", "thử gọi nhầm quầy")
    assert err.value.code == "wrong_counter"
    assert queue.next(6).ticket is None  # counter 6 only serves Trả kết quả


def test_actions_without_current_ticket_refused(queue: QueueService) -> None:
    for action in (queue.recall, queue.start, queue.done, queue.no_show, queue.hold):
        with pytest.raises(Refused):
            action(1)
    with pytest.raises(NotFound):
        queue.next(42)


def test_start_twice_refused(queue: QueueService) -> None:
    queue.take("khai-sinh")
    queue.next(1)
    queue.start(1)
    with pytest.raises(Refused):
        queue.start(1)
    with pytest.raises(Refused):
        queue.recall(1)


def test_unknown_service_and_priority_write_nothing(queue: QueueService, db: Database) -> None:
    with pytest.raises(NotFound):
        queue.take("khong-co")
    with pytest.raises(NotFound):
        queue.take("khai-sinh", priority="vip")
    assert events.last_seq(db.conn) == 0


def test_strict_priority(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock, priority_mode="strict")
    for _ in range(3):
        q.take("khai-sinh")
    q.take("khai-sinh", priority="cao-tuoi")
    q.take("khai-sinh", priority="khuyet-tat")
    called = [q.next(1).ticket.number for _ in range(5)]  # type: ignore[union-attr]
    assert called == ["A004", "A005", "A001", "A002", "A003"]


def test_interleaved_one_priority_every_n(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock, priority_mode="interleaved", priority_every=3)
    normal = [q.take("khai-sinh").ticket.number for _ in range(6)]
    prio = [q.take("khai-sinh", priority="cao-tuoi").ticket.number for _ in range(3)]
    called = [q.next(1).ticket.number for _ in range(9)]  # type: ignore[union-attr]
    # Priority first, then two normal, then priority ...: one priority every 3 calls.
    assert called == [prio[0], normal[0], normal[1], prio[1], normal[2], normal[3], prio[2], normal[4], normal[5]]


def test_interleaving_is_per_counter_and_only_priority_left(db: Database, catalogue: Catalogue,
                                                            clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock, priority_mode="interleaved", priority_every=2)
    p = [q.take("khai-sinh", priority="mang-thai").ticket.number for _ in range(3)]
    assert [q.next(1).ticket.number for _ in range(3)] == p  # type: ignore[union-attr]


def test_daily_cap(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock)
    cap = catalogue.service("dat-dai-tranh-chap").daily_cap
    # dat-dai-tranh-chap is open Monday 08:00-11:00 only: 09:00 Monday is fine.
    for _ in range(cap):
        q.take("dat-dai-tranh-chap")
    with pytest.raises(Refused) as err:
        q.take("dat-dai-tranh-chap")
    assert err.value.code == "cap_reached"
    assert events.last_seq(db.conn) == cap
    q.take("dat-dai-bien-dong")  # same prefix D, another service: its own cap
    clock.advance(days=2)  # Wednesday, again 09:00
    assert q.take("dat-dai-tranh-chap").ticket.number == "D001"


def test_opening_hours(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock)
    clock.advance(hours=3)  # 12:00 lunch break
    with pytest.raises(Refused) as err:
        q.take("khai-sinh")
    assert err.value.code == "closed" and "13:00" in err.value.message
    clock.advance(hours=1, minutes=30)  # 13:30
    q.take("khai-sinh")
    clock.advance(days=1, hours=-4)  # Tuesday 09:30: dat-dai-tranh-chap is only Mon/Wed/Fri
    with pytest.raises(Refused):
        q.take("dat-dai-tranh-chap")
    clock.advance(days=5)  # Sunday
    with pytest.raises(Refused) as err:
        q.take("khai-sinh")
    assert "không làm việc" in err.value.message


def test_midnight_rollover_restarts_numbering(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock, enforce_hours=False)
    clock.advance(hours=14, minutes=59)  # 23:59 local Monday
    assert q.take("khai-sinh").ticket.number == "A001"
    assert q.take("khai-sinh").ticket.number == "A002"
    clock.advance(minutes=1)  # 00:00 Tuesday local (17:00 UTC): a new day
    fresh = q.take("khai-sinh").ticket
    assert fresh.number == "A001" and fresh.day == "2026-12-01"
    # Yesterday's unserved tickets are closed, today's A001 is the one called.
    res = q.next(1)
    assert res.ticket is not None and res.ticket.id == fresh.id
    closed = [e for e in events.since(db.conn, 0) if e.type == "ticket.cancelled"]
    assert len(closed) == 2 and all(e.data["reason"] == "day_ended" for e in closed)
    assert q.get("A001").id == fresh.id  # numbers resolve to today's ticket


def test_estimate_uses_recent_service_times(db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    q = make_queue(db, catalogue, clock)
    # Before any history: the catalogue's typical time (8 min), 2 counters.
    for _ in range(4):
        q.take("khai-sinh")
    assert q.take("khai-sinh").wait_minutes == 4 * 8 // 2
    for _ in range(5):
        q.next(1)
        q.start(1)
        clock.advance(minutes=2)
        q.done(1)
    est = q.estimate("khai-sinh")
    assert est["average_minutes"] == 2.0 and est["waiting"] == 0
    for _ in range(4):
        q.take("khai-sinh")
    assert q.take("khai-sinh").wait_minutes == 4  # 4 ahead × 2 min / 2 counters


def test_events_are_envelopes_without_personal_data(queue: QueueService, db: Database) -> None:
    queue.take("khai-sinh", priority="cao-tuoi")
    queue.next(1)
    evs = events.since(db.conn, 0)
    assert [e.seq for e in evs] == [1, 2]
    env = evs[0].envelope("26740", "demo-01")
    assert set(env) == {"v", "id", "kiosk", "ward", "seq", "type", "at", "data"}
    assert env["at"].endswith("Z") and env["id"][14] == "7"  # UUIDv7
    json.dumps(env)


def test_snapshot(queue: QueueService) -> None:
    queue.take("khai-sinh")
    queue.take("chung-thuc-ban-sao")
    queue.next(1)
    snap = queue.snapshot()
    by_code = {s["code"]: s for s in snap["services"]}
    assert by_code["chung-thuc-ban-sao"]["waiting"] == 1 and by_code["khai-sinh"]["waiting"] == 0
    assert snap["counters"][0]["ticket"]["number"] == "A001"
    assert snap["last_calls"][0]["number"] == "A001"


def test_clock_behind_the_log_refuses_to_issue_and_numbers_are_never_reused(
        db: Database, catalogue: Catalogue, clock: FakeClock) -> None:
    queue = make_queue(db, catalogue, clock, enforce_hours=False)
    assert [queue.take("khai-sinh").ticket.number for _ in range(3)] == ["A001", "A002", "A003"]
    # The box reboots believing it is yesterday: its start is logged, but no ticket may be issued.
    clock.advance(days=-1)
    with db.write() as conn:
        events.append(conn, "agent.started", {"boot": 2, "version": "test"}, clock())
    before = events.last_seq(db.conn)
    with pytest.raises(Refused) as refused:
        queue.take("khai-sinh")
    assert refused.value.code == "clock_behind"
    assert refused.value.message.startswith("Đồng hồ của máy chưa đúng")
    assert events.last_seq(db.conn) == before  # nothing written, no number spent
    # Yesterday's sweep does not touch today's tickets.
    assert queue.sweep() == 0
    # NTP corrects the clock: numbering goes on where it stopped, the waiting tickets are intact.
    clock.advance(days=1, minutes=5)
    assert queue.take("khai-sinh").ticket.number == "A004"
    assert [t.number for t in queue.waiting()] == ["A001", "A002", "A003", "A004"]
    # A small step back (NTP slewing, within the tolerance) does not stop the office.
    clock.advance(seconds=-30)
    assert queue.take("khai-sinh").ticket.number == "A005"
