//! The embedded SQLite store (WAL mode, one writer connection, a few readers).

use super::{ParticipantRow, StoreError, StoredEvent, Write};
use crate::protocol::{Role, SessionInfo, SessionKind, SessionStatus, Timestamp};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct SqliteStore {
    /// Exactly one connection: writers queue here instead of spinning on SQLite's lock.
    writer: SqlitePool,
    readers: SqlitePool,
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteStore { writer, readers })
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
        for w in batch {
            match w {
                Write::Event {
                    session,
                    seq,
                    at,
                    kind,
                    subject,
                    frame,
                } => {
                    sqlx::query(
                        "INSERT INTO events (session_id, seq, at, type, subject, frame)
                         VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(session)
                    .bind(*seq as i64)
                    .bind(at.millis())
                    .bind(*kind)
                    .bind(subject.as_deref())
                    .bind(frame.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
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
        self.readers.close().await;
        self.writer.close().await;
    }
}
