"""`kiosk ticket print NUMBER`: another paper copy of a ticket, printed by the running agent.

The request is a `ticket.print_requested` event, so it reaches the agent's printer the way every
other change does (and is audited); the command then waits for the agent to report the print.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from agent.cli.output import JsonOpt, emit_json, fail, say
from agent.cli.state import STATE
from agent.clock import system_clock
from agent.errors import KioskError
from agent.printing.jobs import request_reprint

POLL_S = 0.1


def register(ticket: typer.Typer) -> None:
    @ticket.command("print")
    def print_(ref: Annotated[str, typer.Argument(help="Ticket number (A012) or id, today's.")],
               wait: Annotated[float, typer.Option("--wait", min=0, max=120,
                                                   help="Seconds to wait for the agent to print it (0: don't).")] = 10,
               as_json: JsonOpt = False) -> None:
        """Print a ticket again (reprint) on the kiosk's printer."""
        core = STATE.core()
        if not core.settings.printer.enabled:
            raise KioskError("printing is off on this kiosk (printer.enabled = false)", code="printer_off")
        ticket, seq = request_reprint(core, ref, system_clock, "cli")
        deadline = time.monotonic() + wait
        row = None
        while wait and time.monotonic() < deadline:
            row = core.db.conn.execute("SELECT state, reason, attempts FROM print_jobs WHERE seq=?", (seq,)).fetchone()
            if row is not None:
                break
            time.sleep(POLL_S)  # another process (the agent) prints: nothing to await here but the file
        state = row[0] if row is not None else ("requested" if not wait else "pending")
        result = {"ticket": ticket.id, "number": ticket.number, "seq": seq, "state": state,
                  "reason": row[1] if row is not None else None}
        if as_json:
            emit_json(result)
        if state == "pending":
            raise fail(f"{ticket.number}: reprint requested (event {seq}) but not printed within {wait:g} s; "
                       "is the agent running, and the printer ready (kiosk doctor)?")
        if state in ("failed", "skipped"):
            raise fail(f"{ticket.number}: not printed ({result['reason']})")
        if not as_json:
            done = "đã in lại phiếu." if state == "printed" else f"đã gửi yêu cầu in lại (sự kiện {seq})."
            say(f"{ticket.number}: {done}")
