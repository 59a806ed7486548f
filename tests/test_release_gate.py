"""Health gate with real processes: a supervisor (systemd's stand-in) runs releases/current; a good update
is committed; a release that crashes, never gets READY, or stops the watchdog is rolled back by itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.release.gate import GateSettings, run_gate
from agent.release.install import Layout
from tests.release_helpers import REPO, build, fake_wheel, kiosk
from tests.release_supervisor import Supervisor

SETTINGS = GateSettings(ready_deadline=4, period=3, watchdog_s=1.5, max_restarts=0, poll=0.1)


@pytest.fixture(scope="module")
def rel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("gate")
    k1 = json.loads(kiosk("release", "keygen", "--out", str(tmp / "k"), "--json").stdout)
    trust = tmp / "trust"
    trust.mkdir()
    (trust / Path(k1["public"]).name).write_bytes(Path(k1["public"]).read_bytes())
    out: dict[str, Path] = {"trust": trust}
    for version, behaviour in [("1.0.0", "good"), ("2.0.0", "good"), ("2.0.1", "crash"), ("2.0.2", "noready"),
                               ("2.0.3", "nowatchdog")]:
        out[behaviour if version != "1.0.0" else "base"] = build(
            Path(k1["private"]), tmp / version, fake_wheel(tmp, version, behaviour))
    return out


@pytest.mark.parametrize(("behaviour", "reason"), [("good", ""), ("crash", "crash loop"),
                                                    ("noready", "not READY"), ("nowatchdog", "watchdog not fed")])
async def test_gate(rel: dict[str, Path], tmp_path: Path, behaviour: str, reason: str) -> None:
    root = tmp_path / "kiosk"
    assert kiosk("release", "install", str(rel["base"]), "--keys", str(rel["trust"]), "--root", str(root)
                 ).returncode == 0
    sup = Supervisor(root, watchdog_s=2.5)
    await sup.start()
    try:
        done = kiosk("release", "install", str(rel[behaviour]), "--keys", str(rel["trust"]), "--root", str(root))
        assert done.returncode == 0, done.stderr
        await sup.restart()
        verdict = await run_gate(Layout(root), sup, SETTINGS, sup.restart)
        events = root / "update-events.jsonl"
        if not reason:
            assert verdict.committed and Layout(root).current_version() == "2.0.0"
            assert Layout(root).state()["pending"] is None
            assert not events.exists()
        else:
            assert not verdict.committed and reason in verdict.reason, verdict
            assert Layout(root).current_version() == "1.0.0"
            event = json.loads(events.read_text().splitlines()[-1])
            assert event["type"] == "update.failed" and reason in event["reason"]
            # the old release runs again and is healthy
            back = await run_gate(Layout(root), sup, GateSettings(ready_deadline=4, period=1, watchdog_s=1.5,
                                                                  poll=0.1), sup.restart)
            assert back.committed
    finally:
        await sup.stop()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_real_unit_runs_the_current_release(rel: dict[str, Path], tmp_path: Path) -> None:
    """The shipped unit, with ExecStart on releases/current, verifies: Type=notify, WatchdogSec, Restart and
    the start limit are what the supervisor above stands in for."""
    root = tmp_path / "kiosk"
    assert kiosk("release", "install", str(rel["base"]), "--keys", str(rel["trust"]), "--root", str(root)
                 ).returncode == 0
    text = (REPO / "systemd" / "kiosk-agent.service.in").read_text(encoding="utf-8").replace("@PREFIX@", str(REPO))
    text = re.sub(r"^ExecStart=.*$", f"ExecStart={root}/releases/current/bin/kiosk run", text, flags=re.M)
    unit = tmp_path / "kiosk-agent.service"
    unit.write_text(text, encoding="utf-8")
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst="):
        assert line in text
