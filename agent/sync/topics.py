"""The MQTT topic names of one kiosk (ARCHITECTURE.md, "MQTT topics")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KioskTopics:
    root: str
    ward: str
    kiosk: str

    @property
    def base(self) -> str:
        return f"{self.root}/{self.ward}/{self.kiosk}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def ack(self) -> str:
        return f"{self.base}/ack"

    @property
    def commands(self) -> str:
        return f"{self.base}/cmd/+"

    @property
    def reply(self) -> str:
        return f"{self.base}/reply"

    def command_name(self, topic: str) -> str:
        return topic.rsplit("/", 1)[-1]

    def may_reply_to(self, topic: str) -> bool:
        """A kiosk replies only under its own reply topics: the broker's ACL allows nothing else."""
        return topic == self.reply or topic.startswith(self.reply + "/")


def parse_kiosk_topic(topic: str) -> tuple[str, str, str, str] | None:
    """`{root}/{ward}/{kiosk}/{leaf}` → (root, ward, kiosk, leaf); None for other shapes."""
    parts = topic.split("/")
    if len(parts) != 4:
        return None
    root, ward, kiosk, leaf = parts
    return root, ward, kiosk, leaf
