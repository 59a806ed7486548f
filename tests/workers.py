"""Writer processes for the concurrency and crash tests: `python -m tests.workers DATA_DIR COUNT SERVICE CATALOGUE`.

Each ticket is printed as one JSON line only after its transaction committed, exactly like the CLI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.core import Core
from agent.settings import load_settings


def main() -> None:
    data_dir, count, service, catalogue = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    settings = load_settings(storage={"data_dir": data_dir, "busy_timeout_ms": 30_000},
                             queue={"enforce_hours": False, "catalogue": catalogue})
    core = Core.open(settings)
    try:
        for _ in range(count):
            issued = core.queue.take(service, source="cli")
            sys.stdout.write(json.dumps({"number": issued.ticket.number, "id": issued.ticket.id,
                                         "seq": issued.seq}) + "\n")
            sys.stdout.flush()
    finally:
        core.close()


if __name__ == "__main__":
    main()
