"""`kiosk run`: the daemon."""

from __future__ import annotations

import asyncio

import typer

from agent import logsetup
from agent.cli.state import STATE


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run() -> None:
        """Run the agent (queue, screens, sync, devices) until SIGTERM/SIGINT."""
        from agent.app import run_agent  # heavy imports only for the daemon

        logsetup.as_daemon()
        asyncio.run(run_agent(STATE.settings()))
