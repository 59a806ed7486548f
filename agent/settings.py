"""The settings tree: one TOML file, `KIOSK_*` environment overrides, secrets from files.

Precedence (highest first): explicit overrides, environment (`KIOSK_MQTT__URL`), the TOML file
(`--config` / `KIOSK_CONFIG`), defaults. Every model forbids unknown keys, so a typo is an error
with its key path rather than a silently ignored setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOGUE = REPO_ROOT / "config" / "services.toml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DeviceSettings(Section):
    ward: str = Field("26734", pattern=r"^\d{5}$", description="Official ward/commune code (5 digits).")
    kiosk: str = Field("demo-01", pattern=r"^[a-z0-9-]{1,32}$", description="Device id given at provisioning.")
    name: str = Field("Ki-ốt trình diễn", description="Human name of this terminal, shown to ops.")


class StorageSettings(Section):
    data_dir: Path | None = Field(
        None, description="Folder of the SQLite file; default $STATE_DIRECTORY, else var/ beside the config."
    )
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        "FULL", description="SQLite synchronous level; FULL survives power loss after each commit."
    )
    busy_timeout_ms: int = Field(5000, ge=0, le=120_000, description="How long a writer waits for the lock.")
    event_retention_days: float = Field(
        30, gt=0, description="Acknowledged events older than this are pruned; unacknowledged never are."
    )


class QueueSettings(Section):
    catalogue: Path = Field(DEFAULT_CATALOGUE, description="Service catalogue TOML (relative to the config file).")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="Office time zone: numbering day and opening hours.")
    priority_mode: Literal["strict", "interleaved"] = Field(
        "interleaved", description="strict: priority tickets always first; interleaved: one every N calls."
    )
    priority_every: int = Field(3, ge=2, le=20, description="Interleaved mode: one priority ticket every N calls.")
    auto_no_show_recalls: int = Field(3, ge=0, le=20, description="A recall past this many marks no-show (0: off).")
    auto_no_show_minutes: float = Field(
        10, ge=0, description="A called ticket not started after this many minutes is a no-show (0: off)."
    )
    estimate_window: int = Field(20, ge=1, le=500, description="Recent services used to estimate waiting time.")
    enforce_hours: bool = Field(True, description="Refuse tickets outside the catalogue's opening hours.")


class MqttSettings(Section):
    url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL: mqtt://host:port or mqtts://host:port.")
    root: str = Field("wards", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="Topic root.")
    enabled: bool = Field(True, description="Sync to the broker at all.")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    keepalive: int = Field(30, ge=5, le=600, description="Keepalive seconds; a dead link is noticed in 1.5x.")
    username: str | None = Field(None, description="Broker user name (default: the kiosk id with TLS certs).")
    password: SecretStr | None = Field(None, description="Broker password (prefer password_file).")
    password_file: Path | None = Field(
        None, description="File holding the password; relative to $CREDENTIALS_DIRECTORY."
    )
    ca_file: Path | None = Field(None, description="CA bundle for mqtts://.")
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mqtts://.")
    key_file: Path | None = Field(None, description="Client key (PEM); relative to $CREDENTIALS_DIRECTORY.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("mqtt://", "mqtts://", "tcp://", "ssl://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return value


class WebSettings(Section):
    host: str = Field("127.0.0.1", description="Address of the local HTTP server (the LAN address in production).")
    port: int = Field(8080, ge=0, le=65535, description="Port of the local HTTP server (0: any free port).")


class TelemetrySettings(Section):
    interval: float = Field(30, ge=1, le=3600, description="Seconds between telemetry messages.")


class Settings(BaseSettings):
    """The whole configuration of one kiosk."""

    model_config = SettingsConfigDict(
        env_prefix="KIOSK_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    device: DeviceSettings = DeviceSettings()
    storage: StorageSettings = StorageSettings()
    queue: QueueSettings = QueueSettings()
    mqtt: MqttSettings = MqttSettings()
    web: WebSettings = WebSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    # Where the settings came from; not a setting itself.
    _config_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file") is not None:
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @property
    def config_file(self) -> Path | None:
        return self._config_file

    def data_dir(self) -> Path:
        if self.storage.data_dir is not None:
            return self._relative(self.storage.data_dir)
        state = os.environ.get("STATE_DIRECTORY")
        if state:
            return Path(state.split(":")[0])
        if self._config_file is not None:
            return self._config_file.parent / "var"
        return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "ward-kiosk"

    def db_path(self) -> Path:
        return self.data_dir() / "kiosk.db"

    def catalogue_path(self) -> Path:
        return self._relative(self.queue.catalogue)

    def _relative(self, path: Path) -> Path:
        if path.is_absolute() or self._config_file is None:
            return path
        return self._config_file.parent / path

    def mqtt_password(self) -> str | None:
        if self.mqtt.password is not None:
            return self.mqtt.password.get_secret_value()
        if self.mqtt.password_file is not None:
            return read_secret(self.mqtt.password_file).strip()
        return None


def read_secret(path: Path) -> str:
    """Read a secret file; relative names are looked up in systemd's $CREDENTIALS_DIRECTORY."""
    if not path.is_absolute():
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds:
            path = Path(creds) / path
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc


def format_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem, each starting with its dotted key path."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
        lines.append(f"{path}: {msg}{shown}")
    return lines


class SettingsProblems(ConfigError):
    """All the problems of a configuration, for `kiosk config check`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Load and validate settings; raises SettingsProblems listing every problem found."""
    if config_file is None and os.environ.get("KIOSK_CONFIG"):
        config_file = os.environ["KIOSK_CONFIG"]
    path = Path(config_file).resolve() if config_file is not None else None
    source = str(path) if path else "settings"
    if path is not None:
        if not path.is_file():
            raise SettingsProblems(source, ["config file not found"])
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsProblems(source, [f"not valid TOML: {exc}"]) from exc
        except OSError as exc:
            raise SettingsProblems(source, [f"cannot read: {exc.strerror}"]) from exc
    cls: type[Settings] = Settings
    if path is not None:
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})
        cls = type("FileSettings", (Settings,), {"model_config": config})
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        raise SettingsProblems(source, format_validation_error(exc)) from exc
    settings._config_file = path
    return settings
