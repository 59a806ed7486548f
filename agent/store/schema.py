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
    # 2: satisfaction ratings (one per ticket) and residents' feedback / petitions (agent.web).
    """
    CREATE TABLE ratings (
        id TEXT PRIMARY KEY,
        ticket TEXT NOT NULL UNIQUE,
        number TEXT NOT NULL,
        service TEXT NOT NULL,
        counter INTEGER,
        officer TEXT,
        score INTEGER NOT NULL,
        scale INTEGER NOT NULL,
        comment TEXT,
        at TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX ratings_counter ON ratings (counter, at);
    CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        phone TEXT,
        ticket TEXT,
        at TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX feedback_at ON feedback (at)
    """,
    # Check-ins: decisions only, minimised (keyed hash, last 4 digits); rows expire after retention.
    """
    CREATE TABLE checkins (
        id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        decision TEXT NOT NULL,
        code TEXT NOT NULL,
        ticket_id TEXT,
        resident_ref TEXT,
        id_last4 TEXT,
        masked_name TEXT,
        booking TEXT,
        dossier TEXT,
        expires_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX checkins_booking_once ON checkins (booking) WHERE decision = 'accepted' AND booking IS NOT NULL;
    CREATE INDEX checkins_expiry ON checkins (expires_at)
    """,
    # MQTT sync state (agent.sync): what the broker took (PUBACK) and what central durably stored (ack).
    """
    CREATE TABLE sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        sent_seq INTEGER NOT NULL DEFAULT 0,
        acked_seq INTEGER NOT NULL DEFAULT 0,
        acked_at TEXT,
        updated_at TEXT
    );
    INSERT INTO sync_state (id) VALUES (1)
    """,
    # 5: indexes that only cover the rows they serve, so issuing a ticket (a waiting row) writes
    # fewer index pages per commit: the counter lookup needs active tickets, the estimate done ones.
    """
    DROP INDEX tickets_counter;
    CREATE INDEX tickets_active ON tickets (counter) WHERE state IN ('called', 'serving');
    DROP INDEX tickets_finished;
    CREATE INDEX tickets_done ON tickets (service, finished_at) WHERE state = 'done'
    """,
    # 6: the day's counters (numbers per prefix, tickets per service for the cap) as one small
    # clustered table: a ticket touches one page for both instead of a table, its key index and a
    # (day, service) index on tickets.
    """
    CREATE TABLE daily_counts (
        day TEXT NOT NULL,
        key TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (day, key)
    ) WITHOUT ROWID;
    INSERT INTO daily_counts (day, key, value) SELECT day, 'prefix:' || prefix, last FROM number_counters;
    INSERT INTO daily_counts (day, key, value)
        SELECT day, 'service:' || first_service, COUNT(*) FROM tickets GROUP BY day, first_service;
    DROP TABLE number_counters;
    DROP INDEX tickets_day_service
    """,
    # 7: fewer pages written per ticket (measured: 8.6 → about 6 WAL frames per commit). Events lose
    # the UNIQUE index on id (a UUIDv7 made here; consumers deduplicate on seq). Tickets become a
    # WITHOUT ROWID table clustered on their time-ordered id, so the id needs no separate index.
    # The AUTOINCREMENT high-water mark is carried over, so a seq is never reused.
    """
    INSERT OR REPLACE INTO meta (key, value) SELECT 'seq_before_7', seq FROM sqlite_sequence WHERE name = 'events';
    CREATE TABLE events_v7 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        type TEXT NOT NULL,
        at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    INSERT INTO events_v7 (seq, id, type, at, data) SELECT seq, id, type, at, data FROM events;
    DROP TABLE events;
    ALTER TABLE events_v7 RENAME TO events;
    DELETE FROM sqlite_sequence WHERE name IN ('events', 'events_v7');
    INSERT INTO sqlite_sequence (name, seq) SELECT 'events', MAX(
        COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq_before_7'), 0),
        COALESCE((SELECT MAX(seq) FROM events), 0));
    DELETE FROM meta WHERE key = 'seq_before_7';
    CREATE TABLE tickets_v7 (
        id TEXT NOT NULL PRIMARY KEY,
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
    ) WITHOUT ROWID;
    INSERT INTO tickets_v7 SELECT id, day, number, prefix, service, first_service, priority, state, counter, recalls,
        source, resident, arrived_at, arrival, called_at, last_called_at, serving_at, finished_at FROM tickets;
    DROP TABLE tickets;
    ALTER TABLE tickets_v7 RENAME TO tickets;
    CREATE INDEX tickets_waiting ON tickets (state, service, arrival);
    CREATE INDEX tickets_active ON tickets (counter) WHERE state IN ('called', 'serving');
    CREATE INDEX tickets_done ON tickets (service, finished_at) WHERE state = 'done'
    """,
    # printed tickets (agent.printing): one row per finished print job, keyed by the event that asked
    # for it, written with the consumer's cursor in one transaction, so a restart neither loses a
    # ticket nor prints it twice.
    """
    CREATE TABLE print_jobs (
        seq INTEGER PRIMARY KEY,
        ticket TEXT NOT NULL,
        number TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX print_jobs_ticket ON print_jobs (ticket)
    """,
    # the event log's id (`log` in the envelope): random for a database created empty, "" for one that
    # already holds events (central stored those under log ""). A replaced or re-created database gets a
    # new id, so central stores its seqs beside the old log's instead of taking them for duplicates.
    """
    INSERT INTO meta(key, value)
    SELECT 'log', CASE WHEN EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events' AND seq > 0)
                       THEN '' ELSE lower(hex(randomblob(16))) END
    WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'log')
    """,
    # ID cards (h-privacy, issue #10 item 11): the last 4 digits next to the keyed hash made the ID
    # recoverable; they are no longer written, and those already written are erased.
    """
    UPDATE checkins SET id_last4 = NULL WHERE id_last4 IS NOT NULL
    """,
]
