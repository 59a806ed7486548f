"""`kiosk fleet status|watch`: every kiosk's state from retained status and last telemetry, with alerts.

Exit codes of `fleet status`: 0 every kiosk healthy, 3 at least one alert (or no kiosk seen),
1 the broker could not be reached (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from typing import Annotated

import typer

from agent.central.fleet import Fleet, Thresholds
from agent.cli.central_cmds import (
    BrokerOpt,
    CaOpt,
    CertOpt,
    KeyOpt,
    PasswordFileOpt,
    ProtocolOpt,
    RootOpt,
    UserOpt,
    broker_extra,
)
from agent.cli.output import JsonOpt, emit_json, say
from agent.mqtt_client import MqttClient, MqttOptions

EXIT_ALERTS = 3


def register(app: typer.Typer) -> None:
    fleet = typer.Typer(help="Giám sát đội ki-ốt.", no_args_is_help=True)
    app.add_typer(fleet, name="fleet")

    def build(broker: str, protocol: str, root: str, stale: float, backlog: int, oldest: float,
              extra: dict[str, object]) -> tuple[MqttClient, Fleet]:

        if protocol not in ("5", "3.1.1"):
            raise typer.BadParameter("--protocol must be 5 or 3.1.1")
        options = MqttOptions(url=broker, client_id=f"fleet-{socket.gethostname()}-{os.getpid()}",
                              protocol=protocol, reconnect_max=5, connect_timeout=5, **extra)  # type: ignore[arg-type]
        client = MqttClient(options)
        monitor = Fleet(client, root, Thresholds(stale_after=stale, backlog=backlog, oldest_unsent=oldest))
        monitor.attach()
        return client, monitor

    @fleet.command("status")
    def status(broker: BrokerOpt, as_json: JsonOpt = False, root: RootOpt = "wards", protocol: ProtocolOpt = "5",
               wait: Annotated[float, typer.Option("--wait", min=0.1, help="Seconds to collect retained state.")] = 1.5,
               stale: Annotated[float, typer.Option("--stale", help="Telemetry older than this (s) alerts.")] = 90,
               backlog: Annotated[int, typer.Option("--backlog", help="Unsent events above this alert.")] = 1000,
               oldest: Annotated[float, typer.Option("--oldest", help="Oldest unsent age (s) above this alerts.")]
               = 600,
               ca_file: CaOpt = None, cert_file: CertOpt = None, key_file: KeyOpt = None, username: UserOpt = None,
               password_file: PasswordFileOpt = None) -> None:
        """Every kiosk's state and alerts (exit 0 healthy, 3 alerts, 1 broker unreachable)."""
        from agent.errors import KioskError
        from agent.mqtt_client import redact_url

        extra = broker_extra(ca_file, cert_file, key_file, username, password_file)
        client, monitor = build(broker, protocol, root, stale, backlog, oldest, extra)

        async def collect() -> bool:
            stop = asyncio.Event()
            runner = asyncio.create_task(client.run(stop))
            failed = asyncio.ensure_future(client.connect_failed.wait())
            ok = asyncio.ensure_future(client.wait_connected(stop))
            await asyncio.wait([failed, ok], timeout=max(wait, 5.0), return_when=asyncio.FIRST_COMPLETED)
            failed.cancel()
            connected = ok.result() if ok.done() else None
            ok.cancel()
            if connected is not None:
                await asyncio.sleep(wait)  # retained messages arrive right after SUBACK; give them `wait` s
            stop.set()
            await runner
            return connected is not None

        if not asyncio.run(collect()):
            raise KioskError(f"cannot reach the broker {redact_url(broker)}: {client.last_error or 'timeout'}")
        rows = monitor.rows()
        if as_json:
            emit_json({"kiosks": rows, "alerts": sum(1 for r in rows if r["alerts"])})
        else:
            from agent.central.fleet import render_table
            say(render_table(rows))
        if not rows or any(r["alerts"] for r in rows):
            raise typer.Exit(EXIT_ALERTS)

    @fleet.command("watch")
    def watch(broker: BrokerOpt, as_json: JsonOpt = False, root: RootOpt = "wards", protocol: ProtocolOpt = "5",
              interval: Annotated[float, typer.Option("--interval", min=0.2, help="Redraw every N s.")] = 2.0,
              stale: Annotated[float, typer.Option("--stale")] = 90,
              backlog: Annotated[int, typer.Option("--backlog")] = 1000,
              oldest: Annotated[float, typer.Option("--oldest")] = 600,
              ca_file: CaOpt = None, cert_file: CertOpt = None, key_file: KeyOpt = None, username: UserOpt = None,
              password_file: PasswordFileOpt = None) -> None:
        """A live table (or JSON lines with --json) until Ctrl-C."""
        from agent.central.fleet import render_table

        client, monitor = build(broker, protocol, root, stale, backlog, oldest,
                                broker_extra(ca_file, cert_file, key_file, username, password_file))

        async def loop() -> None:
            stop = asyncio.Event()
            runner = asyncio.create_task(client.run(stop))
            try:
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(monitor.changed.wait(), interval)
                    monitor.changed.clear()
                    rows = monitor.rows()
                    if as_json:
                        emit_json({"kiosks": rows})
                    else:
                        sys.stdout.write("\x1b[H\x1b[2J" + render_table(rows) + "\n")
                        sys.stdout.flush()
            finally:
                stop.set()
                await runner

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(loop())

