"""The settings tree: one TOML file, `KIOSK_*` environment overrides, secrets from files.

Precedence (highest first): explicit overrides, environment (`KIOSK_MQTT__URL`), the TOML file
(`--config` / `KIOSK_CONFIG`), defaults. Every model forbids unknown keys, so a typo is an error
with its key path rather than a silently ignored setting.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.errors import ConfigError
from devices.printer import parse_device


def _digits_to_int(value: Any) -> Any:
    """Environment variables are text: `KIOSK_PRINTER__PAPER_WIDTH_MM=80` must match the choice 80."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


IntChoice = BeforeValidator(_digits_to_int)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOGUE = REPO_ROOT / "config" / "services.toml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DeviceSettings(Section):
    ward: str = Field("26740", pattern=r"^\d{5}$", description="Official ward/commune code (5 digits).")
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
    clock_tolerance_seconds: float = Field(
        120, ge=0, le=3600,
        description="Refuse tickets while the clock is more than this behind the event log's latest time.",
    )


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
    inflight_window: int = Field(
        100, ge=1, le=65535, description="Events published but not yet PUBACKed, at most (the outbox window)."
    )
    publish_timeout: float = Field(15, gt=0, le=600, description="Seconds to wait for a PUBACK before reconnecting.")
    ack_timeout: float = Field(
        30, gt=0, le=86400, description="Re-send from ack + 1 when central's ack lags what was sent this long (s)."
    )
    ack_timeout_max: float = Field(
        600, gt=0, le=86400, description="The re-send wait doubles while central stays behind, up to this (s)."
    )
    reconnect_min: float = Field(0.5, gt=0, le=60, description="First reconnect delay (s); doubles, with jitter.")
    reconnect_max: float = Field(60, gt=0, le=3600, description="Longest reconnect delay (s).")
    command_max_bytes: int = Field(16384, ge=256, le=1_048_576, description="Larger command bodies are refused.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("mqtt://", "mqtts://", "tcp://", "ssl://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return value


class WebSettings(Section):
    host: str = Field("127.0.0.1", description="Address of the local HTTP server (the LAN address in production).")
    port: int = Field(8080, ge=0, le=65535, description="Port of the local HTTP server (0: any free port).")
    counter_pins: dict[int, SecretStr] = Field(
        default_factory=dict, description="PIN or token per counter number (prefer counter_pins_file)."
    )
    counter_pins_file: Path | None = Field(
        None, description="File of `counter = PIN` lines; relative to $CREDENTIALS_DIRECTORY."
    )
    rating_levels: Annotated[Literal[3, 4, 5], IntChoice] = Field(
        5, description="Levels of the satisfaction rating on the kiosk.")
    idle_reset_seconds: int = Field(
        60, ge=10, le=3600, description="The kiosk screen returns to the start after this many idle seconds."
    )
    central_public_url: str = Field(
        "", pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$", max_length=200,
        description="Central's public base URL: the ticket QR becomes BASE/t/<token> (mobile ticket); "
                    "empty: the plain WKT1: payload.")
    max_body_bytes: int = Field(16_384, ge=1024, le=1_048_576, description="Largest accepted request body.")
    board_last_calls: int = Field(8, ge=1, le=50, description="Recent calls listed on the display board.")
    screen_addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Client addresses trusted as the kiosk screen (the box's own Chromium) for resident actions.",
    )
    screen_token_file: Path | None = Field(
        None, description="File holding the token a kiosk screen elsewhere on the LAN sends (X-Screen-Token); "
        "relative to $CREDENTIALS_DIRECTORY.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the screens use besides IP addresses and localhost (others: DNS rebinding, refused).",
    )
    resident_burst: int = Field(20, ge=1, le=10_000, description="Resident actions a client may make at once.")
    resident_per_minute: float = Field(30, gt=0, le=10_000, description="… refilled at this rate per client.")
    live_max_clients: int = Field(100, ge=1, le=10_000, description="Live streams open at once (others: 503).")
    live_max_per_client: int = Field(8, ge=1, le=1000, description="Live streams open at once per client address.")
    counter_session_minutes: int = Field(
        720, ge=1, le=10_080, description="A counter login (session token) lasts this long."
    )


_QUIET = r"^([01]\d|2[0-3]):[0-5]\d$"


class VoiceSettings(Section):
    enabled: bool = Field(True, description="Announce calls on the hall loudspeaker at all.")
    sink: str = Field(
        "sounddevice", description="Where call-outs play: sounddevice[:DEVICE], wav:DIR, auto:DIR or null."
    )
    wav_keep_files: int = Field(500, ge=1, description="wav:/auto: sinks keep at most this many call-out WAVs.")
    wav_keep_mb: float = Field(100, gt=0, description="…and at most this many MB of them (oldest removed first).")
    volume: float = Field(0.8, ge=0, le=1, description="Gain of the whole call-out, 0..1.")
    repeat: int = Field(2, ge=1, le=5, description="How many times the sentence is said.")
    gap_seconds: float = Field(0.8, ge=0, le=10, description="Silence between the repeats.")
    chime: bool = Field(True, description="Play a ding-dong before the sentence.")
    quiet_start: str | None = Field(None, pattern=_QUIET, description="Start of quiet hours, local HH:MM.")
    quiet_end: str | None = Field(None, pattern=_QUIET, description="End of quiet hours, local HH:MM (exclusive).")
    espeak_voice: str = Field("vi", description="espeak-ng voice: vi, vi-vn-x-south, vi-vn-x-central.")
    espeak_rate: int = Field(135, ge=80, le=300, description="espeak-ng speed in words per minute.")
    number_style: Literal["northern", "southern"] = Field(
        "northern", description="northern: nghìn/linh; southern: ngàn/lẻ."
    )
    ticket_reading: Literal["number", "digits"] = Field(
        "number", description="Read A012 as a whole number (a mười hai) or digit by digit."
    )
    clip_pack: Path | None = Field(None, description="Folder of a ward's own recordings (see README).")
    cache_dir: Path | None = Field(None, description="Speech cache; default voice-cache/ in the data folder.")


class TelemetrySettings(Section):
    interval: float = Field(30, ge=1, le=3600, description="Seconds between telemetry messages.")
    retain: bool = Field(
        True, description="Retain the last telemetry so `kiosk fleet status` sees every kiosk's health at once."
    )
    disk_low_mb: float = Field(500, ge=0, description="Telemetry flags disk_low below this many MB free.")
    disk_reserve_mb: float = Field(
        50, ge=0, description="Below this many MB free, ratings, feedback and reprints are refused: tickets first."
    )


class CameraSettings(Section):
    enabled: bool = Field(True, description="Open the camera for QR check-in (and video calls).")
    source: str = Field(
        "demo:", description="v4l2:/dev/video0 | v4l2:0 | rtsp://… | http://… | file:PATH[?loop=1] | images:DIR | demo:"
    )


class CheckinSettings(Section):
    appointment_keys: dict[str, str] = Field(
        default_factory=dict, description="Booking system's Ed25519 public keys (base64url), by key id."
    )
    early_minutes: float = Field(60, ge=0, le=1440, description="An appointment is accepted this early.")
    late_minutes: float = Field(30, ge=0, le=1440, description="… and this long after its slot ends.")
    appointment_priority: str = Field("hen-truoc", description="Priority class given by a valid appointment.")
    dossier_pattern: str = Field(
        r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}-\d{6}-\d{4}$", description="Regular expression of a dossier code."
    )
    dossier_service: str = Field("tra-ket-qua", description="Service a dossier receipt takes a ticket for.")
    dossier_delimiter: str = Field("|", max_length=4, description="Field separator of a dossier receipt QR.")
    dossier_field: int | None = Field(
        None, ge=0, le=50, description="0-based field holding the dossier code; unset: any matching field."
    )
    dossier_keys: list[str] = Field(
        default_factory=lambda: ["maHoSo", "MaHoSo", "mahoso", "ma_ho_so", "soHoSo", "dossier", "code"],
        description="Keys of the dossier code in key=value, JSON or URL-query receipt QR payloads.",
    )
    elderly_age: int = Field(60, ge=0, le=120, description="An ID card of this age or older suggests priority.")
    elderly_priority: str = Field("cao-tuoi", description="The priority class suggested for elderly residents.")
    identity_ttl_seconds: float = Field(120, gt=0, description="An ID-card screen session lasts at most this.")
    retention_days: float = Field(30, gt=0, description="Check-in records are deleted after this many days.")
    personal_retention_days: float = Field(
        30, gt=0, description="A ticket's link to an ID card and a feedback phone are erased after this many days."
    )
    store_masked_name: bool = Field(False, description="Keep the masked name (N. V. An) in check-in records.")
    key_file: Path = Field(Path("privacy.key"), description=(
        "Per-device ID-card hashing key, 32+ bytes; relative to $CREDENTIALS_DIRECTORY (else credentials/ beside "
        "the config file). Never inside the data dir."))
    scan_rate: float = Field(4, gt=0, le=30, description="Frames per second the scanner decodes.")
    debounce_seconds: float = Field(5, gt=0, le=600, description="A code seen again within this is the same scan.")
    decode_budget_ms: float = Field(60, gt=0, le=1000, description="Per-frame time budget of the decoder.")

    @field_validator("dossier_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class IceServer(Section):
    urls: list[str] = Field(
        min_length=1,
        description="stun:host:port, turn:host:port[?transport=udp|tcp] or turns:host:port?transport=tcp (TLS).",
    )
    username: str | None = Field(None, description="TURN user name.")
    credential: SecretStr | None = Field(None, description="TURN password (prefer credential_file).")
    credential_file: Path | None = Field(
        None, description="File holding the TURN password; relative to $CREDENTIALS_DIRECTORY."
    )
    secret_file: Path | None = Field(
        None, description="TURN REST API shared secret (coturn static-auth-secret): credentials are made per "
        "call (username expiry:callid) and sent to the officer in the offer; relative to $CREDENTIALS_DIRECTORY.",
    )

    @field_validator("urls")
    @classmethod
    def _ice_schemes(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"{url!r} must start with stun:, turn: or turns:")
        return value

    def shared_secret(self) -> str | None:
        return None if self.secret_file is None else read_secret(self.secret_file).strip()

    def password(self) -> str | None:
        if self.credential is not None:
            return self.credential.get_secret_value()
        if self.credential_file is not None:
            return read_secret(self.credential_file).strip()
        return None


class CallSettings(Section):
    enabled: bool = Field(True, description="Offer video calls to an officer from the kiosk.")
    ring_timeout_seconds: float = Field(45, ge=1, le=600, description="No accept within this: missed call.")
    connect_timeout_seconds: float = Field(15, ge=2, le=120, description="Accept to media flowing, at most.")
    max_minutes: float = Field(30, gt=0, le=240, description="A call is ended after this long.")
    heartbeat_interval_seconds: float = Field(1.0, ge=0.2, le=10, description="Heartbeat period on the data channel.")
    heartbeat_timeout_seconds: float = Field(
        3.5, ge=0.5, le=60, description="The peer is dead after this long without a heartbeat (or any message)."
    )
    ice_servers: list[IceServer] = Field(default_factory=list, description="STUN/TURN servers; none by default.")
    ice_transport_policy: Literal["all", "relay"] = Field("all", description="relay: only TURN-relayed media.")
    host_addresses: list[str] = Field(
        default_factory=list,
        description="The only local addresses offered as host candidates (empty: every address but loopback).",
    )
    max_width: int = Field(640, ge=160, le=1920, description="Video sent is scaled down to fit this width.")
    max_height: int = Field(480, ge=120, le=1080, description="… and this height.")
    max_fps: float = Field(15, gt=0, le=30, description="Video frames sent per second, at most.")
    microphone: str = Field("sounddevice", description="Call microphone: sounddevice[:DEVICE], file:PATH.wav, tone:HZ.")
    speaker: str = Field(
        "sounddevice", description="Officer's voice plays on: sounddevice[:DEVICE], wav:DIR, auto:DIR, null."
    )
    officer_broker_url: str | None = Field(
        None, description="MQTT over WebSockets URL the officer console connects to (ws:// or wss://)."
    )

    @field_validator("host_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.ip_address(address)  # ValueError names the bad address
        return value

    @model_validator(mode="after")
    def _heartbeat(self) -> CallSettings:
        if self.heartbeat_timeout_seconds < 2 * self.heartbeat_interval_seconds:
            raise ValueError("heartbeat_timeout_seconds must be at least twice heartbeat_interval_seconds")
        return self


class PrinterSettings(Section):
    """The ticket printer (`agent.printing`): ESC/POS raster over TCP, USB, serial, or PNG files."""

    enabled: bool = Field(False, description="Print a paper ticket for every ticket issued at the kiosk.")
    device: str = Field(
        "file:var/tickets",
        description="tcp://HOST:PORT, usb:/dev/usb/lp0, usb:VID:PID, serial:/dev/ttyUSB0?baud=N or file:DIR.",
    )
    paper_width_mm: Annotated[Literal[58, 80], IntChoice] = Field(80, description="Paper roll width: 58 or 80 mm.")
    dots_per_line: int | None = Field(
        None, ge=128, le=1024, description="Printable dots per line; default 384 (58 mm) or 576 (80 mm)."
    )
    cut: bool = Field(True, description="Partial cut after each ticket (printers without a cutter: false).")
    logo: Path | None = Field(None, description="Image printed at the top (PNG/BMP; relative to the config file).")
    footer: str | None = Field(
        None, max_length=300, description="Last lines of the ticket; default: a line on rating and feedback."
    )
    queue_size: int = Field(32, ge=1, le=1000, description="Tickets held in memory for the printer, at most.")
    poll_seconds: float = Field(2.0, ge=0.2, le=60, description="How often the printer's status is asked (DLE EOT).")
    status_timeout_seconds: float = Field(1.0, gt=0, le=10, description="A status reply later than this: no_response.")
    retry_max_seconds: float = Field(10, ge=0.5, le=300, description="Longest wait between two tries of a ticket.")
    stale_after_seconds: float = Field(
        600, ge=10, le=86400, description="A ticket not printed this long after it was issued is no longer printed."
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        parse_device(value)  # ValueError names what is wrong
        return value

    @field_validator("dots_per_line")
    @classmethod
    def _dots(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError("must be a multiple of 8 (the raster is sent in whole bytes)")
        return value

    def width_dots(self) -> int:
        if self.dots_per_line is not None:
            return self.dots_per_line
        return 384 if self.paper_width_mm == 58 else 576


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
    voice: VoiceSettings = VoiceSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    camera: CameraSettings = CameraSettings()
    checkin: CheckinSettings = CheckinSettings()

    call: CallSettings = CallSettings()
    printer: PrinterSettings = PrinterSettings()

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
        return self._data_dir().resolve()

    def _data_dir(self) -> Path:
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

    def config_path(self, path: Path) -> Path:
        """A path from the settings: relative ones are relative to the config file's folder."""
        return self._relative(path)

    def secret_path(self, path: Path) -> Path:
        """A secret file: relative names live in $CREDENTIALS_DIRECTORY (systemd) or, outside systemd,
        in the `credentials/` folder beside the config file that `kiosk provision` writes."""
        return secret_path(path, self._config_file.parent if self._config_file else None)

    def mqtt_password(self) -> str | None:
        if self.mqtt.password is not None:
            return self.mqtt.password.get_secret_value()
        if self.mqtt.password_file is not None:
            return read_secret(self.secret_path(self.mqtt.password_file)).strip() or None
        return None


    def screen_token(self) -> str | None:
        """The kiosk screen token from `web.screen_token_file`, if set."""
        if self.web.screen_token_file is None:
            return None
        return read_secret(self.secret_path(self.web.screen_token_file)).strip() or None

    def counter_pins(self) -> dict[int, str]:
        """Counter PINs/tokens from `web.counter_pins` and `web.counter_pins_file` (the file wins)."""
        pins = {n: secret.get_secret_value() for n, secret in self.web.counter_pins.items()}
        if self.web.counter_pins_file is not None:
            path = self.secret_path(self.web.counter_pins_file)
            pins.update(parse_counter_pins(read_secret(path), str(path)))
        return pins


def parse_counter_pins(text: str, source: str) -> dict[int, str]:
    """`counter = PIN` per line; blank lines and # comments are skipped."""
    pins: dict[int, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        number, sep, pin = (part.strip() for part in line.partition("="))
        if not sep or not number.isdigit() or not pin:
            raise ConfigError(f"{source}:{lineno}: expected `counter = PIN`")
        pins[int(number)] = pin.strip('"')
    return pins


def secret_path(path: Path, config_dir: Path | None = None) -> Path:
    if path.is_absolute():
        return path
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        return Path(creds) / path
    if config_dir is not None:
        return config_dir / "credentials" / path
    return path


def read_secret(path: Path) -> str:
    """Read a secret file; relative names are looked up in systemd's $CREDENTIALS_DIRECTORY."""
    path = secret_path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s\"']*):[^@/\s\"']*@")


def redact_url(text: str) -> str:
    """`mqtts://user:secret@host` → `mqtts://user:***@host`: a password in a URL is still a password."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", text)


def _is_secret(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> bool:
    """Whether the setting at `loc` is (or is inside) a SecretStr field: its value is never shown."""
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if "SecretStr" in str(annotation):
            return True
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return False


def format_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem, each starting with its dotted key path; secrets' values are never echoed
    (a PIN typed without quotes is an integer, and its error would print it)."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        value = err.get("input")
        hidden = isinstance(value, dict | list) or value is None or _is_secret(model or Settings, err["loc"])
        shown = "" if hidden else f" (got {redact_url(repr(value))})"
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
