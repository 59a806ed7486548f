"""The release bundle: one file, a signed manifest line then an uncompressed tar of wheels.

One file so it downloads with HTTP range requests and resumes; the manifest first so the kiosk checks
the signature, then the payload hash, before a single byte of the tar is opened.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.release.keys import ReleaseError, TrustStore, key_id, load_private

MAGIC = b"WKB1 "
MAX_MANIFEST = 1 << 20
_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[0-9][^-]*)-.*\.whl$")


def parse_version(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\d+(\.\d+)*", text):
        raise ReleaseError(f"version {text!r} is not dotted numbers")
    return tuple(int(part) for part in text.split("."))


def _canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Manifest:
    raw: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.raw["version"])

    @property
    def created(self) -> int:
        return int(self.raw["created"])

    @property
    def min_previous(self) -> str:
        return str(self.raw["min_previous"])

    @property
    def package(self) -> str:
        return str(self.raw["package"])

    @property
    def payload_sha256(self) -> str:
        return str(self.raw["payload_sha256"])

    @property
    def payload_size(self) -> int:
        return int(self.raw["payload_size"])


def build_project_wheel(project: Path, out: Path) -> Path:
    """`pip wheel --no-deps` of the project with the running interpreter (the build machine's venv)."""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(out), str(project)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise ReleaseError(f"pip wheel failed: {done.stderr.strip().splitlines()[-1:]}")
    wheels = sorted(out.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise ReleaseError("pip wheel produced no wheel")
    return wheels[-1]


def fetch_dependency_wheels(project_wheel: Path, out: Path) -> None:
    """Every dependency as a wheel (from the registry the build machine has), for `--no-index` install."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(out), str(project_wheel)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise ReleaseError(f"pip wheel of dependencies failed: {done.stderr.strip().splitlines()[-1:]}")


def build(key_path: Path, out: Path, project_wheel: Path, extra_wheels: list[Path], min_previous: str = "0",
          created: int | None = None) -> Path:
    """Sign a bundle of project_wheel (+ extra_wheels); returns its path in out."""
    match = _WHEEL.match(project_wheel.name)
    if match is None:
        raise ReleaseError(f"{project_wheel.name} is not a wheel file name")
    version = match["version"]
    parse_version(version)
    parse_version(min_previous)
    private = load_private(key_path)
    buffer = io.BytesIO()
    files: dict[str, str] = {}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for wheel in [project_wheel, *sorted(set(extra_wheels) - {project_wheel})]:
            data = wheel.read_bytes()
            files[f"wheels/{wheel.name}"] = hashlib.sha256(data).hexdigest()
            info = tarfile.TarInfo(f"wheels/{wheel.name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    payload = buffer.getvalue()
    manifest: dict[str, Any] = {
        "format": 1, "package": match["name"].replace("_", "-"), "version": version,
        "created": int(time.time()) if created is None else created, "min_previous": min_previous,
        "files": files, "payload_sha256": hashlib.sha256(payload).hexdigest(), "payload_size": len(payload),
        "key_id": key_id(private.public_key()),
    }
    manifest["signature"] = base64.b64encode(private.sign(_canonical(manifest))).decode()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{manifest['package']}-{version}.wkb"
    with tempfile.NamedTemporaryFile(dir=out, delete=False) as tmp:
        tmp.write(MAGIC + json.dumps(manifest, sort_keys=True).encode() + b"\n" + payload)
    Path(tmp.name).replace(target)
    return target


def read_manifest(path: Path) -> tuple[Manifest, int]:
    """The manifest and the payload's offset in the file; no verification yet."""
    try:
        with path.open("rb") as handle:
            head = handle.readline(MAX_MANIFEST)
    except OSError as exc:
        raise ReleaseError(f"cannot read bundle: {exc}") from exc
    if not head.startswith(MAGIC) or not head.endswith(b"\n"):
        raise ReleaseError("not a release bundle (bad header)", "release_bad_format")
    try:
        raw = json.loads(head[len(MAGIC):])
    except ValueError as exc:
        raise ReleaseError("manifest is not JSON", "release_bad_format") from exc
    needed = {"format", "package", "version", "created", "min_previous", "files", "payload_sha256",
              "payload_size", "key_id", "signature"}
    if not isinstance(raw, dict) or not needed <= raw.keys():
        raise ReleaseError("manifest misses fields", "release_bad_format")
    return Manifest(raw), len(head)


def verify(path: Path, trust: TrustStore) -> Manifest:
    """Signature, then the payload's size and hash, then each file's hash. Raises ReleaseError with the reason."""
    manifest, offset = read_manifest(path)
    try:
        signature = base64.b64decode(manifest.raw["signature"], validate=True)
    except ValueError as exc:
        raise ReleaseError("signature is not base64", "release_bad_signature") from exc
    trust.verify(str(manifest.raw["key_id"]), signature, _canonical(manifest.raw))
    parse_version(manifest.version)
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if size != manifest.payload_size or digest.hexdigest() != manifest.payload_sha256:
        raise ReleaseError("payload hash does not match the signed manifest", "release_bad_hash")
    return manifest


def unpack(path: Path, manifest: Manifest, dest: Path) -> list[Path]:
    """Extract the (already verified) wheels; each file's hash is checked against the manifest again."""
    _, offset = read_manifest(path)
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    files: dict[str, str] = manifest.raw["files"]
    with path.open("rb") as handle:
        handle.seek(offset)
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            for member in tar:
                expected = files.get(member.name)
                if expected is None or not member.isfile() or "/" in member.name.removeprefix("wheels/"):
                    raise ReleaseError(f"unexpected member {member.name!r} in bundle", "release_bad_format")
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                data = source.read()
                if hashlib.sha256(data).hexdigest() != expected:
                    raise ReleaseError(f"{member.name} hash mismatch", "release_bad_hash")
                target = dest / member.name.removeprefix("wheels/")
                target.write_bytes(data)
                out.append(target)
    if len(out) != len(files):
        raise ReleaseError("bundle misses files listed in the manifest", "release_bad_format")
    return out
