"""The real `kiosk` command: JSON output, exit codes, one-line errors that write nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.store.db import Database
from tests.conftest import KIOSK, run_kiosk


def event_count(env: dict[str, str]) -> int:
    db_path = Path(env["KIOSK_STORAGE__DATA_DIR"]) / "kiosk.db"
    if not db_path.exists():
        return 0
    with Database(db_path) as db:
        return int(db.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiosk: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_take_and_serve_through_cli(kiosk_env: dict[str, str]) -> None:
    t = json.loads(run_kiosk(kiosk_env, "ticket", "take", "khai-sinh", "--priority", "cao-tuoi", "--json",
                             check=True).stdout)
    assert t["number"] == "A001" and t["priority"] == "cao-tuoi" and t["service_name"] == "Đăng ký khai sinh"
    res = json.loads(run_kiosk(kiosk_env, "counter", "next", "1", "--json", check=True).stdout)
    assert res["ticket"]["number"] == "A001" and res["ticket"]["state"] == "called"
    for action in ("recall", "start", "done"):
        run_kiosk(kiosk_env, "counter", action, "1", check=True)
    shown = json.loads(run_kiosk(kiosk_env, "ticket", "show", "A001", "--json", check=True).stdout)
    assert shown["state"] == "done"
    evs = [json.loads(x) for x in run_kiosk(kiosk_env, "events", "--json", check=True).stdout.splitlines()]
    assert [e["type"] for e in evs] == ["ticket.issued", "ticket.called", "ticket.recalled", "ticket.serving",
                                        "ticket.done"]
    assert [e["seq"] for e in evs] == [1, 2, 3, 4, 5]
    assert all(e["kiosk"] == "demo-01" and e["ward"] == "26740" for e in evs)
    since = run_kiosk(kiosk_env, "events", "--since", "3", "--json", check=True).stdout.splitlines()
    assert [json.loads(x)["seq"] for x in since] == [4, 5]


def test_human_output_is_vietnamese(kiosk_env: dict[str, str]) -> None:
    out = run_kiosk(kiosk_env, "ticket", "take", "ket-hon", check=True).stdout
    assert "A001" in out and "Đăng ký kết hôn" in out and "phút" in out
    services = run_kiosk(kiosk_env, "services", check=True).stdout
    assert "Hộ tịch" in services and "Chứng thực" in services


def test_services_json_has_codes(kiosk_env: dict[str, str]) -> None:
    doc = json.loads(run_kiosk(kiosk_env, "services", "--json", check=True).stdout)
    codes = [s["code"] for g in doc["groups"] for s in g["services"]]
    assert "khai-sinh" in codes and "tra-ket-qua" in codes
    assert {p["code"] for p in doc["priority_classes"]} >= {"cao-tuoi", "khuyet-tat", "mang-thai"}


@pytest.mark.parametrize(("args", "needle"), [
    (("ticket", "take", "khong-co-dich-vu"), "unknown service"),
    (("ticket", "take", "khai-sinh", "--priority", "vip"), "unknown priority"),
    (("counter", "next", "42"), "unknown counter"),
    (("counter", "done", "1"), "Quầy 1"),
    (("counter", "transfer", "1", "khai-sinh"), "Quầy 1"),
    (("counter", "call", "1", "A999", "--reason", "thử"), "A999"),
    (("ticket", "show", "Z001"), "Z001"),
])
def test_user_errors_exit_1_and_write_nothing(kiosk_env: dict[str, str], args: tuple[str, ...], needle: str) -> None:
    proc = run_kiosk(kiosk_env, *args)
    assert_one_line_error(proc, needle)
    assert event_count(kiosk_env) == 0


def test_wrong_counter_for_ticket(kiosk_env: dict[str, str]) -> None:
    run_kiosk(kiosk_env, "ticket", "take", "khai-sinh", check=True)
    before = event_count(kiosk_env)
    assert_one_line_error(run_kiosk(kiosk_env, "counter", "call", "6", "A001", "--reason", "gọi nhầm"),
                          "Quầy 6")
    assert event_count(kiosk_env) == before


def test_usage_errors_exit_2(kiosk_env: dict[str, str]) -> None:
    assert run_kiosk(kiosk_env, "counter", "nex", "1").returncode == 2
    assert run_kiosk(kiosk_env, "counter", "next", "abc").returncode == 2
    assert run_kiosk(kiosk_env, "ticket", "take").returncode == 2
    assert run_kiosk(kiosk_env, "counter", "call", "1", "A001").returncode == 2  # --reason missing


def test_corrupt_toml(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[device\nward = 1\n", encoding="utf-8")
    proc = run_kiosk(kiosk_env, "--config", str(bad), "ticket", "take", "khai-sinh")
    assert_one_line_error(proc, "not valid TOML", "line 1")
    assert event_count(kiosk_env) == 0


def test_config_check_lists_every_problem(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('[device]\nward = "123"\nkiosk = "Bad Id"\n[queue]\npriority_mode = "fifo"\nbogus = 1\n'
                   '[web]\nport = "eighty"\n[nonsense]\nx = 1\n', encoding="utf-8")
    proc = run_kiosk(kiosk_env, "--config", str(cfg), "config", "check")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    keys = sorted(line.split(":")[0] for line in lines)
    assert keys == ["device.kiosk", "device.ward", "nonsense", "queue.bogus", "queue.priority_mode", "web.port"]
    doc = json.loads(run_kiosk(kiosk_env, "--config", str(cfg), "config", "check", "--json").stdout)
    assert doc["ok"] is False and len(doc["problems"]) == 6
    # The same bad file makes any other command fail with one line and write nothing.
    assert_one_line_error(run_kiosk(kiosk_env, "--config", str(cfg), "ticket", "take", "khai-sinh"), "web.port")
    assert event_count(kiosk_env) == 0


def test_config_check_env_wrong_type(kiosk_env: dict[str, str]) -> None:
    env = {**kiosk_env, "KIOSK_QUEUE__PRIORITY_EVERY": "many", "KIOSK_MQTT__BOGUS": "1"}
    proc = run_kiosk(env, "config", "check")
    assert proc.returncode == 1
    assert {line.split(":")[0] for line in proc.stderr.splitlines()} == {"queue.priority_every", "mqtt.bogus"}


def test_config_check_ok_and_show(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('[device]\nward = "26740"\nkiosk = "tan-dinh-01"\n[mqtt]\npassword = "s3cret"\n', encoding="utf-8")
    assert run_kiosk(kiosk_env, "--config", str(cfg), "config", "check").returncode == 0
    shown = run_kiosk(kiosk_env, "--config", str(cfg), "config", "show", "--json", check=True).stdout
    doc = json.loads(shown)
    assert doc["device"]["kiosk"] == "tan-dinh-01" and "s3cret" not in shown


def test_broken_catalogue_reported(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    cat = tmp_path / "services.toml"
    cat.write_text('[office]\nname="x"\nshort_name="x"\n[office.hours]\n[[counters]]\nnumber=1\nname="Q1"\n'
                   '[[groups]]\ncode="g"\nname="G"\n[[groups.services]]\ncode="s"\nname="S"\nprefix="A"\n'
                   'counters=[7]\ndaily_cap=10\ntypical_minutes=5\n', encoding="utf-8")
    env = {**kiosk_env, "KIOSK_QUEUE__CATALOGUE": str(cat)}
    proc = run_kiosk(env, "config", "check")
    assert proc.returncode == 1 and "unknown counters [7]" in proc.stderr


def test_events_follow_streams_other_processes_writes(kiosk_env: dict[str, str]) -> None:
    run_kiosk(kiosk_env, "ticket", "take", "khai-sinh", check=True)
    follower = subprocess.Popen([*KIOSK, "events", "--follow", "--json"], env=kiosk_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["seq"] == 1
        run_kiosk(kiosk_env, "ticket", "take", "khai-sinh", check=True)
        second = json.loads(follower.stdout.readline())  # blocks until the follower prints it
        assert second["seq"] == 2 and second["data"]["number"] == "A002"
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


def test_config_check_sees_device_specs_keys_and_catalogue_codes(kiosk_env: dict[str, str]) -> None:
    env = {**kiosk_env, "KIOSK_CAMERA__SOURCE": "webcam0", "KIOSK_VOICE__SINK": "speakers",
           "KIOSK_CHECKIN__APPOINTMENT_KEYS": '{"2026a": "not-a-key"}', "KIOSK_CHECKIN__DOSSIER_SERVICE": "nope",
           "KIOSK_WEB__COUNTER_PINS": '{"42": "1234"}'}
    proc = run_kiosk(env, "config", "check")
    assert proc.returncode == 1
    keys = sorted(line.split(":")[0] for line in proc.stderr.strip().splitlines())
    assert keys == ["camera.source", "checkin.appointment_keys.2026a", "checkin.dossier_service",
                    "voice.sink", "web.counter_pins.42"]


def test_config_check_unreadable_secret(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    env = {**kiosk_env, "KIOSK_WEB__COUNTER_PINS_FILE": str(tmp_path / "missing-pins")}
    proc = run_kiosk(env, "config", "check")
    assert proc.returncode == 1 and "missing-pins" in proc.stderr and "Traceback" not in proc.stderr


def test_config_errors_never_echo_secrets(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    # A PIN typed without quotes is an integer: the error names the key, never the PIN.
    cfg.write_text('[mqtt]\npassword = 73915\n[web.counter_pins]\n1 = 48213\n[web]\nport = "eighty"\n',
                   encoding="utf-8")
    for args in (("config", "check"), ("config", "check", "--json"), ("ticket", "take", "khai-sinh")):
        proc = run_kiosk(kiosk_env, "--config", str(cfg), *args)
        assert proc.returncode == 1
        out = proc.stdout + proc.stderr
        assert "web.counter_pins.1" in out and "mqtt.password" in out and "'eighty'" in out
        assert "48213" not in out and "73915" not in out


def test_config_show_hides_the_password_in_a_broker_url(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('[mqtt]\nurl = "mqtts://tan-dinh-01:Pw0rd-9x@mqtt.city.gov.vn:8883"\n', encoding="utf-8")
    for args in (("config", "show"), ("config", "show", "--json")):
        shown = run_kiosk(kiosk_env, "--config", str(cfg), *args, check=True).stdout
        assert "Pw0rd-9x" not in shown and "mqtts://tan-dinh-01:***@mqtt.city.gov.vn:8883" in shown
