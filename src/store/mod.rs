//! Persistence behind a trait. The room layer decides what to write; a store
//! only writes it (one transaction per batch) and reads it back.
//!
//! The timeline (`events`) is the source of truth for room state: chat,
//! questions, hands, stage and attendance are rebuilt by folding it, so a
//! restart on the same data directory shows exactly what clients saw.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::protocol::{Role, SessionInfo, Timestamp};
use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("storage migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One row to write. A batch of them is applied in a single transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// A numbered room event and the exact frame sent for it.
    Event {
        session: String,
        seq: u64,
        at: Timestamp,
        kind: &'static str,
        subject: Option<String>,
        frame: Utf8Bytes,
    },
    /// Someone joined: remember their name and role, refresh `last_seen`.
    Participant {
        session: String,
        identity: String,
        name: String,
        role: Role,
        at: Timestamp,
    },
    /// These members were present at `at`.
    Seen {
        session: String,
        identities: Vec<String>,
        at: Timestamp,
    },
    /// Insert or replace a session row.
    Session(SessionInfo),
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub at: Timestamp,
    pub kind: String,
    pub frame: String,
}

/// A participants-table row.
#[derive(Debug, Clone)]
pub struct ParticipantRow {
    pub identity: String,
    pub name: String,
    pub role: Role,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get_session(&self, id: &str) -> Result<Option<SessionInfo>, StoreError>;
    async fn list_sessions(&self) -> Result<Vec<SessionInfo>, StoreError>;
    /// Events with `seq > after`, oldest first, at most `limit` of them
    /// (`kinds` restricts to those frame types when not empty).
    async fn events(
        &self,
        session: &str,
        after: u64,
        limit: Option<u64>,
        kinds: &[&str],
    ) -> Result<Vec<StoredEvent>, StoreError>;
    async fn participants(&self, session: &str) -> Result<Vec<ParticipantRow>, StoreError>;
    /// Applies every write, or none of them.
    async fn apply(&self, batch: &[Write]) -> Result<(), StoreError>;
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Flushes and closes; further calls fail.
    async fn close(&self);
}

pub type DynStore = Arc<dyn Store>;
