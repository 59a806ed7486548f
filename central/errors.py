"""Central's errors: a readable sentence and a machine code, like the kiosk's, without importing it."""

from __future__ import annotations


class CentralError(Exception):
    """Base of every error central raises on purpose; `http_status` is what the web answers."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class BadInput(CentralError):
    code = "bad_input"


class NotFound(CentralError):
    code = "not_found"
    http_status = 404


class Forbidden(CentralError):
    code = "forbidden"
    http_status = 403


class Unauthorized(CentralError):
    code = "unauthorized"
    http_status = 401


class Throttled(CentralError):
    code = "throttled"
    http_status = 429


class DatabaseError(CentralError):
    code = "database"
    http_status = 503
