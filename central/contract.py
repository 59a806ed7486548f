"""The part of the kiosk's wire contract central reads (docs/integration.md, "Event envelope").

Phase 2 moves these names into one shared contract module both programs import.
"""

from __future__ import annotations

from typing import Final

TICKET_ISSUED: Final = "ticket.issued"
TICKET_CALLED: Final = "ticket.called"
TICKET_DONE: Final = "ticket.done"
TICKET_NO_SHOW: Final = "ticket.no_show"
TICKET_CANCELLED: Final = "ticket.cancelled"
RATING_SUBMITTED: Final = "rating.submitted"
FEEDBACK_SUBMITTED: Final = "feedback.submitted"
CALL_ANSWERED: Final = "call.answered"
CALL_MISSED: Final = "call.missed"

# The table `kiosk central ingest` fills (agent/central/store.py); created here too, with the same
# definition, so `central serve` can start on an empty database before the first ingest.
# `log` is the kiosk database's event log: a replaced kiosk database starts a new one (seq from 1 again).
EVENTS_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS central_events (ward TEXT NOT NULL, kiosk TEXT NOT NULL, log TEXT NOT NULL DEFAULT '', "
    "seq BIGINT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL, "
    "received_at TEXT NOT NULL, PRIMARY KEY (ward, kiosk, log, seq))")
ACKS_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS central_acks (ward TEXT NOT NULL, kiosk TEXT NOT NULL, log TEXT NOT NULL DEFAULT '', "
    "seq BIGINT NOT NULL, id TEXT, at TEXT, diverged BIGINT, PRIMARY KEY (ward, kiosk, log))")

# Fleet (docs/integration.md, "MQTT topics" and "Commands"): `{root}/{ward}/{kiosk}/{leaf}`.
TOPIC_ROOT: Final = "wards"
STATUS_LEAF: Final = "status"
TELEMETRY_LEAF: Final = "telemetry"
REPLY_LEAF: Final = "reply"
COMMANDS: Final = ("ping", "status", "queue-snapshot", "resync", "set")


def command_topic(root: str, ward: str, kiosk: str, name: str) -> str:
    return f"{root}/{ward}/{kiosk}/cmd/{name}"
