"""Side-by-side install on the kiosk: `releases/<version>/` (one venv each) and `releases/current`.

Every step leaves `current` pointing at a complete release: the new venv is built under a temp name,
renamed into place, and `current` is switched by renaming a temp symlink over it (atomic on POSIX), so
a power cut at any step boots the old release or the new one, never neither.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.release.bundle import Manifest, parse_version, unpack, verify
from agent.release.keys import ReleaseError, TrustStore

STEPS = ("downloaded", "verified", "unpacked", "venv", "installed", "placed", "linked", "switched", "recorded")
# Fault injection for the power-cut tests: SIGKILL ourselves right after the named step.
KILL_ENV = "KIOSK_RELEASE_KILL_AT"
CHUNK = 1 << 16


def _step(name: str) -> None:
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def download(url: str, dest: Path, timeout: float = 30) -> Path:
    """Fetch url into dest, resuming a previous `.part` with a Range request."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = getattr(response, "status", None)
            resumed = have and status == 206
            with part.open("ab" if resumed else "wb") as out:
                try:
                    while chunk := response.read1(CHUNK):
                        out.write(chunk)
                finally:  # what arrived before a cut is kept for the next Range request
                    out.flush()
                    os.fsync(out.fileno())
            if getattr(response, "length", None):  # a cut the server did not signal: Content-Length not reached
                raise http.client.IncompleteRead(b"", response.length)
    except (OSError, http.client.HTTPException) as exc:
        if have and "416" in str(exc):  # already complete
            part.replace(dest)
            return dest
        raise ReleaseError(f"download failed (resumable, {part.stat().st_size if part.exists() else 0} "
                           f"bytes kept): {exc}", "release_download") from exc
    part.replace(dest)
    return dest


@dataclass
class Layout:
    root: Path

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.releases / "current"

    @property
    def state_file(self) -> Path:
        return self.root / "release-state.json"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def current_version(self) -> str | None:
        try:
            return Path(os.readlink(self.current)).name
        except OSError:
            return None

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, self.state_file)

    def switch(self, version: str) -> None:
        """Point `current` at releases/<version> by renaming a fresh symlink over it."""
        tmp = self.releases / f".current.{os.getpid()}"
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(version, tmp)
        _step("linked")
        os.replace(tmp, self.current)
        _fsync_dir(self.releases)


def check_offer(layout: Layout, manifest: Manifest, allow_downgrade: bool) -> None:
    """Refuse a downgrade, a replay (older than what we have accepted), and a jump the release forbids."""
    state = layout.state()
    current = layout.current_version()
    new = parse_version(manifest.version)
    if current is not None and current != "0":
        have = parse_version(current)
        if new < have and not allow_downgrade:
            raise ReleaseError(f"downgrade {current} → {manifest.version} refused (--allow-downgrade)",
                               "release_downgrade")
        if new == have:
            raise ReleaseError(f"{manifest.version} is already installed", "release_same")
        if parse_version(manifest.min_previous) > have:
            raise ReleaseError(f"{manifest.version} needs at least {manifest.min_previous} installed first",
                               "release_min_previous")
    newest = int(state.get("newest_created", 0))
    if manifest.created < newest and not allow_downgrade:
        raise ReleaseError("replayed offer: bundle is older than one already accepted", "release_replay")


def install(layout: Layout, bundle: Path, trust: TrustStore, allow_downgrade: bool = False,
            python: str = sys.executable) -> Manifest:
    """Verify (before unpacking), build the venv beside the running one, switch `current`, record state."""
    manifest = verify(bundle, trust)
    _step("verified")
    check_offer(layout, manifest, allow_downgrade)
    layout.releases.mkdir(parents=True, exist_ok=True)
    staging = layout.releases / f".staging-{manifest.version}"
    target = layout.releases / manifest.version
    if staging.exists():
        shutil.rmtree(staging)  # leftovers of an interrupted install
    wheels = staging / "wheels"
    unpack(bundle, manifest, wheels)
    _step("unpacked")
    _run([python, "-m", "venv", "--without-pip", str(staging)])
    _step("venv")
    # pip of the running interpreter installs into the new venv: the venv needs no pip of its own.
    _run([python, "-m", "pip", "--python", str(staging / "bin" / "python"), "install", "-q", "--no-index",
          "--no-cache-dir", "--find-links", str(wheels), f"{manifest.package}=={manifest.version}"])
    (staging / "manifest.json").write_text(json.dumps(manifest.raw, sort_keys=True))
    _step("installed")
    if target.exists():
        shutil.rmtree(target)  # not current (check_offer refused same version), a half-kept old copy
    # venvs hard-code their path in scripts: rebuilding in place is not possible, so the venv is
    # created at its final path's sibling and its scripts rewritten by the rename below.
    _relocate(staging, target)
    _step("placed")
    previous = layout.current_version()
    layout.switch(manifest.version)
    _step("switched")
    state = layout.state()
    state.update(current=manifest.version, previous=previous, pending=manifest.version,
                 newest_created=max(int(state.get("newest_created", 0)), manifest.created))
    layout.write_state(state)
    _step("recorded")
    return manifest


def rollback(layout: Layout, reason: str) -> str:
    """Switch back to the previous release; returns the version now current."""
    state = layout.state()
    previous = state.get("previous")
    if not previous or not (layout.releases / str(previous)).is_dir():
        raise ReleaseError(f"no previous release to roll back to ({reason})", "release_no_previous")
    failed = layout.current_version()
    layout.switch(str(previous))
    state.update(current=previous, previous=None, pending=None, failed=failed, failed_reason=reason)
    layout.write_state(state)
    return str(previous)


def commit(layout: Layout) -> None:
    state = layout.state()
    state["pending"] = None
    layout.write_state(state)


def _relocate(staging: Path, target: Path) -> None:
    old, new = str(staging), str(target)
    for script in (staging / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text()
            except UnicodeDecodeError:
                continue
            if old in text:
                script.write_text(text.replace(old, new))
    cfg = staging / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(old, new))
    os.replace(staging, target)
    _fsync_dir(target.parent)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise ReleaseError(f"{Path(argv[0]).name} {argv[1:3]} failed: {tail}", "release_install")
