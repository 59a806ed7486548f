"""Release bundles: keygen, build, verify (signature, hash, key rotation and revocation) through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.release_helpers import build, fake_wheel, kiosk


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("rel")
    done = kiosk("release", "keygen", "--out", str(tmp / "k1"), "--json")
    assert done.returncode == 0, done.stderr
    k1 = json.loads(done.stdout)
    k2 = json.loads(kiosk("release", "keygen", "--out", str(tmp / "k2"), "--json").stdout)
    trust = tmp / "trust"
    trust.mkdir()
    (trust / Path(k1["public"]).name).write_bytes(Path(k1["public"]).read_bytes())
    wheel = fake_wheel(tmp, "1.0.0")
    return {"tmp": tmp, "trust": trust, "key1": Path(k1["private"]), "key2": Path(k2["private"]),
            "pub2": Path(k2["public"]), "wheel": wheel, "id1": Path(k1["id"] if "id" in k1 else k1["key_id"])}


def test_keygen_private_key_is_owner_only(world: dict[str, Path]) -> None:
    assert world["key1"].stat().st_mode & 0o077 == 0
    assert world["key1"].stem == world["id1"].name and len(world["key1"].stem) == 16


def test_build_then_verify_valid(world: dict[str, Path]) -> None:
    bundle = build(world["key1"], world["tmp"] / "out", world["wheel"])
    done = kiosk("release", "verify", str(bundle), "--keys", str(world["trust"]), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc == {"valid": True, "version": "1.0.0", "key_id": world["id1"].name}
    head = json.loads(bundle.read_bytes().split(b"\n", 1)[0][5:])
    assert list(head["files"]) == [f"wheels/{world['wheel'].name}"]


def test_tampered_payload_invalid(world: dict[str, Path], tmp_path: Path) -> None:
    bundle = build(world["key1"], tmp_path, world["wheel"])
    data = bytearray(bundle.read_bytes())
    data[-600] ^= 0x01  # inside the tar, past the manifest line
    bundle.write_bytes(bytes(data))
    done = kiosk("release", "verify", str(bundle), "--keys", str(world["trust"]))
    assert done.returncode == 1
    assert "payload hash" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_tampered_manifest_invalid(world: dict[str, Path], tmp_path: Path) -> None:
    bundle = build(world["key1"], tmp_path, world["wheel"])
    head, payload = bundle.read_bytes().split(b"\n", 1)
    manifest = json.loads(head[5:])
    manifest["min_previous"] = "0.0.1"
    bundle.write_bytes(b"WKB1 " + json.dumps(manifest).encode() + b"\n" + payload)
    done = kiosk("release", "verify", str(bundle), "--keys", str(world["trust"]))
    assert done.returncode == 1 and "bad signature" in done.stderr


def test_wrong_key_then_rotation_then_revocation(world: dict[str, Path], tmp_path: Path) -> None:
    bundle = build(world["key2"], tmp_path, world["wheel"])
    done = kiosk("release", "verify", str(bundle), "--keys", str(world["trust"]))
    assert done.returncode == 1 and "not trusted" in done.stderr
    trust = tmp_path / "trust"
    trust.mkdir()
    for pub in [*world["trust"].glob("*.pub"), world["pub2"]]:
        (trust / pub.name).write_bytes(pub.read_bytes())
    assert kiosk("release", "verify", str(bundle), "--keys", str(trust)).returncode == 0  # rotated in
    (trust / "revoked").write_text(world["pub2"].stem + "\n")
    done = kiosk("release", "verify", str(bundle), "--keys", str(trust))
    assert done.returncode == 1 and "revoked" in done.stderr


def test_not_a_bundle(world: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "x.wkb"
    junk.write_bytes(b"hello\n")
    done = kiosk("release", "verify", str(junk), "--keys", str(world["trust"]))
    assert done.returncode == 1 and "not a release bundle" in done.stderr
