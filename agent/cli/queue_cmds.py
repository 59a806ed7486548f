"""`kiosk services`, `kiosk ticket …`, `kiosk queue show`, `kiosk counter …`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agent.cli import print_cmds
from agent.cli.output import JsonOpt, emit_json, say
from agent.cli.state import STATE
from agent.clock import local_display, parse_rfc3339
from agent.queue.service import CounterResult
from agent.queue.tickets import STATE_NAMES_VI, Ticket

CounterArg = Annotated[int, typer.Argument(help="Counter number.", min=1, max=99)]


def _ticket_line(ticket: Ticket) -> str:
    prio = f" ưu tiên:{ticket.priority}" if ticket.priority else ""
    where = f" quầy {ticket.counter}" if ticket.counter else ""
    return f"{ticket.number} {ticket.service}{prio} – {STATE_NAMES_VI[ticket.state]}{where}"


def _counter_out(result: CounterResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.public())
        return
    if result.closed is not None:
        say(f"đã đóng: {_ticket_line(result.closed)}")
    if result.ticket is not None:
        say(_ticket_line(result.ticket))
    if result.note:
        say(result.note)


def register(app: typer.Typer) -> None:
    @app.command("services")
    def services(as_json: JsonOpt = False) -> None:
        """The service catalogue as the kiosk shows it."""
        cat = STATE.core().catalogue
        if as_json:
            emit_json({"office": cat.office.model_dump(), "counters": [c.model_dump() for c in cat.counters],
                       "priority_classes": [p.model_dump() for p in cat.priority_classes],
                       "groups": [g.model_dump() for g in cat.groups]})
            return
        for group in cat.groups:
            say(group.name)
            for s in group.services:
                counters = ",".join(map(str, s.counters))
                say(f"  {s.code:<24} {s.prefix:<2} quầy {counters:<6} {s.name}")
        say("Diện ưu tiên: " + ", ".join(f"{p.code} ({p.name})" for p in cat.priority_classes))

    ticket = typer.Typer(help="Lấy số và thao tác trên một số.", no_args_is_help=True)
    app.add_typer(ticket, name="ticket")
    print_cmds.register(ticket)  # kiosk ticket print NUMBER

    @ticket.command("take")
    def take(service: Annotated[str, typer.Argument(help="Service code (see `kiosk services`).")],
             priority: Annotated[str | None, typer.Option("--priority", "-p", help="Priority class code.")] = None,
             as_json: JsonOpt = False) -> None:
        """Issue a ticket for SERVICE."""
        issued = STATE.core().queue.take(service, priority=priority, source="cli")
        if as_json:
            emit_json(issued.public())
            return
        say(f"{issued.ticket.number}  {issued.service_name}")
        say(f"Trước bạn còn {issued.ahead} người, dự kiến chờ khoảng {issued.wait_minutes} phút.")

    @ticket.command("show")
    def show(ref: Annotated[str, typer.Argument(help="Ticket number (A012) or id.")], as_json: JsonOpt = False) -> None:
        """One ticket's state."""
        t = STATE.core().queue.get(ref)
        if as_json:
            emit_json(t.public())
        else:
            say(_ticket_line(t) + f" (lấy số lúc {local_display(parse_rfc3339(t.arrived_at))})")

    @ticket.command("cancel")
    def cancel(ref: str, as_json: JsonOpt = False) -> None:
        """Cancel a waiting or held ticket."""
        t = STATE.core().queue.cancel(ref)
        emit_json(t.public()) if as_json else say(_ticket_line(t))

    @ticket.command("return")
    def return_(ref: str, as_json: JsonOpt = False) -> None:
        """Put a held ticket back in line (it keeps its arrival order)."""
        t = STATE.core().queue.return_(ref)
        emit_json(t.public()) if as_json else say(_ticket_line(t))

    queue = typer.Typer(help="Xem hàng đợi.", no_args_is_help=True)
    app.add_typer(queue, name="queue")

    @queue.command("show")
    def queue_show(as_json: JsonOpt = False) -> None:
        """Waiting tickets per service, the current call per counter, the last calls."""
        snap: dict[str, Any] = STATE.core().queue.snapshot()
        if as_json:
            emit_json(snap)
            return
        say(f"Ngày {snap['day']}")
        for c in snap["counters"]:
            cur = c["ticket"]
            say(f"  {c['name']}: " + (f"{cur['number']} ({STATE_NAMES_VI[cur['state']]})" if cur else "—"))
        for s in snap["services"]:
            if s["waiting"]:
                say(f"  {s['name']}: {s['waiting']} người chờ, ~{s['estimated_wait_minutes']} phút")
        if not snap["waiting"]:
            say("  Không có ai đang chờ.")

    counter = typer.Typer(help="Thao tác tại quầy.", no_args_is_help=True)
    app.add_typer(counter, name="counter")

    @counter.command("next")
    def next_(n: CounterArg, as_json: JsonOpt = False) -> None:
        """Close the current ticket and call the next one."""
        _counter_out(STATE.core().queue.next(n), as_json)

    @counter.command("recall")
    def recall(n: CounterArg, as_json: JsonOpt = False) -> None:
        """Call the current ticket again."""
        _counter_out(STATE.core().queue.recall(n), as_json)

    @counter.command("start")
    def start(n: CounterArg, as_json: JsonOpt = False) -> None:
        """The called resident arrived: start serving."""
        _counter_out(STATE.core().queue.start(n), as_json)

    @counter.command("done")
    def done(n: CounterArg, as_json: JsonOpt = False) -> None:
        """Finish the current ticket."""
        _counter_out(STATE.core().queue.done(n), as_json)

    @counter.command("no-show")
    def no_show(n: CounterArg, as_json: JsonOpt = False) -> None:
        """The called resident did not come."""
        _counter_out(STATE.core().queue.no_show(n), as_json)

    @counter.command("transfer")
    def transfer(n: CounterArg, service: str, as_json: JsonOpt = False) -> None:
        """Send the current resident to SERVICE, keeping their arrival order."""
        _counter_out(STATE.core().queue.transfer(n, service), as_json)

    @counter.command("hold")
    def hold(n: CounterArg, as_json: JsonOpt = False) -> None:
        """Put the current resident aside; `kiosk ticket return` brings them back."""
        _counter_out(STATE.core().queue.hold(n), as_json)

    @counter.command("call")
    def call(n: CounterArg, ticket_ref: Annotated[str, typer.Argument(metavar="TICKET")],
             reason: Annotated[str, typer.Option("--reason", "-r", help="Why out of order (audited).")],
             as_json: JsonOpt = False) -> None:
        """Call a specific ticket out of order, with a reason."""
        _counter_out(STATE.core().queue.call(n, ticket_ref, reason), as_json)
