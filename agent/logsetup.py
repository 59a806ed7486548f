"""How the command line logs: journald-friendly under systemd, timestamped elsewhere.

Under systemd (JOURNAL_STREAM set) stderr goes to the journal, which stamps each line itself and reads an
sd-daemon `<N>` prefix as the line's priority: so no timestamp, and every line of a traceback carries the
prefix (otherwise the journal would file the traceback's lines at the stream's default priority, INFO).
"""

from __future__ import annotations

import logging
import os
import sys

from agent import logrepeat

# syslog priorities of the sd-daemon prefixes (sd-daemon(3)).
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
_PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JournalFormatter(logging.Formatter):
    """`<N>logger: message`, each continuation line (traceback) with the same prefix."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


def under_journal() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM"))


def configure(verbose: bool) -> None:
    """Debug with -v, else WARNING: a one-shot command's output is its answer (daemons call `as_daemon`)."""
    level = logging.DEBUG if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if under_journal() else logging.Formatter(_PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logrepeat.install()  # a line repeating in a tight loop must not fill the disk


def as_daemon() -> None:
    """A command that runs until stopped logs at INFO: its start, connections and check-ins belong in the
    journal (-v's DEBUG stays)."""
    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
