"""Time-limited TURN credentials per call, the TURN REST API shared-secret scheme (coturn's
``use-auth-secret`` / ``static-auth-secret``): username ``<expiry unix time>:<call id>``, password
base64(HMAC-SHA1(secret, username)). The TURN server checks them with the same secret; nothing
long-lived reaches the officer's browser."""

from __future__ import annotations

import base64
import hashlib
import hmac


def rest_credentials(secret: str, call_id: str, expiry: int) -> tuple[str, str]:
    """(username, password) valid until ``expiry`` (seconds since the epoch) for one call."""
    username = f"{expiry}:{call_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()
