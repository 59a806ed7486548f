"""Side-by-side install through the real CLI: resumable HTTP download, verify before unpack, atomic switch,
downgrade and replay refused, and a power cut (SIGKILL) at each install step leaves a bootable release."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from agent.release.install import KILL_ENV, STEPS
from tests.release_helpers import build, fake_wheel, kiosk


class RangeHandler(BaseHTTPRequestHandler):
    """Serves files of `directory` with Range support; `cut` bytes then drops (first request only)."""

    directory: Path
    cut: ClassVar[dict[str, int]] = {}
    ranges: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        data = (self.directory / self.path.lstrip("/")).read_bytes()
        start = 0
        header = self.headers.get("Range")
        self.ranges.append(header or "")
        if header:
            start = int(header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = self.cut.pop(self.path, None)
        self.wfile.write(body if limit is None else body[:limit])
        if limit is not None:
            self.wfile.flush()
            self.connection.close()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def rel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("inst")
    k1 = json.loads(kiosk("release", "keygen", "--out", str(tmp / "k1"), "--json").stdout)
    k2 = json.loads(kiosk("release", "keygen", "--out", str(tmp / "k2"), "--json").stdout)
    trust = tmp / "trust"
    trust.mkdir()
    (trust / Path(k1["public"]).name).write_bytes(Path(k1["public"]).read_bytes())
    out = tmp / "bundles"
    v1 = build(Path(k1["private"]), out / "1", fake_wheel(tmp, "1.0.0"))
    v2 = build(Path(k1["private"]), out / "2", fake_wheel(tmp, "2.0.0"))
    v2_wrong = build(Path(k2["private"]), out / "2w", fake_wheel(tmp, "2.0.0", "wrongkey"))
    v3 = build(Path(k1["private"]), out / "3", fake_wheel(tmp, "3.0.0"))
    return {"trust": trust, "v1": v1, "v2": v2, "v2_wrong": v2_wrong, "v3": v3}


def install(root: Path, rel: dict[str, Path], bundle: Path, *extra: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return kiosk("release", "install", str(bundle), "--keys", str(rel["trust"]), "--root", str(root), *extra, env=env)


def boots(root: Path) -> str:
    """What a reboot would start: releases/current/bin/kiosk, asked for its version."""
    done = subprocess.run([str(root / "releases" / "current" / "bin" / "kiosk"), "version"],
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


@pytest.fixture
def http(tmp_path: Path) -> Iterator[tuple[str, type[RangeHandler]]]:
    handler = type("H", (RangeHandler,), {"directory": tmp_path / "srv", "cut": {}, "ranges": []})
    (tmp_path / "srv").mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    thread.join(timeout=5)


def test_update_over_http_resumes_and_switches(rel: dict[str, Path], tmp_path: Path,
                                               http: tuple[str, type[RangeHandler]]) -> None:
    root = tmp_path / "kiosk"
    assert install(root, rel, rel["v1"]).returncode == 0
    assert boots(root) == "1.0.0"
    base, handler = http
    (tmp_path / "srv" / rel["v2"].name).write_bytes(rel["v2"].read_bytes())
    handler.cut[f"/{rel['v2'].name}"] = 700  # the link drops mid-download
    first = kiosk("release", "install", f"{base}/{rel['v2'].name}", "--keys", str(rel["trust"]),
                  "--root", str(root))
    assert first.returncode == 1 and "download failed" in first.stderr, first.stderr
    assert boots(root) == "1.0.0"
    second = kiosk("release", "install", f"{base}/{rel['v2'].name}", "--keys", str(rel["trust"]),
                   "--root", str(root))
    assert second.returncode == 0, second.stderr
    assert handler.ranges[-1].startswith("bytes=") and handler.ranges[-1] != "bytes=0-"
    assert boots(root) == "2.0.0"
    assert os.readlink(root / "releases" / "current") == "2.0.0"
    assert (root / "releases" / "1.0.0" / "bin" / "kiosk").exists()  # the old one kept beside


def test_refusals_before_unpacking(rel: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "kiosk"
    assert install(root, rel, rel["v2"]).returncode == 0
    tampered = tmp_path / rel["v3"].name
    data = bytearray(rel["v3"].read_bytes())
    data[-600] ^= 1
    tampered.write_bytes(bytes(data))
    cases = [(tampered, "payload hash"), (rel["v2_wrong"], "not trusted"), (rel["v1"], "downgrade")]
    for bundle, reason in cases:
        done = install(root, rel, bundle)
        assert done.returncode == 1 and reason in done.stderr, (bundle, done.stderr)
        assert not list((root / "releases").glob(".staging-*"))  # nothing unpacked
        assert boots(root) == "2.0.0"
    assert install(root, rel, rel["v1"], "--allow-downgrade").returncode == 0
    assert boots(root) == "1.0.0"


def test_replayed_old_offer_refused(rel: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "kiosk"
    assert install(root, rel, rel["v3"]).returncode == 0
    # 3.0.0 rolled back to 1.0.0 by hand; a replay of the (older) 2.0.0 offer is then a version up but stale
    assert kiosk("release", "rollback", "--root", str(root)).returncode == 1  # nothing before 3.0.0
    state = json.loads((root / "release-state.json").read_text())
    assert state["newest_created"] >= json.loads(rel["v2"].read_bytes().split(b"\n")[0][5:])["created"]
    assert install(root, rel, rel["v1"], "--allow-downgrade").returncode == 0
    head = json.loads(rel["v2"].read_bytes().split(b"\n")[0][5:])
    if head["created"] >= state["newest_created"]:
        pytest.skip("bundles built within the same second")
    done = install(root, rel, rel["v2"])
    assert done.returncode == 1 and "replayed offer" in done.stderr


@pytest.mark.parametrize("step", ["downloaded", *STEPS])
def test_power_cut_at_each_step_boots_old_or_new(rel: dict[str, Path], tmp_path: Path, step: str) -> None:
    root = tmp_path / "kiosk"
    assert install(root, rel, rel["v1"]).returncode == 0
    done = install(root, rel, rel["v2"], env={**os.environ, KILL_ENV: step})
    assert done.returncode == -9, (step, done.returncode, done.stderr)
    assert boots(root) in {"1.0.0", "2.0.0"}
    # and the next attempt completes the update
    again = install(root, rel, rel["v2"])
    assert again.returncode == 0 or "already installed" in again.stderr, again.stderr
    assert boots(root) == "2.0.0"


def test_dependencies_install_offline_from_the_bundle(rel: dict[str, Path], tmp_path: Path) -> None:
    """`build --wheels DIR` bundles the dependency wheels; the kiosk installs them with --no-index."""
    dep = fake_wheel(tmp_path, "0.3.0", name="kiosk-fakedep")
    app = fake_wheel(tmp_path, "1.0.0", requires="kiosk-fakedep>=0.3")
    key = next((rel["trust"].parent / "k1").glob("*.key"))
    bundle = build(key, tmp_path / "out", app, "--wheels", str(dep.parent))
    root = tmp_path / "kiosk"
    done = install(root, rel, bundle)
    assert done.returncode == 0, done.stderr
    python = root / "releases" / "current" / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import kiosk_fakedep; print(kiosk_fakedep.VERSION)"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert probe.stdout.strip() == "0.3.0", probe.stderr
    # and without the dependency wheel the install fails cleanly, leaving nothing current
    bare = build(key, tmp_path / "bare", app)
    other = tmp_path / "other"
    failed = install(other, rel, bare)
    assert failed.returncode == 1 and "refused" in failed.stderr
    assert not (other / "releases" / "current").exists()
