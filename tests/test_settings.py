"""Settings: file, environment precedence, secrets from files, unknown keys, the documented example."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.errors import ConfigError
from agent.settings import Settings, SettingsProblems, load_settings
from tests.conftest import ROOT

EXAMPLE = ROOT / "config" / "kiosk.example.toml"


def test_example_documents_every_setting() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    text = EXAMPLE.read_text(encoding="utf-8")
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        assert f"[{section}]" in text, section
        for key in model.model_fields:
            assert key in raw.get(section, {}) or f"# {key} =" in text, f"{section}.{key} not documented"
    load_settings(EXAMPLE)  # and it is valid


def test_demo_config_is_valid() -> None:
    s = load_settings(ROOT / "config" / "kiosk.demo.toml")
    assert s.queue.enforce_hours is False and s.catalogue_path().is_file()


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('[device]\nkiosk = "from-file"\n[mqtt]\nurl = "mqtt://file:1883"\n', encoding="utf-8")
    monkeypatch.setenv("KIOSK_MQTT__URL", "mqtts://env:8883")
    s = load_settings(cfg)
    assert s.device.kiosk == "from-file" and s.mqtt.url == "mqtts://env:8883"
    monkeypatch.setenv("KIOSK_CONFIG", str(cfg))
    assert load_settings().device.kiosk == "from-file"


def test_numeric_choices_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment values are text; numeric choices must still match (the printer issue's own example)."""
    monkeypatch.setenv("KIOSK_PRINTER__ENABLED", "true")
    monkeypatch.setenv("KIOSK_PRINTER__DEVICE", "tcp://127.0.0.1:9100")
    monkeypatch.setenv("KIOSK_PRINTER__PAPER_WIDTH_MM", "58")
    monkeypatch.setenv("KIOSK_WEB__RATING_LEVELS", "3")
    s = load_settings()
    assert s.printer.enabled and s.printer.paper_width_mm == 58 and s.web.rating_levels == 3
    monkeypatch.setenv("KIOSK_PRINTER__PAPER_WIDTH_MM", "60")
    with pytest.raises(ConfigError, match="paper_width_mm"):
        load_settings()


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "etc" / "k.toml"
    cfg.parent.mkdir()
    cfg.write_text("", encoding="utf-8")
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert load_settings(cfg).data_dir() == cfg.parent / "var"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert load_settings(cfg).data_dir() == tmp_path / "state"
    monkeypatch.setenv("KIOSK_STORAGE__DATA_DIR", str(tmp_path / "explicit"))
    assert load_settings(cfg).data_dir() == tmp_path / "explicit"


def test_secret_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("hunter2\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s = load_settings(mqtt={"password_file": "mqtt-password"})
    assert s.mqtt_password() == "hunter2"
    assert "hunter2" not in s.model_dump_json()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError) as err:
        load_settings(mqtt={"password_file": "mqtt-password"}).mqtt_password()
    assert "mqtt-password" in str(err.value)


@pytest.mark.parametrize(("text", "key"), [
    ('[queue]\nprioriti_mode = "strict"\n', "queue.prioriti_mode"),
    ('[device]\nward = 26740\n', "device.ward"),
    ('[storage]\nsynchronous = "SOMETIMES"\n', "storage.synchronous"),
    ('[mqtt]\nurl = "http://x"\n', "mqtt.url"),
    ('[web]\nport = 70000\n', "web.port"),
])
def test_bad_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsProblems) as err:
        load_settings(cfg)
    assert [p.split(":")[0] for p in err.value.problems] == [key]


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsProblems, match="not found"):
        load_settings(tmp_path / "nope.toml")
