"""`kiosk config check|show`."""

from __future__ import annotations

import json

import typer

from agent.cli.output import JsonOpt, emit_json, say
from agent.cli.state import STATE
from agent.errors import ConfigError
from agent.ops.config_check import problems as deeper_problems
from agent.settings import SettingsProblems, redact_url


def register(app: typer.Typer) -> None:
    config = typer.Typer(help="Kiểm tra và xem cấu hình.", no_args_is_help=True)
    app.add_typer(config, name="config")

    @config.command("check")
    def check(as_json: JsonOpt = False) -> None:
        """Validate the config file, environment and service catalogue; list every problem."""
        problems: list[str] = []
        source = str(STATE.config or "defaults")
        try:
            settings = STATE.settings()
            source = str(settings.config_file or "defaults")
            problems = deeper_problems(settings)
        except SettingsProblems as exc:
            problems = exc.problems
        except ConfigError as exc:  # e.g. a secret file that cannot be read
            problems = [exc.message]
        if as_json:
            emit_json({"ok": not problems, "source": source, "problems": problems})
        else:
            for line in problems:
                typer.echo(line, err=True)
            if not problems:
                say(f"OK: {source}")
        if problems:
            raise typer.Exit(1)

    @config.command("show")
    def show(as_json: JsonOpt = False) -> None:
        """The effective settings (secrets hidden)."""
        settings = STATE.settings()
        doc = json.loads(redact_url(settings.model_dump_json()))  # SecretStr fields are masked by pydantic
        doc["_resolved"] = {"config_file": str(settings.config_file) if settings.config_file else None,
                            "data_dir": str(settings.data_dir()), "db": str(settings.db_path()),
                            "catalogue": str(settings.catalogue_path())}
        if as_json:
            emit_json(doc)
            return
        for section, values in doc.items():
            say(f"[{section}]")
            for key, value in values.items():
                say(f"{key} = {json.dumps(value, ensure_ascii=False)}")

