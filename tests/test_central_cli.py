"""`kiosk central user …` and `kiosk central report`: real processes on a real database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook

from central.passwords import verify_password
from central.users import get_user
from tests.central_helpers import Kiosk, open_db, target_for
from tests.test_central_kpi import DAY, WARD, first_half, second_half

KIOSK = [sys.executable, "-m", "agent.cli.main"]


def kiosk(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*KIOSK, *args], capture_output=True, timeout=60, check=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from target_for(request.param, tmp_path)


def test_users_add_list_passwd_remove(target: str, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("một mật khẩu dài\n", encoding="utf-8")
    ok = kiosk("central", "user", "add", "lan", "--db", target, "--role", "officer", "--wards", "26734,26737",
               "--password-file", str(pw))
    assert ok.returncode == 0, ok.stderr
    assert kiosk("central", "user", "add", "an", "--db", target, "--role", "leader", "--password-file",
                 str(pw)).returncode == 0
    listed = kiosk("central", "user", "list", "--db", target, "--json")
    assert json.loads(listed.stdout) == [{"name": "an", "role": "leader", "wards": []},
                                         {"name": "lan", "role": "officer", "wards": ["26734", "26737"]}]
    db = open_db(target)
    try:
        found = get_user(db, "lan")
        assert found is not None and found[1].startswith("$argon2id$")  # never the password itself
        assert verify_password(found[1], "một mật khẩu dài")
        for args, message in [
            (["add", "lan", "--role", "officer", "--wards", "26734"], "already exists"),
            (["add", "x", "--role", "officer"], "needs --wards"),
            (["add", "x", "--role", "king"], "role must be"),
            (["add", "x", "--role", "ops", "--wards", "26734"], "no --wards"),
            (["add", "x", "--role", "officer", "--wards", "2673"], "not 5 digits"),
            (["add", "X Y", "--role", "leader"], "user name"),
        ]:
            bad = kiosk("central", "user", *args, "--db", target, "--password-file", str(pw))
            assert bad.returncode == 1 and message in bad.stderr.decode(), (args, bad.stderr)
            assert len(bad.stderr.decode().strip().splitlines()) == 1
        short = tmp_path / "short"
        short.write_text("ngắn", encoding="utf-8")
        refused = kiosk("central", "user", "passwd", "lan", "--db", target, "--password-file", str(short))
        assert refused.returncode == 1 and b"10 to 1024" in refused.stderr
        new = tmp_path / "new"
        new.write_text("mật khẩu mới thứ hai", encoding="utf-8")
        assert kiosk("central", "user", "passwd", "lan", "--db", target, "--password-file", str(new)).returncode == 0
        again = get_user(db, "lan")
        assert again is not None and verify_password(again[1], "mật khẩu mới thứ hai")
        assert not verify_password(again[1], "một mật khẩu dài")
        assert kiosk("central", "user", "remove", "lan", "--db", target).returncode == 0
        gone = kiosk("central", "user", "remove", "lan", "--db", target)
        assert gone.returncode == 1 and b"no user lan" in gone.stderr
        assert get_user(db, "lan") is None
    finally:
        db.close()


def test_monthly_report_csv_and_xlsx(target: str, tmp_path: Path) -> None:
    db = open_db(target)
    try:
        k = Kiosk(db, WARD, "k-01")
        first_half(k)
        second_half(k)
    finally:
        db.close()
    month = DAY[:7]
    out = kiosk("central", "report", "--db", target, "--ward", WARD, "--month", month, "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout.decode("utf-8-sig"))))
    assert rows[0][:6] == ["Mã phường/xã", "Dịch vụ", "Số phiếu cấp", "Đã phục vụ", "Vắng mặt", "Bỏ về"]
    by_service = {r[1]: r for r in rows[1:]}
    assert by_service["khai-sinh"][2:6] == ["5", "5", "0", "0"]
    assert by_service["ket-hon"][2:6] == ["5", "3", "1", "1"]
    assert by_service["Tổng cộng"][2:9] == ["10", "8", "1", "1", "19.2", "15.0", "50.0"]  # avg 10380/9 s

    book = tmp_path / "r.xlsx"
    made = kiosk("central", "report", "--db", target, "--month", month, "--format", "xlsx", "--out", str(book))
    assert made.returncode == 0, made.stderr
    sheet = load_workbook(book).active
    assert sheet is not None
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][1] == "Dịch vụ"
    total = next(r for r in values if r[1] == "Tổng cộng")
    assert total[:6] == [WARD, "Tổng cộng", 10, 8, 1, 1]
    assert total[-2:] == [2, 75.0]  # two ratings on the 5-level scale: 100 and 50

    for args, message in [(["--ward", "99999"], b"unknown ward 99999"), (["--ward", "abc"], b"not 5 digits"),
                          (["--ward", WARD, "--month", "2026-13"], b"not YYYY-MM"),
                          (["--ward", WARD, "--format", "pdf"], b"csv or xlsx")]:
        cmd = ["central", "report", "--db", target, "--month", month, *args]
        bad = kiosk(*cmd)
        assert bad.returncode == 1 and message in bad.stderr, (args, bad.stderr)
