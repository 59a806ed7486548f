"""Schema migrations, applied in order; `PRAGMA user_version` is the number applied so far.

Never edit a released migration: append a new one.
"""

MIGRATIONS: list[str] = [
    # 1: the event log (the outbox), key/value meta, tickets and their numbering.
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE number_counters (
        day TEXT NOT NULL,
        prefix TEXT NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (day, prefix)
    );
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY,
        day TEXT NOT NULL,
        number TEXT NOT NULL,
        prefix TEXT NOT NULL,
        service TEXT NOT NULL,
        first_service TEXT NOT NULL,
        priority TEXT,
        state TEXT NOT NULL,
        counter INTEGER,
        recalls INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT 'kiosk',
        resident TEXT,
        arrived_at TEXT NOT NULL,
        arrival INTEGER NOT NULL,
        called_at TEXT,
        last_called_at TEXT,
        serving_at TEXT,
        finished_at TEXT,
        UNIQUE (day, number)
    );
    CREATE INDEX tickets_waiting ON tickets (state, service, arrival);
    CREATE INDEX tickets_counter ON tickets (counter, state);
    CREATE INDEX tickets_day_service ON tickets (day, first_service);
    CREATE INDEX tickets_finished ON tickets (service, state, finished_at);
    CREATE TABLE counter_state (
        counter INTEGER PRIMARY KEY,
        normal_streak INTEGER NOT NULL DEFAULT 0,
        priority_seen INTEGER NOT NULL DEFAULT 0
    )
    """,
]
