"""Lazy access to settings and the store for CLI commands (so `--help` does no I/O)."""

from __future__ import annotations

from pathlib import Path

from agent.core import Core
from agent.settings import Settings, load_settings


class CliState:
    def __init__(self) -> None:
        self.config: Path | None = None
        self._settings: Settings | None = None
        self._core: Core | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def core(self) -> Core:
        if self._core is None:
            self._core = Core.open(self.settings())
        return self._core

    def close(self) -> None:
        if self._core is not None:
            self._core.close()


STATE = CliState()
