"""`kiosk central ingest`: the central consumer that stores events and publishes acks."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.cli.output import JsonOpt, emit_json, say
from agent.cli.state import STATE

logger = logging.getLogger(__name__)

BrokerOpt = Annotated[str, typer.Option("--broker", help="Broker URL: mqtt://host:port or mqtts://host:port.")]
CaOpt = Annotated[Path | None, typer.Option("--ca-file", help="CA bundle for mqtts://.")]
CertOpt = Annotated[Path | None, typer.Option("--cert-file", help="Client certificate (PEM).")]
KeyOpt = Annotated[Path | None, typer.Option("--key-file", help="Client key (PEM).")]
UserOpt = Annotated[str | None, typer.Option("--username", help="Broker user name.")]
PasswordFileOpt = Annotated[Path | None, typer.Option("--password-file", help="File holding the broker password.")]
RootOpt = Annotated[str, typer.Option("--root", help="Topic root.")]
ProtocolOpt = Annotated[str, typer.Option("--protocol", help="MQTT protocol: 5 or 3.1.1.")]


def broker_extra(ca_file: Path | None, cert_file: Path | None, key_file: Path | None, username: str | None,
                 password_file: Path | None) -> dict[str, object]:
    from agent.settings import read_secret

    password = read_secret(password_file).strip() if password_file else None
    return {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file, "username": username,
            "password": password}


def register(app: typer.Typer) -> None:
    central = typer.Typer(help="Phía trung tâm: nhận sự kiện từ các ki-ốt.", no_args_is_help=True)
    app.add_typer(central, name="central")

    @central.command("ingest")
    def ingest(broker: BrokerOpt,
               db: Annotated[str | None, typer.Option(
                   "--db", help="SQLite file (default: central.db in the data folder) or postgresql://…")] = None,
               root: RootOpt = "wards", protocol: ProtocolOpt = "5",
               shared: Annotated[bool, typer.Option(help="MQTT 5 shared subscription $share/ingest/….")] = True,
               ca_file: CaOpt = None, cert_file: CertOpt = None, key_file: KeyOpt = None, username: UserOpt = None,
               password_file: PasswordFileOpt = None) -> None:
        """Store every kiosk's events once (unique ward, kiosk, seq) and publish each kiosk's retained ack."""
        from agent.central.ingest import Ingest, ingest_options
        from agent.central.store import open_store
        from agent.mqtt_client import MqttClient, redact_url

        if protocol not in ("5", "3.1.1"):
            raise typer.BadParameter("--protocol must be 5 or 3.1.1")
        target = db or str(STATE.settings().data_dir() / "central.db")
        store = open_store(target)
        options = ingest_options(broker, protocol, **broker_extra(ca_file, cert_file, key_file, username,
                                                                  password_file))
        logger.warning("ingest from %s into %s", redact_url(broker),
                       redact_url(target) if "://" in target else target)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await Ingest(store, MqttClient(options), root=root, shared=shared).run(stop)

        try:
            asyncio.run(main())
        finally:
            store.close()

    @central.command("quarantine")
    def quarantine(db: Annotated[str | None, typer.Option(
                       "--db", help="SQLite file (default: central.db in the data folder) or postgresql://…")] = None,
                   as_json: JsonOpt = False) -> None:
        """Messages the ingest refused (per kiosk and reason) and kiosks with more than one event log.

        Exit 0 when there is nothing, 3 when there is something to look at (as `fleet status` alerts)."""
        from agent.central.store import open_store

        target = db or str(STATE.settings().data_dir() / "central.db")
        store = open_store(target)
        try:
            rows = store.quarantined()
            logs = store.logs()
        finally:
            store.close()
        per_kiosk: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for log in logs:
            per_kiosk.setdefault((str(log["ward"]), str(log["kiosk"])), []).append(log)
        replaced: list[dict[str, Any]] = [{"ward": w, "kiosk": k, "logs": v} for (w, k), v in per_kiosk.items()
                                          if len(v) > 1]
        if as_json:
            emit_json({"quarantined": rows, "replaced_logs": replaced})
        else:
            for r in rows:
                say(f"{r['ward']}/{r['kiosk']} {r['code']} ×{r['count']} last {r['last_at']} seq {r['seq']}: "
                    f"{r['detail']}")
            for k in replaced:
                say(f"{k['ward']}/{k['kiosk']} has {len(k['logs'])} event logs (database replaced): "
                    + ", ".join(f"{lg['log'] or '(none)'} up to {lg['seq']}" for lg in k["logs"]))
            if not rows and not replaced:
                say("nothing quarantined")
        if rows or replaced:
            raise typer.Exit(3)
