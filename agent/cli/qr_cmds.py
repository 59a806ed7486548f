"""`kiosk qr decode|scan|token`: decode images, run the scanner on any source, make test tokens."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.cli.output import JsonOpt, emit_json, say
from agent.cli.state import STATE
from agent.errors import InvalidInput


def register(app: typer.Typer) -> None:
    qr = typer.Typer(help="Giải mã QR, quét từ camera, tạo mã hẹn thử.", no_args_is_help=True)
    app.add_typer(qr, name="qr")

    @qr.command("decode")
    def decode(images: Annotated[list[Path], typer.Argument(help="Image files.")],
               raw: Annotated[bool, typer.Option("--raw", help="Show personal data unmasked (screen only).")] = False,
               as_json: JsonOpt = False) -> None:
        """Decode QR codes in image files: one line per image; personal data masked unless --raw."""
        from agent.checkin.codes import DossierFormat
        from agent.checkin.describe import describe
        from devices import imaging
        from devices.decoders import PipelineDecoder

        settings = STATE.settings()
        dossier_re = re.compile(settings.checkin.dossier_pattern)
        dossier_fmt = DossierFormat.from_settings(settings.checkin)
        decoder = PipelineDecoder(budget_ms=settings.checkin.decode_budget_ms)
        failed = False
        for path in images:
            doc: dict[str, Any]
            image = imaging.load_image(str(path))
            if image is None:
                failed = True
                doc = {"image": str(path), "error": "not an image or not readable", "codes": []}
            else:
                found = decoder.decode(image)
                doc = {"image": str(path), "codes": [
                    {"decoder": c.decoder, **describe(c.text, date.today(), dossier_re, raw, dossier_fmt)}
                    for c in found]}
            if as_json:
                emit_json(doc)
            elif "error" in doc:
                typer.echo(f"{path}: {doc['error']}", err=True)
            else:
                parts = [" ".join(f"{k}={v}" for k, v in c.items()) for c in doc["codes"]]
                say(f"{path}: " + ("; ".join(parts) if parts else "no code"))
        if failed:
            raise typer.Exit(1)

    @qr.command("scan")
    def scan(source: Annotated[str | None, typer.Option("--source", help="Camera source (default: camera.source).")]
             = None,
             seconds: Annotated[float, typer.Option("--seconds", min=0, help="Stop after this long (0: until ^C).")]
             = 0,
             as_json: JsonOpt = False) -> None:
        """Run the scanner on a camera source; print each check-in decision (JSON lines with --json)."""
        from agent.checkin.runtime import scan_source

        core = STATE.core()

        def show(doc: dict[str, object]) -> None:
            if as_json:
                emit_json(doc)
            else:
                mark = "✓" if doc["accepted"] else "✗"
                say(f"{mark} {doc['kind']}: {doc['message']}")

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(scan_source(core, source or core.settings.camera.source, show, seconds))

    token = typer.Typer(help="Mã hẹn thử (công cụ cho nhà phát triển).", no_args_is_help=True)
    qr.add_typer(token, name="token")

    @token.command("keygen")
    def keygen(out: Annotated[Path, typer.Argument(help="Where to write the private key (PEM, mode 0600).")],
               as_json: JsonOpt = False) -> None:
        """Make an Ed25519 key pair for test appointment tokens; prints the public key for settings."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from agent.checkin.appointment import public_key_text

        if out.exists():
            raise InvalidInput(f"{out} exists; not overwriting a key")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        out.touch(mode=0o600)
        out.write_bytes(pem)
        public = public_key_text(key)
        emit_json({"private_key": str(out), "public_key": public}) if as_json else say(public)

    @token.command("issue")
    def issue(key_file: Annotated[Path, typer.Option("--key", help="Private key PEM from `keygen`.")],
              booking: Annotated[str, typer.Option("--booking")],
              service: Annotated[str, typer.Option("--service")],
              day: Annotated[str, typer.Option("--date", help="YYYY-MM-DD (local).")],
              slot: Annotated[str, typer.Option("--slot", help="HH:MM (local).")],
              key_id: Annotated[str, typer.Option("--key-id")] = "test",
              ward: Annotated[str | None, typer.Option("--ward", help="Default: this kiosk's ward.")] = None,
              minutes: Annotated[int, typer.Option("--minutes")] = 30) -> None:
        """Print a signed appointment token (put it in a QR code to test check-in)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from pydantic import ValidationError

        from agent.checkin.appointment import issue_token

        try:
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot load private key {key_file}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput(f"{key_file} is not an Ed25519 key")
        try:
            text = issue_token(key, key_id, booking, ward or STATE.settings().device.ward, service,
                               date.fromisoformat(day), slot, minutes)
        except (ValueError, ValidationError) as exc:
            raise InvalidInput(f"bad token field: {exc}".splitlines()[0]) from exc
        say(text)
