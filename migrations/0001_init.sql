-- Sessions: one row per live class or Q&A.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL,
    scheduled_start INTEGER,
    scheduled_end   INTEGER,
    settings        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    ended_at        INTEGER
);

-- The session timeline: every numbered room event, as the exact frame that was broadcast.
-- Room state (chat, hands, questions, stage, attendance) is rebuilt by folding it.
CREATE TABLE events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    type       TEXT NOT NULL,
    subject    TEXT,
    frame      TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX events_by_type ON events (session_id, type, seq);

-- Everyone who ever joined a session, with the last time the server saw them
-- (refreshed every few seconds; used to close attendance after a crash).
CREATE TABLE participants (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    identity   TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (session_id, identity)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
