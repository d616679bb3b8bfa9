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
use std::sync::Arc;
use tungstenite::Utf8Bytes;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("storage migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("this store does not keep a grading outbox")]
    Unsupported,
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
    /// A participation event for grading, and a pending delivery of it to
    /// each configured sink (docs/grading.md).
    Outbox {
        session: String,
        seq: u64,
        id: String,
        kind: &'static str,
        identity: String,
        at: Timestamp,
        /// The event as delivered (JSON).
        body: String,
        sinks: Arc<[String]>,
    },
}

/// Where a delivery stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after the retry schedule (dead-lettered); redeliver to retry.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }
}

/// One participation event's delivery to one sink.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    pub sink: String,
    pub session_id: String,
    pub seq: u64,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When the next attempt is due (pending), or was last made.
    pub next_at: Timestamp,
    pub first_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub updated_at: Timestamp,
    /// The event as delivered (JSON text).
    #[serde(skip)]
    pub body: String,
}

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub session: Option<String>,
    pub state: Option<DeliveryState>,
    /// Only rows after this (session, seq), for paging.
    pub after: Option<(String, u64)>,
    pub limit: u32,
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

    /// Pending deliveries of a sink that may be sent at `now`: from every
    /// session whose oldest pending event is due, its first `per_session`
    /// pending events, by session and number.
    async fn pending_deliveries(
        &self,
        _sink: &str,
        _now: Timestamp,
        _per_session: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        Err(StoreError::Unsupported)
    }
    /// When the earliest waiting session of a sink is due again.
    async fn next_delivery_due(&self, _sink: &str) -> Result<Option<Timestamp>, StoreError> {
        Err(StoreError::Unsupported)
    }
    /// Marks deliveries as done.
    async fn deliveries_done(
        &self,
        _sink: &str,
        _session: &str,
        _seqs: &[u64],
        _at: Timestamp,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unsupported)
    }
    /// Records a failed attempt: retry at `next_at`, or dead-letter when `None`.
    async fn deliveries_failed(
        &self,
        _sink: &str,
        _session: &str,
        _seqs: &[u64],
        _at: Timestamp,
        _next_at: Option<Timestamp>,
        _error: &str,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unsupported)
    }
    async fn list_deliveries(
        &self,
        _sink: &str,
        _q: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        Err(StoreError::Unsupported)
    }
    /// Makes deliveries `from..=to` of a session pending again, due now.
    /// Returns how many.
    async fn redeliver(
        &self,
        _sink: &str,
        _session: &str,
        _from: u64,
        _to: u64,
        _at: Timestamp,
    ) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported)
    }
}

pub type DynStore = Arc<dyn Store>;
