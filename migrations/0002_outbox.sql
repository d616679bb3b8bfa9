-- Participation events for grading, written in the same transaction as the
-- room events that cause them (docs/grading.md).
CREATE TABLE outbox (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq        INTEGER NOT NULL,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    identity   TEXT NOT NULL,
    at         INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- One row per event and sink: pending until delivered, or dead after the
-- retry schedule. Delivered in order per session.
CREATE TABLE deliveries (
    sink             TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_at          INTEGER NOT NULL,
    first_attempt_at INTEGER,
    last_error       TEXT,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (sink, session_id, seq)
);
CREATE INDEX deliveries_by_state ON deliveries (sink, state, session_id, seq);
