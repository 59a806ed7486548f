"""Sample payloads for check-in tests: fictitious people, internally consistent ID numbers."""

from __future__ import annotations

from datetime import date

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.checkin import appointment

# 001 Hà Nội, 0 = male born 1900s, 90 = 1990.
CARD_ID = "001090012345"
CARD_NAME = "Nguyễn Văn An"
CARD = f"{CARD_ID}|123456789|{CARD_NAME}|01011990|Nam|Số 1 Lê Lợi, Phường Bến Thành|15062021"
# 079 TP.HCM, 1 = female born 1900s, 55 = 1955: elderly.
ELDER_ID = "079155004321"
ELDER_NAME = "Trần Thị Bích"
ELDER = f"{ELDER_ID}||{ELDER_NAME}|12031955|Nữ|12 Nguyễn Huệ, Phường Sài Gòn|01072024|extra|2024-field"
DOSSIER = "000.00.19.H56-241205-0001"

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEY_ID = "2026a"
PUBLIC = {KEY_ID: appointment.public_key_text(KEY)}


def token(ward: str = "26740", service: str = "khai-sinh", day: date = date(2026, 11, 30), slot: str = "09:00",
          booking: str = "BK-0001", key: Ed25519PrivateKey = KEY, key_id: str = KEY_ID) -> str:
    return appointment.issue_token(key, key_id, booking, ward, service, day, slot)
