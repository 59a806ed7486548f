"""A short day in the life (bench/soak.py's code, #11 item 11): the real `kiosk run`, `kiosk central ingest`
and mosquitto; ~60 tickets, counters, ratings, a call, one broker kill -9 and one agent kill -9. Afterwards
every kiosk event is in central once with the same id, numbers are unique, no issued ticket is lost.
Resource flatness needs a long day: only the bench judges it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import Day, Plan, check, run_day

pytestmark = pytest.mark.timeout(120)


async def test_a_short_day_keeps_central_equal_to_the_kiosk(tmp_path: Path) -> None:
    # The one restart is the harsher kill -9: a ticket committed but never answered must still be kept once.
    plan = Plan(tickets=60, day_seconds=20, broker_kills=(0.3,), net_cuts=(), restarts=(0.6,),
                restart_signals=("SIGKILL",), calls=(0.15,), samples=10)
    result = await run_day(plan, tmp_path)
    invariants = [f for f in result["failures"] if not f.startswith("resources not flat")]
    assert invariants == [], invariants
    assert result["agent_runs"] == 2 and len(result["faults"]) == 2
    assert result["tickets"] >= 60 and result["issued_ok"] == 60
    assert result["served"] > 0 and result["kiosk_events"] == result["central_events"]
    assert result["kiosk_events"] > result["tickets"]  # tickets, calls, serving, check-ins, agent start/stop
    read = [s for s in result["samples"] if s["tasks"] is not None]
    assert len(read) >= len(result["samples"]) // 2 > 0, "the daemon's tasks gauge was not read"


def test_check_names_each_broken_invariant() -> None:
    day = Day(issued=["t1", "t3"], served=1)
    kiosk = [(1, "e1", "ticket.issued"), (2, "e2", "ticket.issued"), (3, "e3", "ticket.called")]
    central = [(1, "e1"), (1, "e1"), (3, "other"), (4, "e4")]  # 2 missing, 1 twice, 3 differs, 4 unknown
    tickets = [("t1", "2026-11-30", "A001"), ("t2", "2026-11-30", "A001")]
    failures = check(day, kiosk, central, tickets)["failures"]
    assert len(failures) == 5, failures
    assert "missing in central" in failures[0] and "twice" in failures[1] and "ids differ at [3]" in failures[2]
    assert "('2026-11-30', 'A001')" in failures[3] and "1 tickets answered 201" in failures[4]
    good = [tickets[0], ("t3", "2026-11-30", "A002")]
    assert check(day, kiosk[:2], [(1, "e1"), (2, "e2")], good)["failures"] == []
