"""`kiosk release keygen|build|verify|install|rollback|commit`: signed bundles and side-by-side install.

Exit codes: 0 done/valid, 1 invalid or refused (the reason on one line), 2 bad usage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.output import JsonOpt, emit_json, fail, say
from agent.release import bundle as bundles
from agent.release import install as installer
from agent.release.keys import ReleaseError, TrustStore, keygen

RootOpt = Annotated[Path, typer.Option("--root", help="Kiosk install root (holds releases/).")]


def register(app: typer.Typer) -> None:
    release = typer.Typer(help="Phát hành và cài đặt phiên bản mới.", no_args_is_help=True)
    app.add_typer(release, name="release")

    @release.command("keygen")
    def keygen_cmd(out: Annotated[Path, typer.Option("--out", help="Dir for <id>.key and <id>.pub.")],
                   as_json: JsonOpt = False) -> None:
        pair = keygen(out)
        if as_json:
            emit_json({"key_id": pair.key_id, "private": str(pair.private_path), "public": str(pair.public_path)})
        else:
            say(f"key {pair.key_id}: {pair.private_path} (giữ bí mật), {pair.public_path} (cho ki-ốt)")

    @release.command("build")
    def build_cmd(key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (PEM).")],
                  out: Annotated[Path, typer.Option("--out", help="Dir for the bundle.")],
                  project: Annotated[Path, typer.Option("--project", help="Project to build.")] = Path("."),
                  wheel: Annotated[Path | None, typer.Option("--wheel", help="Use this built wheel.")] = None,
                  wheels: Annotated[Path | None, typer.Option("--wheels", help="Bundle the wheels of this dir "
                                                              "as dependencies (no registry).")] = None,
                  with_deps: Annotated[bool, typer.Option("--with-deps/--no-deps", help="Fetch every "
                                                          "dependency's wheel (pip wheel).")] = True,
                  min_previous: Annotated[str, typer.Option("--min-previous")] = "0",
                  as_json: JsonOpt = False) -> None:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                project_wheel = wheel or bundles.build_project_wheel(project, work / "project")
                extra: list[Path] = []
                if wheels is not None:
                    extra += sorted(wheels.glob("*.whl"))
                elif with_deps:
                    bundles.fetch_dependency_wheels(project_wheel, work / "deps")
                    extra += sorted((work / "deps").glob("*.whl"))
                path = bundles.build(key, out, project_wheel, extra, min_previous)
        except ReleaseError as exc:
            raise fail(exc.message) from None
        if as_json:
            emit_json({"bundle": str(path)})
        else:
            say(str(path))

    @release.command("verify")
    def verify_cmd(bundle: Path, keys: Annotated[Path, typer.Option("--keys", help="Trusted keys dir.")],
                   as_json: JsonOpt = False) -> None:
        try:
            manifest = bundles.verify(bundle, TrustStore(keys))
        except ReleaseError as exc:
            if as_json:
                emit_json({"valid": False, "code": exc.code, "reason": exc.message})
            raise fail(f"invalid: {exc.message}") from None
        if as_json:
            emit_json({"valid": True, "version": manifest.version, "key_id": manifest.raw["key_id"]})
        else:
            say(f"valid: {manifest.package} {manifest.version} (key {manifest.raw['key_id']})")

    @release.command("install")
    def install_cmd(source: Annotated[str, typer.Argument(help="Bundle URL (https://, http://, file://) or path.")],
                    keys: Annotated[Path, typer.Option("--keys", help="Trusted keys dir.")],
                    root: RootOpt,
                    allow_downgrade: Annotated[bool, typer.Option("--allow-downgrade")] = False,
                    as_json: JsonOpt = False) -> None:
        layout = installer.Layout(root)
        try:
            layout.downloads.mkdir(parents=True, exist_ok=True)
            url = source if "://" in source else Path(source).resolve().as_uri()
            local = installer.download(url, layout.downloads / Path(url).name)
            installer._step("downloaded")
            manifest = installer.install(layout, local, TrustStore(keys), allow_downgrade)
        except ReleaseError as exc:
            raise fail(f"refused: {exc.message}") from None
        if as_json:
            emit_json({"installed": manifest.version})
        else:
            say(f"installed {manifest.version}; current → {manifest.version}")

    @release.command("rollback")
    def rollback_cmd(root: RootOpt, reason: Annotated[str, typer.Option("--reason")] = "manual") -> None:
        try:
            say(f"current → {installer.rollback(installer.Layout(root), reason)}")
        except ReleaseError as exc:
            raise fail(exc.message) from None
