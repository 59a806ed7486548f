"""`kiosk central serve|user|report`: central web's commands, added to the `central` group of `kiosk`.

Thin: each command opens the database, calls the domain and prints. Errors: one line, exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from central.db import Db
from central.errors import BadInput, CentralError
from central.schema import ensure_schema

P = ParamSpec("P")
T = TypeVar("T")

DbOpt = Annotated[str, typer.Option("--db", help="SQLite file or postgresql://… (the ingest's database).")]
PasswordFile = Annotated[Path, typer.Option("--password-file", help="File holding the password (10+ characters).")]


def one_line_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Central's errors become `kiosk: message` on stderr and exit 1, like the kiosk's own."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except CentralError as exc:
            typer.echo(f"kiosk: {exc.message}", err=True)
            raise typer.Exit(1) from None

    return wrapper


@contextmanager
def opened(target: str) -> Iterator[Db]:
    db = Db(target)
    try:
        ensure_schema(db)
        yield db
    finally:
        db.close()


def split_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def parse_thresholds(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise BadInput("--service-level: minutes separated by commas, e.g. 15,30") from None
    if not values or len(values) > 4 or any(not 1 <= v <= 480 for v in values):
        raise BadInput("--service-level: one to four thresholds of 1 to 480 minutes")
    return values


def central_group(app: typer.Typer) -> typer.Typer:
    for group in app.registered_groups:
        if group.name == "central" and group.typer_instance is not None:
            return group.typer_instance
    central = typer.Typer(help="Phía trung tâm.", no_args_is_help=True)
    app.add_typer(central, name="central")
    return central


def register(app: typer.Typer) -> None:
    central = central_group(app)
    users = typer.Typer(help="Người dùng của trang trung tâm (admin, ops, officer, leader).", no_args_is_help=True)
    central.add_typer(users, name="user")

    @users.command("add")
    @one_line_errors
    def user_add(name: str, db: DbOpt,
                 role: Annotated[str, typer.Option("--role", help="admin, ops, officer or leader.")],
                 password_file: PasswordFile,
                 wards: Annotated[list[str] | None, typer.Option(
                     "--wards", help="Ward codes (comma-separated or repeated): an officer's or a leader's scope.")]
                 = None) -> None:
        """Add a user with a role and, for officers and ward leaders, the wards it sees."""
        from central.users import add_user, read_password

        password = read_password(password_file)
        with opened(db) as conn:
            user = add_user(conn, name, role, split_list(wards), password)
        typer.echo(f"user {user.name} added ({user.role})")

    @users.command("remove")
    @one_line_errors
    def user_remove(name: str, db: DbOpt) -> None:
        """Remove a user and end its sessions."""
        from central.users import remove_user

        with opened(db) as conn:
            remove_user(conn, name)
        typer.echo(f"user {name} removed")

    @users.command("passwd")
    @one_line_errors
    def user_passwd(name: str, db: DbOpt, password_file: PasswordFile) -> None:
        """Set a user's password (its sessions end)."""
        from central.users import read_password, set_password

        password = read_password(password_file)
        with opened(db) as conn:
            set_password(conn, name, password)
        typer.echo(f"password of {name} changed")

    @users.command("list")
    @one_line_errors
    def user_list(db: DbOpt, as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
        """List users, roles and ward scopes."""
        from central.users import list_users

        with opened(db) as conn:
            found = list_users(conn)
        if as_json:
            typer.echo(json.dumps([u.public() for u in found], ensure_ascii=False))
            return
        for u in found:
            typer.echo(f"{u.name}\t{u.role}\t{','.join(u.wards) or '*'}")

    @central.command("report")
    @one_line_errors
    def report(db: DbOpt,
               month: Annotated[str, typer.Option("--month", help="YYYY-MM (local days of Asia/Ho_Chi_Minh).")],
               ward: Annotated[str | None, typer.Option("--ward", help="Ward code; without it the city.")] = None,
               fmt: Annotated[str, typer.Option("--format", help="csv or xlsx.")] = "csv",
               out: Annotated[Path | None, typer.Option("--out", help="Output file (default: stdout).")] = None,
               service_level: Annotated[str, typer.Option("--service-level",
                                                          help="Service-level thresholds, minutes.")] = "15,30",
               ) -> None:
        """The monthly one-stop desk report: per service, tickets issued, served, no-show, waits, service level."""
        from central.report import monthly_rows, write_csv
        from central.summarizer import Summarizer

        if fmt not in ("csv", "xlsx"):
            raise BadInput("--format must be csv or xlsx")
        thresholds = parse_thresholds(service_level)
        with opened(db) as conn:
            Summarizer(conn).run_once()  # the figures include everything acknowledged so far
            rows = monthly_rows(conn, ward, month, thresholds)
        if fmt == "csv":
            data = write_csv(rows)
        else:
            from central.xlsx import write_xlsx

            data = write_xlsx(rows, f"{ward or 'thanh-pho'} {month}")
        if out is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            try:
                out.write_bytes(data)
            except OSError as exc:
                raise BadInput(f"cannot write {out}: {exc}") from exc
            typer.echo(f"report written to {out} ({len(rows) - 1} rows)")

    wards_app = typer.Typer(help="Wards' official names shown on central's pages.", no_args_is_help=True)
    central.add_typer(wards_app, name="wards")

    @wards_app.command("import")
    @one_line_errors
    def wards_import(file: Path, db: DbOpt) -> None:
        """Load `code,name` rows (UTF-8 CSV, header optional) into the wards table; all or nothing."""
        from central.fleet.store import FleetStore, ensure_fleet_schema

        with opened(db) as conn:
            ensure_fleet_schema(conn)
            n = FleetStore(conn).import_wards(file)
        typer.echo(f"{n} wards imported")

    @wards_app.command("list")
    @one_line_errors
    def wards_list(db: DbOpt, as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
        """Ward codes and their official names."""
        from central.fleet.store import FleetStore, ensure_fleet_schema

        with opened(db) as conn:
            ensure_fleet_schema(conn)
            names = FleetStore(conn).wards()
        if as_json:
            typer.echo(json.dumps(names, ensure_ascii=False))
        else:
            for code, name in names.items():
                typer.echo(f"{code}  {name}")

    @central.command("serve")
    @one_line_errors
    def serve(db: DbOpt,
              port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8090,
              host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
              secure_cookies: Annotated[bool, typer.Option(
                  "--secure-cookies", help="Mark cookies Secure (set when served behind TLS).")] = False,
              service_level: Annotated[str, typer.Option("--service-level",
                                                         help="Service-level thresholds, minutes.")] = "15,30",
              broker: Annotated[str | None, typer.Option(
                  "--broker", help="mqtt://host:port: watch kiosks' status/telemetry, send fleet commands.")] = None,
              root: Annotated[str, typer.Option("--root", help="Topic root of the kiosks.")] = "wards",
              ) -> None:
        """Serve central's web pages: login, KPIs, reports, fleet list and each ward's public page."""
        import logging

        from central.db import redact
        from central.web.app import WebSettings, build_app, run_app

        logging.getLogger("central").setLevel(logging.INFO)
        settings = WebSettings(db=db, secure_cookies=secure_cookies,
                               service_level_minutes=parse_thresholds(service_level), broker=broker,
                               fleet_root=root)
        app = build_app(settings)
        logging.getLogger(__name__).warning("central web on http://%s:%d (database %s)", host, port, redact(db))
        run_app(app, host, port)
