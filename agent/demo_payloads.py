"""Sample codes shown by the demo camera (`camera.source = "demo:"`), so check-in works with no camera.

The ID card is fictitious and internally consistent. The appointment is signed with a DEMO key
that is public knowledge (its seed is below): only `config/kiosk.demo.toml` trusts it, under key
id "demo"; a real kiosk's settings never list it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.checkin.appointment import issue_token, public_key_text
from agent.settings import Settings

DEMO_KEY = Ed25519PrivateKey.from_private_bytes(b"ward-kiosk demo key, not secret!")
DEMO_KEY_ID = "demo"
DEMO_PUBLIC_KEY = public_key_text(DEMO_KEY)
DEMO_CARD = "079190001234||Lê Thị Demo|05051990|Nữ|1 Đường Mẫu, Phường Sài Gòn|01072024"
DEMO_DOSSIER = "000.00.19.H56-261128-0001"


def demo_payloads(settings: Settings) -> list[str]:
    tz = ZoneInfo(settings.queue.timezone)
    now = datetime.now(tz)
    slot = (now - timedelta(minutes=now.minute % 30)).strftime("%H:%M")
    token = issue_token(DEMO_KEY, DEMO_KEY_ID, f"DEMO-{now:%H%M}", settings.device.ward, "ket-hon", now.date(), slot)
    return [DEMO_CARD, token, DEMO_DOSSIER]
