"""Which waiting ticket a counter calls next: strict priority, or one priority ticket every N calls."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal

from agent.queue.tickets import COLUMNS, WAITING, Ticket

Mode = Literal["strict", "interleaved"]


def _first(conn: sqlite3.Connection, services: Sequence[str], priority: bool) -> Ticket | None:
    marks = ",".join("?" * len(services))
    cond = "priority IS NOT NULL" if priority else "priority IS NULL"
    row = conn.execute(
        f"SELECT {COLUMNS} FROM tickets WHERE state=? AND service IN ({marks}) AND {cond} "
        "ORDER BY arrival LIMIT 1",
        (WAITING, *services),
    ).fetchone()
    return None if row is None else Ticket.from_row(row)


def choose_next(conn: sqlite3.Connection, counter: int, services: Sequence[str], mode: Mode,
                every: int) -> Ticket | None:
    """The ticket `counter` should call now, oldest arrival first within each class.

    Interleaved: after `every - 1` normal calls in a row at this counter, a waiting priority ticket
    goes next; so priority residents are never starved and normal ones are never blocked by a long
    priority line. Strict: any waiting priority ticket goes first.
    """
    if not services:
        return None
    prio = _first(conn, services, priority=True)
    normal = _first(conn, services, priority=False)
    if prio is None or normal is None:
        return prio or normal
    if mode == "strict":
        return prio
    row = conn.execute("SELECT normal_streak FROM counter_state WHERE counter=?", (counter,)).fetchone()
    # A counter that has not called anyone yet starts by serving priority.
    streak = every - 1 if row is None else int(row[0])
    return prio if streak >= every - 1 else normal


def record_call(conn: sqlite3.Connection, counter: int, ticket: Ticket) -> None:
    """Keep the per-counter run of normal calls that interleaving counts."""
    if ticket.priority is None:
        conn.execute(
            "INSERT INTO counter_state(counter, normal_streak) VALUES (?, 1) "
            "ON CONFLICT(counter) DO UPDATE SET normal_streak = normal_streak + 1",
            (counter,),
        )
    else:
        conn.execute(
            "INSERT INTO counter_state(counter, normal_streak, priority_seen) VALUES (?, 0, 1) "
            "ON CONFLICT(counter) DO UPDATE SET normal_streak = 0, priority_seen = priority_seen + 1",
            (counter,),
        )
