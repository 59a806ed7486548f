"""`GET /metrics` in the Prometheus text format (version 0.0.4), written by hand: a dozen series."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol


class AnnouncerStats(Protocol):
    played: int
    skipped_quiet: int
    dropped: int
    failed: int

    @property
    def pending(self) -> int: ...


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class WebMetrics:
    def __init__(self, extra: Sequence[Callable[[], list[str]]] = ()) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.extra = extra  # other parts' series (the printer), appended as they are

    def count(self, method: str, route: str, status: int) -> None:
        self.requests[(method, route, status)] += 1

    def render(self, *, last_seq: int, waiting: dict[str, int], live_clients: int, live_messages: int,
               auth_failures: int, announcer: AnnouncerStats | None) -> str:
        lines = [
            "# HELP kiosk_http_requests_total HTTP requests served, by route pattern and status.",
            "# TYPE kiosk_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'kiosk_http_requests_total{{method="{method}",route="{_label(route)}",'
                         f'status="{status}"}} {n}')
        lines += [
            "# HELP kiosk_event_last_seq Highest seq in the local event log.",
            "# TYPE kiosk_event_last_seq gauge",
            f"kiosk_event_last_seq {last_seq}",
            "# HELP kiosk_tickets_waiting Tickets waiting, per service.",
            "# TYPE kiosk_tickets_waiting gauge",
        ]
        lines += [f'kiosk_tickets_waiting{{service="{_label(code)}"}} {n}' for code, n in sorted(waiting.items())]
        lines += [
            "# HELP kiosk_live_clients Screens connected to the live stream.",
            "# TYPE kiosk_live_clients gauge",
            f"kiosk_live_clients {live_clients}",
            "# HELP kiosk_live_messages_total Messages sent on live streams.",
            "# TYPE kiosk_live_messages_total counter",
            f"kiosk_live_messages_total {live_messages}",
            "# HELP kiosk_counter_auth_failures_total Wrong counter PINs presented.",
            "# TYPE kiosk_counter_auth_failures_total counter",
            f"kiosk_counter_auth_failures_total {auth_failures}",
        ]
        if announcer is not None:
            for name, value, help_ in (
                ("played", announcer.played, "Call-outs played."),
                ("skipped_quiet", announcer.skipped_quiet, "Call-outs not spoken in quiet hours."),
                ("dropped", announcer.dropped, "Call-outs dropped because the queue was full."),
                ("failed", announcer.failed, "Call-outs that failed (speaker, speech)."),
            ):
                metric = f"kiosk_announcer_{name}_total"
                lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} counter", f"{metric} {value}"]
            lines += ["# HELP kiosk_announcer_pending Call-outs waiting to be played.",
                      "# TYPE kiosk_announcer_pending gauge", f"kiosk_announcer_pending {announcer.pending}"]
        for source in self.extra:
            lines += source()
        return "\n".join(lines) + "\n"
