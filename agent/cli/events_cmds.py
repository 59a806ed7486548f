"""`kiosk events [--since SEQ] [--follow]`: the event log as JSON lines or a short table."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from agent.cli.output import JsonOpt, emit_json, say
from agent.cli.state import STATE
from agent.store import events as event_log
from agent.store.events import Event


def register(app: typer.Typer) -> None:
    @app.command("events")
    def events(
        since: Annotated[int, typer.Option("--since", min=0, help="Only events after this seq.")] = 0,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
        limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many (without --follow).")] = 1000,
        as_json: JsonOpt = False,
    ) -> None:
        """Print the event log in seq order (envelopes as published, with --json)."""
        core = STATE.core()
        ward, kiosk = core.settings.device.ward, core.settings.device.kiosk
        log = event_log.log_id(core.db.conn)

        def show(ev: Event) -> None:
            if as_json:
                emit_json(ev.envelope(ward, kiosk, log))
            else:
                say(f"{ev.seq:>7} {ev.at} {ev.type:<20} {json.dumps(ev.data, ensure_ascii=False)}")

        last = since
        batch = event_log.since(core.db.conn, last, limit)
        for ev in batch:
            show(ev)
            last = ev.seq
        if not follow:
            return
        seen_version = -1
        while True:
            version = core.db.data_version()
            if version != seen_version:
                seen_version = version
                for ev in event_log.since(core.db.conn, last, 1000):
                    show(ev)
                    last = ev.seq
            # Another process's commit is only visible by polling; 200 ms keeps a follower responsive.
            time.sleep(0.2)
