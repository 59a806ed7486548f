"""How the CLI talks: JSON for scripts, short Vietnamese lines for people, one line per error."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    typer.echo(text)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one readable line on stderr; the caller raises the returned Exit."""
    typer.echo(f"kiosk: {message}", err=True)
    return typer.Exit(code)


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
