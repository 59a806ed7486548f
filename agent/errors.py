"""One error hierarchy for ward-kiosk.

Every error a user can cause carries a readable sentence (Vietnamese or English for technicians) and a
machine ``code``; the CLI prints the sentence on one line and exits 1, the HTTP API answers
``{"error": message, "code": code}`` with a 4xx status.
"""

from __future__ import annotations


class KioskError(Exception):
    """Base of every error ward-kiosk raises on purpose."""

    code: str = "error"
    http_status: int = 400

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(KioskError):
    """The configuration file or environment is invalid."""

    code = "config_invalid"


class NotFound(KioskError):
    """A ticket, service, counter or call that does not exist."""

    code = "not_found"
    http_status = 404


class Refused(KioskError):
    """A valid request the queue refuses by rule (closed, cap reached, wrong counter, wrong state)."""

    code = "refused"
    http_status = 409


class InvalidInput(KioskError):
    """A request whose shape or values are wrong."""

    code = "invalid_input"
    http_status = 422


class Unauthorized(KioskError):
    """Missing or wrong counter PIN/token or credentials."""

    code = "unauthorized"
    http_status = 401


class StorageError(KioskError):
    """The local database cannot be written (disk full, read-only, corrupt)."""

    code = "storage_error"
    http_status = 503
