"""`kiosk provision`, `kiosk doctor`, `kiosk wards`: the technician's commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.output import JsonOpt, emit_json, say
from agent.cli.state import STATE
from agent.errors import InvalidInput

DEFAULT_CONFIG_DIR = Path(os.environ.get("CONFIGURATION_DIRECTORY", "/etc/ward-kiosk"))
MARKS = {"ok": "✓", "warn": "!", "fail": "✗"}


def _pins(values: list[str]) -> dict[int, str]:
    pins: dict[int, str] = {}
    for value in values:
        number, sep, pin = value.partition("=")
        if not sep or not number.strip().isdigit() or not pin.strip():
            raise InvalidInput(f"--counter-pin takes N=PIN, got {value!r}")
        pins[int(number)] = pin.strip()
    return pins


def register(app: typer.Typer) -> None:
    @app.command("provision")
    def provision(
        config_dir: Annotated[Path, typer.Option("--config-dir", help="Where kiosk.toml and credentials/ go.")]
        = DEFAULT_CONFIG_DIR,
        ward: Annotated[str | None, typer.Option("--ward", envvar="KIOSK_PROVISION_WARD",
                                                 help="Official 5-digit ward/commune code.")] = None,
        kiosk: Annotated[str | None, typer.Option("--kiosk", envvar="KIOSK_PROVISION_KIOSK",
                                                  help="Device id, [a-z0-9-]{1,32}.")] = None,
        broker: Annotated[str | None, typer.Option("--broker", envvar="KIOSK_PROVISION_BROKER",
                                                   help="mqtts://host:8883 (or mqtt:// on a trusted LAN).")] = None,
        name: Annotated[str | None, typer.Option("--name", help="Human name of the terminal.")] = None,
        data_dir: Annotated[Path | None, typer.Option(
            "--data-dir", help="Default: /var/lib/ward-kiosk when the service user exists, else var/ beside "
                               "the config; written into kiosk.toml.")] = None,
        user: Annotated[str, typer.Option("--user", help="The service's user: gets read access (as root).")]
        = "ward-kiosk",
        catalogue: Annotated[Path | None, typer.Option("--catalogue", help="Service catalogue TOML to install.")]
        = None,
        tls: Annotated[str, typer.Option("--tls", help="none | generate (key + CSR) | install (--cert/--key/--ca).")]
        = "none",
        cert: Annotated[Path | None, typer.Option("--cert")] = None,
        key: Annotated[Path | None, typer.Option("--key")] = None,
        ca: Annotated[Path | None, typer.Option("--ca")] = None,
        password_env: Annotated[str | None, typer.Option(
            "--mqtt-password-env", help="Name of an environment variable holding the broker password.")] = None,
        counter_pin: Annotated[list[str] | None, typer.Option("--counter-pin", help="N=PIN, repeatable.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Change identity despite unacknowledged events.")]
        = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Non-interactive: never prompt.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Enrol this terminal: write its config and secrets (interactive when values are missing)."""
        from agent.ops.provision import ProvisionRequest
        from agent.ops.provision import provision as do_provision
        from agent.ops.wards import lookup_ward, search_wards

        interactive = not yes and sys.stdin.isatty()
        if ward is None and interactive:
            while True:
                answer = typer.prompt("Mã phường/xã (5 chữ số) hoặc một phần tên để tìm")
                if answer.strip().isdigit():
                    info = lookup_ward(answer)
                    if typer.confirm(f"{info.label()} – đúng không?", default=True):
                        ward = info.code
                        break
                else:
                    for w in search_wards(answer):
                        say(f"  {w.code}  {w.label()}")
        if kiosk is None and interactive:
            kiosk = typer.prompt("Mã ki-ốt (a-z, 0-9, -)", default="kiosk-01")
        if broker is None and interactive:
            broker = typer.prompt("Broker MQTT", default="mqtts://mqtt.example.gov.vn:8883")
        missing = [opt for opt, v in (("--ward", ward), ("--kiosk", kiosk), ("--broker", broker)) if v is None]
        if missing:
            raise InvalidInput(f"missing {', '.join(missing)} (non-interactive provisioning needs them)")
        assert ward is not None and kiosk is not None and broker is not None
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if password is None:
                raise InvalidInput(f"environment variable {password_env} is not set")
        elif interactive and typer.confirm("Dùng mật khẩu broker?", default=False):
            password = typer.prompt("Mật khẩu broker", hide_input=True)
        result = do_provision(ProvisionRequest(
            config_dir=config_dir, ward=ward, kiosk=kiosk, broker=broker, name=name, data_dir=data_dir,
            catalogue=catalogue, tls=tls, cert=cert, key=key, ca=ca, mqtt_password=password,
            counter_pins=_pins(counter_pin or []), force=force, service_user=user))
        if as_json:
            emit_json({"config_file": str(result.config_file), "ward": result.ward.code,
                       "ward_name": result.ward.label(), "kiosk": result.kiosk, "identity": result.identity,
                       "csr": str(result.csr) if result.csr else None, "unacknowledged_events": result.kept_events,
                       "notes": result.notes})
            return
        say(f"Đã ghi {result.config_file}: {result.ward.label()} · ki-ốt {result.kiosk} · MQTT {result.identity}")
        for note in result.notes:
            say(f"  - {note}")

    @app.command("wards")
    def wards(name: Annotated[str, typer.Argument(help="Part of a ward/commune name, or a code.")],
              as_json: JsonOpt = False) -> None:
        """Find official ward/commune codes (post-2025 list)."""
        from agent.ops.wards import lookup_ward, search_wards

        found = [lookup_ward(name)] if name.strip().isdigit() else search_wards(name, limit=50)
        if as_json:
            emit_json([{"code": w.code, "name": w.name, "province": w.province} for w in found])
            return
        for w in found:
            say(f"{w.code}  {w.label()}")
        if not found:
            raise InvalidInput(f"no ward or commune matches {name!r}")

    @app.command("doctor")
    def doctor(
        audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Test the microphone and speaker.")] = True,
        skip: Annotated[list[str] | None, typer.Option("--skip", help="Skip a check by name (repeatable).")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check config, disk, database, clock, camera, audio, broker, certificate and outbox."""
        from agent.ops.doctor import FAIL, Check, check_config, run_all
        from agent.settings import SettingsProblems

        try:
            settings = STATE.settings()
        except SettingsProblems as exc:
            checks = [Check("config", FAIL, "; ".join(exc.problems))]
        else:
            first = check_config(settings)
            checks = run_all(settings, audio=audio, skip=set(skip or ())) if first.status != FAIL else [first]
        if as_json:
            emit_json({"ok": all(c.status != FAIL for c in checks), "checks": [c.public() for c in checks]})
        else:
            for c in checks:
                say(f"{MARKS[c.status]} {c.name:<17} {c.detail}")
        if any(c.status == FAIL for c in checks):
            raise typer.Exit(1)
