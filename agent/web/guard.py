"""Who may do what on the local web API: Host and Origin checks, the kiosk screen, per-client rates.

The API listens on the ward LAN, so any device there, and any web page a LAN browser opens, can reach
it. Three checks keep resident actions (tickets, ratings, feedback) to the kiosk's own screen:

* Host: a name not configured (`web.allowed_hosts`), not `localhost` and not an IP address is a
  DNS-rebinding page talking to us under its own origin; refused for every request.
* Origin: a browser names the page that sent a POST; another origin is a cross-site request.
* Screen: the kiosk screen is Chromium on the box itself (`web.screen_addresses`, loopback), or a
  screen elsewhere that sends the token of `web.screen_token_file` in `X-Screen-Token`.

Resident actions also require `Content-Type: application/json` (a cross-site form cannot send it
without a CORS preflight, which this server never grants) and are rate-limited per client address.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from aiohttp import web

from agent.errors import KioskError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BUCKET_MEMORY = 4096  # client addresses remembered; the oldest are forgotten first


class Forbidden(KioskError):
    code = "forbidden"
    http_status = 403


class NotJson(KioskError):
    code = "unsupported_media_type"
    http_status = 415


class RateLimited(KioskError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


def client_address(request: web.Request) -> str:
    """The peer address (no proxy sits in front of the kiosk, so forwarded headers are not trusted)."""
    return request.remote or "unknown"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class RequestPolicy:
    """The Host/Origin/screen rules of one server, from settings."""

    def __init__(self, allowed_hosts: Iterable[str], screen_addresses: Iterable[str],
                 screen_token: str | None) -> None:
        self.allowed_hosts = {h.lower() for h in allowed_hosts} | {"localhost"}
        self.screen_addresses = {ipaddress.ip_address(a) for a in screen_addresses}
        self.screen_token = screen_token

    def check_host(self, request: web.Request) -> None:
        host = (request.url.host or "").lower().rstrip(".")
        if not host or not (_is_ip(host) or host in self.allowed_hosts):
            raise Forbidden("Tên máy chủ không được phép (Host not allowed; see web.allowed_hosts).",
                            code="bad_host")

    def check_origin(self, request: web.Request) -> None:
        """State changes from a browser must come from a page of this server."""
        if request.method in SAFE_METHODS:
            return
        origin = request.headers.get("Origin")
        if origin is None:
            return  # not a browser (a browser always names the origin of a POST)
        expected = f"{request.scheme}://{request.host}".lower()
        if origin.lower() != expected:
            raise Forbidden("Yêu cầu từ trang web khác bị từ chối (cross-origin request).", code="cross_origin")

    def is_screen(self, request: web.Request) -> bool:
        try:
            if ipaddress.ip_address(client_address(request)) in self.screen_addresses:
                return True
        except ValueError:
            pass
        presented = request.headers.get("X-Screen-Token")
        return bool(self.screen_token and presented
                    and hmac.compare_digest(presented.encode(), self.screen_token.encode()))

    def require_screen(self, request: web.Request) -> None:
        if not self.is_screen(request):
            raise Forbidden("Chỉ màn hình kiosk mới thực hiện được thao tác này (kiosk screen only).",
                            code="screen_only")


def require_json(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise NotJson("Dữ liệu gửi lên phải là JSON (Content-Type: application/json).")


class TokenBuckets:
    """A token bucket per key: `burst` at once, refilled at `per_minute`."""

    def __init__(self, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def take(self, key: str) -> None:
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise RateLimited("Quá nhiều yêu cầu. Xin thử lại sau giây lát.", (1 - tokens) / self.rate)
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > _BUCKET_MEMORY:
            self._buckets.popitem(last=False)
