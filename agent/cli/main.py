"""`kiosk`: the technicians' and scripts' command line. Thin: every command calls the domain.

Exit codes: 0 success, 1 a user error (one readable line on stderr), 2 bad usage.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent import logsetup
from agent.cli import (
    call_cmds,
    central_cmds,
    config_cmds,
    events_cmds,
    fleet_cmds,
    ops_cmds,
    qr_cmds,
    queue_cmds,
    release_cmds,
    run_cmd,
)
from agent.cli.state import STATE
from agent.errors import KioskError
from central import cli as central_cli

app = typer.Typer(name="kiosk", help="ward-kiosk: hàng đợi, check-in QR, gọi số, đồng bộ MQTT.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _root(
    config: Annotated[Path | None, typer.Option("--config", "-c", envvar="KIOSK_CONFIG",
                                                help="Config TOML file (env KIOSK_CONFIG).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at debug level to stderr.")] = False,
) -> None:
    STATE.config = config
    logsetup.configure(verbose)


config_cmds.register(app)
queue_cmds.register(app)
events_cmds.register(app)
qr_cmds.register(app)
call_cmds.register(app)
ops_cmds.register(app)
run_cmd.register(app)
central_cmds.register(app)
fleet_cmds.register(app)
release_cmds.register(app)
central_cli.register(app)  # central web's serve, user and report, in the `central` group


def main() -> None:
    """Entry point: typer handles usage errors (exit 2); our errors become one line and exit 1."""
    code = 0
    try:
        app(prog_name="kiosk")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KioskError as exc:
        typer.echo(f"kiosk: {exc.message}", err=True)
        code = 1
    except KeyboardInterrupt:
        typer.echo("kiosk: interrupted", err=True)
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # the top of the program: a bug, so its traceback always, at ERROR
        logging.getLogger("agent").error("unexpected error", exc_info=True)
        typer.echo(f"kiosk: internal error: {type(exc).__name__}: {exc}", err=True)
        code = 1
    finally:
        STATE.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
