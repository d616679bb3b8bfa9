//! The embedded SQLite store (WAL mode, one writer connection, a few readers).

use super::{
    DeliveryQuery, DeliveryRow, DeliveryState, ParticipantRow, StoreError, StoredEvent, Write,
};
use crate::protocol::{Role, SessionInfo, SessionKind, SessionStatus, Timestamp};
use async_trait::async_trait;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct SqliteStore {
    /// Exactly one connection: writers queue here instead of spinning on SQLite's lock.
    writer: SqlitePool,
    readers: SqlitePool,
    /// One connection that only checkpoints (see [`checkpoints`]).
    checkpointer: SqlitePool,
    checkpoints: tokio::task::JoinHandle<()>,
}

/// Rows a multi-row INSERT takes at most (7 parameters each, far below
/// SQLite's limit of 32,766).
const ROWS_PER_INSERT: usize = 200;

/// Event and outbox writes waiting to be inserted together.
#[derive(Default)]
struct Rows<'a> {
    events: Vec<&'a Write>,
    outbox: Vec<&'a Write>,
}

impl Rows<'_> {
    async fn flush(&mut self, tx: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
        let events = "INSERT INTO events (session_id, seq, at, type, subject, frame) ";
        insert_many(tx, events, &self.events, |mut row, w| {
            if let Write::Event {
                session,
                seq,
                at,
                kind,
                subject,
                frame,
            } = w
            {
                row.push_bind(session.as_str())
                    .push_bind(*seq as i64)
                    .push_bind(at.millis())
                    .push_bind(*kind)
                    .push_bind(subject.as_deref())
                    .push_bind(frame.as_str());
            }
        })
        .await?;
        let outbox = "INSERT INTO outbox (session_id, seq, id, type, identity, at, body) ";
        insert_many(tx, outbox, &self.outbox, |mut row, w| {
            if let Write::Outbox {
                session,
                seq,
                id,
                kind,
                identity,
                at,
                body,
                ..
            } = w
            {
                row.push_bind(session.as_str())
                    .push_bind(*seq as i64)
                    .push_bind(id.as_str())
                    .push_bind(*kind)
                    .push_bind(identity.as_str())
                    .push_bind(at.millis())
                    .push_bind(body.as_str());
            }
        })
        .await?;
        // One pending delivery per outbox row and grading sink.
        let deliveries: Vec<(&str, &str, i64, i64)> = self
            .outbox
            .iter()
            .flat_map(|w| match w {
                Write::Outbox {
                    session,
                    seq,
                    at,
                    sinks,
                    ..
                } => sinks
                    .iter()
                    .map(|sink| (sink.as_str(), session.as_str(), *seq as i64, at.millis()))
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        let pending =
            "INSERT INTO deliveries (sink, session_id, seq, state, attempts, next_at, updated_at) ";
        insert_many(
            tx,
            pending,
            &deliveries,
            |mut row, (sink, session, seq, at)| {
                row.push_bind(*sink)
                    .push_bind(*session)
                    .push_bind(*seq)
                    .push_bind("pending")
                    .push_bind(0_i64)
                    .push_bind(*at)
                    .push_bind(*at);
            },
        )
        .await?;
        self.events.clear();
        self.outbox.clear();
        Ok(())
    }
}

/// Inserts `rows`, [`ROWS_PER_INSERT`] a statement: `head` is the statement
/// up to `VALUES`, `bind` binds one row's values.
async fn insert_many<'a, T: Sync>(
    tx: &mut sqlx::SqliteConnection,
    head: &str,
    rows: &'a [T],
    mut bind: impl FnMut(Separated<'_, 'a, Sqlite, &'static str>, &'a T) + Send,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::new(head);
        q.push_values(chunk, &mut bind);
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `lectern.db` in `dir` and runs the migrations.
    pub async fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("lectern.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives a process crash; only an OS crash
            // can lose the last few commits, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The writer's commits copy the log back themselves only as a last
        // resort, past `BACKSTOP_PAGES`; see `checkpoints`.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(
                opts.clone()
                    .pragma("wal_autocheckpoint", BACKSTOP_PAGES.to_string()),
            )
            .await?;
        MIGRATOR.run(&writer).await?;
        // It never waits for a lock: busy means "next time".
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().busy_timeout(Duration::ZERO))
            .await?;
        let checkpoints = tokio::spawn(checkpoints(checkpointer.clone()));
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteStore {
            writer,
            readers,
            checkpointer,
            checkpoints,
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpoints.abort();
    }
}

/// How often the write-ahead log is copied back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// A write-ahead log of at least this many pages is started over (SQLite's
/// own threshold for copying it back).
const RESTART_PAGES: i64 = 1000;
/// A log this long (40 MB) is copied back by the writer's next commit, as
/// SQLite does by default at 1,000 pages: when the checkpoints beside it
/// have not managed to start it over (a writer busy without pause, a reader
/// that keeps reading). Most of it has been copied already by then.
const BACKSTOP_PAGES: i64 = 10_000;

/// Copies the write-ahead log back into the database, and keeps it short.
///
/// By default, SQLite's commit that takes the log past 1,000 pages copies
/// it back itself: after a session of 5,000 ended, that commit took about
/// 180 ms, with every room waiting for it before sending. Here the writer's
/// commits do that only past [`BACKSTOP_PAGES`]. Instead, ten times a
/// second, on a connection of its own that never waits for a lock:
///
/// 1. A PASSIVE checkpoint copies the log back without blocking the writer
///    or the readers.
/// 2. That one rarely catches up with a writer that keeps writing, and
///    only a checkpoint that caught up lets the writer start the log over
///    (without it, the log grew to 28 MB while 16 MB were written). So when
///    the log is past [`RESTART_PAGES`] and the first copied all it found,
///    a RESTART checkpoint follows. It takes the write lock only if no
///    commit is under way (else it gives up at once), copies what came in
///    since the first, and leaves the log to be started over. Holding the
///    lock while copying more than that (by queueing behind a large
///    commit) held the writer for 0.2 s.
async fn checkpoints(pool: SqlitePool) {
    /// Pages in the log, and pages of it copied back.
    async fn checkpoint(pool: &SqlitePool, mode: &str) -> Result<(i64, i64), sqlx::Error> {
        // (busy, pages in the log, pages copied back)
        let (_, log, copied): (i64, i64, i64) =
            sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
                .fetch_one(pool)
                .await?;
        Ok((log, copied))
    }
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A failure (a full disk) is logged when it starts and when it ends,
    // not ten times a second.
    let mut failing = false;
    loop {
        every.tick().await;
        let mut r = checkpoint(&pool, "PASSIVE").await;
        if let Ok((log, copied)) = r {
            if log >= RESTART_PAGES && copied == log {
                r = checkpoint(&pool, "RESTART").await;
            }
        }
        match r {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(
                    "checkpointing the write-ahead log failed (retried ten times a second): {e}"
                );
            }
            Ok(_) if failing => {
                failing = false;
                tracing::info!("checkpointing the write-ahead log works again");
            }
            _ => {}
        }
    }
}

fn session_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<SessionInfo, StoreError> {
    let kind: String = r.get("kind");
    let status: String = r.get("status");
    let settings: String = r.get("settings");
    let ts = |col: &str| r.get::<Option<i64>, _>(col).map(Timestamp);
    Ok(SessionInfo {
        id: r.get("id"),
        title: r.get("title"),
        kind: SessionKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("session kind {kind:?}")))?,
        status: SessionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("session status {status:?}")))?,
        scheduled_start: ts("scheduled_start"),
        scheduled_end: ts("scheduled_end"),
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("session settings: {e}")))?,
        created_at: Timestamp(r.get("created_at")),
        started_at: ts("started_at"),
        ended_at: ts("ended_at"),
    })
}

#[async_trait]
impl super::Store for SqliteStore {
    async fn get_session(&self, id: &str) -> Result<Option<SessionInfo>, StoreError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(&self) -> Result<Vec<SessionInfo>, StoreError> {
        let rows = sqlx::query("SELECT * FROM sessions ORDER BY created_at, id")
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn events(
        &self,
        session: &str,
        after: u64,
        limit: Option<u64>,
        kinds: &[&str],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut q =
            QueryBuilder::new("SELECT seq, at, type, frame FROM events WHERE session_id = ");
        q.push_bind(session)
            .push(" AND seq > ")
            .push_bind(after as i64);
        if !kinds.is_empty() {
            q.push(" AND type IN (");
            let mut sep = q.separated(", ");
            for k in kinds {
                sep.push_bind(*k);
            }
            q.push(")");
        }
        q.push(" ORDER BY seq");
        if let Some(limit) = limit {
            q.push(" LIMIT ").push_bind(limit as i64);
        }
        let rows = q.build().fetch_all(&self.readers).await?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                seq: r.get::<i64, _>("seq") as u64,
                at: Timestamp(r.get("at")),
                kind: r.get("type"),
                frame: r.get("frame"),
            })
            .collect())
    }

    async fn participants(&self, session: &str) -> Result<Vec<ParticipantRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT identity, name, role, first_seen, last_seen FROM participants
             WHERE session_id = ? ORDER BY first_seen, identity",
        )
        .bind(session)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.get("role");
                Ok(ParticipantRow {
                    identity: r.get("identity"),
                    name: r.get("name"),
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                    first_seen: Timestamp(r.get("first_seen")),
                    last_seen: Timestamp(r.get("last_seen")),
                })
            })
            .collect()
    }

    async fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        // Events and outbox rows, the bulk of most batches, are inserted
        // many rows a statement: one statement per row cost about 15 µs of
        // the single writer each (a session ending with 5,000 present
        // writes 10,000 outbox rows). They are flushed before any other
        // kind of write, so the order between tables stays as given.
        let mut rows = Rows::default();
        for w in batch {
            match w {
                Write::Event { .. } => rows.events.push(w),
                Write::Outbox { .. } => rows.outbox.push(w),
                _ => rows.flush(&mut tx).await?,
            }
            match w {
                Write::Event { .. } | Write::Outbox { .. } => {}
                Write::Participant {
                    session,
                    identity,
                    name,
                    role,
                    at,
                } => {
                    sqlx::query(
                        "INSERT INTO participants (session_id, identity, name, role, first_seen, last_seen)
                         VALUES (?, ?, ?, ?, ?, ?)
                         ON CONFLICT (session_id, identity) DO UPDATE
                         SET name = excluded.name, role = excluded.role, last_seen = excluded.last_seen",
                    )
                    .bind(session)
                    .bind(identity)
                    .bind(name)
                    .bind(role.as_str())
                    .bind(at.millis())
                    .bind(at.millis())
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Seen {
                    session,
                    identities,
                    at,
                } => {
                    for chunk in identities.chunks(500) {
                        let mut q = QueryBuilder::new("UPDATE participants SET last_seen = ");
                        q.push_bind(at.millis())
                            .push(" WHERE session_id = ")
                            .push_bind(session)
                            .push(" AND identity IN (");
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(id);
                        }
                        q.push(")");
                        q.build().execute(&mut *tx).await?;
                    }
                }
                Write::Session(s) => {
                    let settings = serde_json::to_string(&s.settings)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    sqlx::query(
                        "INSERT INTO sessions (id, title, kind, status, scheduled_start, scheduled_end,
                                               settings, created_at, started_at, ended_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (id) DO UPDATE SET
                           title = excluded.title, status = excluded.status,
                           scheduled_start = excluded.scheduled_start, scheduled_end = excluded.scheduled_end,
                           settings = excluded.settings, started_at = excluded.started_at,
                           ended_at = excluded.ended_at",
                    )
                    .bind(&s.id)
                    .bind(&s.title)
                    .bind(s.kind.as_str())
                    .bind(s.status.as_str())
                    .bind(s.scheduled_start.map(Timestamp::millis))
                    .bind(s.scheduled_end.map(Timestamp::millis))
                    .bind(settings)
                    .bind(s.created_at.millis())
                    .bind(s.started_at.map(Timestamp::millis))
                    .bind(s.ended_at.map(Timestamp::millis))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        rows.flush(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.checkpoints.abort();
        self.checkpointer.close().await;
        self.readers.close().await;
        self.writer.close().await;
    }

    async fn pending_deliveries(
        &self,
        sink: &str,
        now: Timestamp,
        per_session: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        // Sessions whose oldest pending event is due; from each, at most
        // `per_session` events in order. Bodies of sessions that are waiting
        // for a retry are not read.
        let rows = sqlx::query(&format!(
            "WITH heads AS (
                 SELECT session_id, MIN(seq) AS seq FROM deliveries
                 WHERE sink = ? AND state = 'pending' GROUP BY session_id),
             due AS (
                 SELECT h.session_id FROM heads h
                 JOIN deliveries hd ON hd.sink = ? AND hd.session_id = h.session_id AND hd.seq = h.seq
                 WHERE hd.next_at <= ?),
             ranked AS (
                 SELECT d.session_id, d.seq,
                        ROW_NUMBER() OVER (PARTITION BY d.session_id ORDER BY d.seq) AS n
                 FROM deliveries d JOIN due USING (session_id)
                 WHERE d.sink = ? AND d.state = 'pending')
             {DELIVERY_SELECT}
             JOIN ranked r ON r.session_id = d.session_id AND r.seq = d.seq
             WHERE d.sink = ? AND r.n <= ?
             ORDER BY d.session_id, d.seq"
        ))
        .bind(sink)
        .bind(sink)
        .bind(now.millis())
        .bind(sink)
        .bind(sink)
        .bind(per_session as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    async fn next_delivery_due(&self, sink: &str) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(hd.next_at) FROM (
                 SELECT session_id, MIN(seq) AS seq FROM deliveries
                 WHERE sink = ? AND state = 'pending' GROUP BY session_id) h
             JOIN deliveries hd ON hd.sink = ? AND hd.session_id = h.session_id AND hd.seq = h.seq",
        )
        .bind(sink)
        .bind(sink)
        .fetch_one(&self.readers)
        .await?;
        Ok(at.map(Timestamp))
    }

    async fn deliveries_done(
        &self,
        sink: &str,
        session: &str,
        seqs: &[u64],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for seq in seqs {
            sqlx::query(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1,
                   first_attempt_at = COALESCE(first_attempt_at, ?), last_error = NULL, updated_at = ?
                 WHERE sink = ? AND session_id = ? AND seq = ?",
            )
            .bind(at.millis())
            .bind(at.millis())
            .bind(sink)
            .bind(session)
            .bind(*seq as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries_failed(
        &self,
        sink: &str,
        session: &str,
        seqs: &[u64],
        at: Timestamp,
        next_at: Option<Timestamp>,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for seq in seqs {
            sqlx::query(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_at = ?,
                   first_attempt_at = COALESCE(first_attempt_at, ?), last_error = ?, updated_at = ?
                 WHERE sink = ? AND session_id = ? AND seq = ?",
            )
            .bind(if next_at.is_some() { "pending" } else { "dead" })
            .bind(next_at.unwrap_or(at).millis())
            .bind(at.millis())
            .bind(error)
            .bind(at.millis())
            .bind(sink)
            .bind(session)
            .bind(*seq as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        sink: &str,
        q: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut b = QueryBuilder::new(DELIVERY_SELECT);
        b.push(" WHERE d.sink = ").push_bind(sink);
        if let Some(s) = &q.session {
            b.push(" AND d.session_id = ").push_bind(s.clone());
        }
        if let Some(st) = q.state {
            b.push(" AND d.state = ").push_bind(st.as_str());
        }
        if let Some((s, seq)) = &q.after {
            b.push(" AND (d.session_id > ")
                .push_bind(s.clone())
                .push(" OR (d.session_id = ")
                .push_bind(s.clone())
                .push(" AND d.seq > ")
                .push_bind(*seq as i64)
                .push("))");
        }
        b.push(" ORDER BY d.session_id, d.seq LIMIT ")
            .push_bind(q.limit.clamp(1, 1000) as i64);
        let rows = b.build().fetch_all(&self.readers).await?;
        rows.iter().map(delivery_row).collect()
    }

    async fn redeliver(
        &self,
        sink: &str,
        session: &str,
        from: u64,
        to: u64,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?, first_attempt_at = NULL,
               last_error = NULL, updated_at = ?
             WHERE sink = ? AND session_id = ? AND seq BETWEEN ? AND ?",
        )
        .bind(at.millis())
        .bind(at.millis())
        .bind(sink)
        .bind(session)
        .bind(from as i64)
        .bind(to as i64)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }
}

const DELIVERY_SELECT: &str =
    "SELECT d.sink, d.session_id, d.seq, o.id, o.type, d.state, d.attempts,
    d.next_at, d.first_attempt_at, d.last_error, d.updated_at, o.body
    FROM deliveries d JOIN outbox o ON o.session_id = d.session_id AND o.seq = d.seq";

fn delivery_row(r: &sqlx::sqlite::SqliteRow) -> Result<DeliveryRow, StoreError> {
    let state: String = r.try_get(5)?;
    Ok(DeliveryRow {
        sink: r.try_get(0)?,
        session_id: r.try_get(1)?,
        seq: r.try_get::<i64, _>(2)? as u64,
        event_id: r.try_get(3)?,
        kind: r.try_get(4)?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state:?}")))?,
        attempts: r.try_get::<i64, _>(6)? as u32,
        next_at: Timestamp(r.try_get(7)?),
        first_attempt_at: r.try_get::<Option<i64>, _>(8)?.map(Timestamp),
        last_error: r.try_get(9)?,
        updated_at: Timestamp(r.try_get(10)?),
        body: r.try_get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use tungstenite::Utf8Bytes;

    /// A log far too short for the writer's own checkpoint still reaches
    /// the database file within moments, copied beside the writer.
    #[tokio::test]
    async fn the_write_ahead_log_is_copied_back_beside_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let now = Timestamp::now();
        store
            .apply(&[Write::Session(session("s1", now))])
            .await
            .unwrap();
        let db = dir.path().join("lectern.db");
        let before = std::fs::metadata(&db).unwrap().len();
        // About 1 MB: some 250 pages.
        let frame: Utf8Bytes = "x".repeat(2000).into();
        let writes: Vec<Write> = (1..=500)
            .map(|seq| Write::Event {
                session: "s1".into(),
                seq,
                at: now,
                kind: "chat_message",
                subject: None,
                frame: frame.clone(),
            })
            .collect();
        store.apply(&writes).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let len = std::fs::metadata(&db).unwrap().len();
            if len > before + 900_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {len} bytes (from {before}): nothing checkpoints"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        store.close().await;
    }

    /// Under steady writes (which a passive checkpoint never catches up
    /// with) the log is still started over, so its file stays small.
    #[tokio::test]
    async fn the_write_ahead_log_stays_small_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let now = Timestamp::now();
        store
            .apply(&[Write::Session(session("s1", now))])
            .await
            .unwrap();
        let wal = dir.path().join("lectern.db-wal");
        let frame: Utf8Bytes = "x".repeat(2000).into();
        // 16 MB in batches of 40 kB, at most about 4 MB a second: some 28 MB
        // of log if it is never started over; started over once a second
        // past 1,000 pages (4 MB), it stays near 4 MB plus a second's worth.
        let mut largest = 0;
        for batch in 0..400u64 {
            let writes: Vec<Write> = (1..=20)
                .map(|i| Write::Event {
                    session: "s1".into(),
                    seq: batch * 20 + i,
                    at: now,
                    kind: "chat_message",
                    subject: None,
                    frame: frame.clone(),
                })
                .collect();
            store.apply(&writes).await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).unwrap().len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            largest < 18_000_000,
            "the log grew to {largest} bytes while 16 MB were written"
        );
        store.close().await;
    }

    fn session(id: &str, now: Timestamp) -> SessionInfo {
        SessionInfo {
            id: id.into(),
            title: "t".into(),
            kind: SessionKind::Seminar,
            status: SessionStatus::Live,
            scheduled_start: None,
            scheduled_end: None,
            settings: Default::default(),
            created_at: now,
            started_at: Some(now),
            ended_at: None,
        }
    }
}
