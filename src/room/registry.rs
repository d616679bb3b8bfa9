//! Finds the room actor of a session, starting it when needed.
//!
//! The map only locates rooms; their state lives in the actors. An actor
//! that stops removes itself and hands queued joins back with `Retry`, so a
//! session never has two owners.

use super::actor::{start_room, JoinError, RoomCmd};
use super::conn::ConnHandle;
use super::logic::{Actor, Rejection};
use crate::auth::TokenKey;
use crate::config::Limits;
use crate::http::metrics::Metrics;
use crate::protocol::{ErrorCode, SessionInfo, SessionSettings, Timestamp};
use crate::store::DynStore;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Commands a room may queue before senders wait.
const ROOM_QUEUE: usize = 4096;

#[derive(Clone)]
pub(super) struct RoomHandle {
    pub(super) tx: mpsc::Sender<RoomCmd>,
    pub(super) gen: u64,
}

/// What every room shares.
pub(super) struct Shared {
    pub(super) store: DynStore,
    pub(super) limits: Limits,
    pub(super) metrics: Arc<Metrics>,
    pub(super) keys: TokenKey,
    pub(super) sfu: Arc<crate::media::Sfu>,
    pub(super) grading: Arc<crate::grading::Hub>,
    pub(super) rooms: DashMap<String, RoomHandle>,
    /// Leaves at the end of grace periods, server-wide, per second
    /// (`limits.leaves_per_sec`).
    pub(super) expiries: super::budget::Budget,
    closing: AtomicBool,
    next_gen: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("no such session")]
    NotFound,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{}", .0.message)]
    Rejected(Rejection),
}

impl RoomError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RoomError::NotFound => ErrorCode::NotFound,
            RoomError::ShuttingDown => ErrorCode::StorageUnavailable,
            RoomError::Rejected(r) => r.code,
        }
    }
}

/// A change to a session's title, schedule or settings (REST `PATCH`).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPatch {
    pub title: Option<String>,
    pub scheduled_start: Option<Timestamp>,
    pub scheduled_end: Option<Timestamp>,
    pub settings: Option<SessionSettings>,
}

impl SessionPatch {
    pub fn apply_to(&self, s: &mut SessionInfo) {
        if let Some(t) = &self.title {
            s.title = t.clone();
        }
        if let Some(t) = self.scheduled_start {
            s.scheduled_start = Some(t);
        }
        if let Some(t) = self.scheduled_end {
            s.scheduled_end = Some(t);
        }
        if let Some(st) = &self.settings {
            s.settings = st.clone();
        }
    }
}

/// All live rooms of this server.
#[derive(Clone)]
pub struct Rooms {
    shared: Arc<Shared>,
}

impl Rooms {
    pub fn new(
        store: DynStore,
        limits: Limits,
        metrics: Arc<Metrics>,
        keys: TokenKey,
        sfu: Arc<crate::media::Sfu>,
        grading: Arc<crate::grading::Hub>,
    ) -> Rooms {
        let expiries = super::budget::Budget::new(limits.leaves_per_sec, std::time::Instant::now());
        Rooms {
            shared: Arc::new(Shared {
                store,
                limits,
                metrics,
                keys,
                sfu,
                grading,
                rooms: DashMap::new(),
                expiries,
                closing: AtomicBool::new(false),
                next_gen: AtomicU64::new(1),
            }),
        }
    }

    /// The running actor of a session, started (and its state loaded) if needed.
    async fn handle(&self, id: &str) -> Result<RoomHandle, RoomError> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(RoomError::ShuttingDown);
        }
        if let Some(h) = self.shared.rooms.get(id) {
            return Ok(h.clone());
        }
        // A cheap existence check; the room loads its state in its own task.
        match self.shared.store.get_session(id).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(RoomError::NotFound),
            Err(e) => {
                tracing::error!(session = %id, "looking up session failed: {e}");
                return Err(RoomError::Rejected(Rejection::new(
                    ErrorCode::StorageUnavailable,
                    "storage is unavailable",
                )));
            }
        }
        let entry = self.shared.rooms.entry(id.to_string()).or_insert_with(|| {
            let gen = self.shared.next_gen.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel(ROOM_QUEUE);
            self.shared.metrics.rooms.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(start_room(id.to_string(), gen, self.shared.clone(), rx));
            RoomHandle { tx, gen }
        });
        Ok(entry.clone())
    }

    /// Sends a command, starting the room again if it stopped in between.
    async fn send(&self, id: &str, mut make: impl FnMut() -> RoomCmd) -> Result<(), RoomError> {
        for _ in 0..3 {
            let h = self.handle(id).await?;
            if h.tx.send(make()).await.is_ok() {
                return Ok(());
            }
            self.shared.rooms.remove_if(id, |_, cur| cur.gen == h.gen);
        }
        Err(RoomError::ShuttingDown)
    }

    /// Joins a connection to a session's room. On success the welcome (or
    /// resume) frame is already queued on the connection; returns the room's
    /// command sender for the connection's requests.
    pub async fn join(
        &self,
        session: &str,
        conn: ConnHandle,
        actor: Actor,
        last_seq: Option<u64>,
    ) -> Result<RoomLink, RoomError> {
        for _ in 0..3 {
            let h = self.handle(session).await?;
            let (reply, rx) = oneshot::channel();
            let cmd = RoomCmd::Join {
                conn: conn.clone(),
                actor: actor.clone(),
                last_seq,
                reply,
            };
            if h.tx.send(cmd).await.is_err() {
                self.shared
                    .rooms
                    .remove_if(session, |_, cur| cur.gen == h.gen);
                continue;
            }
            match rx.await {
                Ok(Ok(())) => {
                    return Ok(RoomLink {
                        tx: h.tx,
                        conn_id: conn.id,
                    })
                }
                Ok(Err(JoinError::Rejected(r))) => return Err(RoomError::Rejected(r)),
                Ok(Err(JoinError::Retry)) | Err(_) => continue,
            }
        }
        Err(RoomError::ShuttingDown)
    }

    /// Ends a session (admin API or host), closing everyone's attendance.
    pub async fn end(&self, session: &str, by: &str) -> Result<SessionInfo, RoomError> {
        self.ask(session, |reply| RoomCmd::End {
            by: by.to_string(),
            reply,
        })
        .await
    }

    /// Records stretches of a replay watched by `identity`.
    pub async fn replay_watched(
        &self,
        session: &str,
        recording_id: &str,
        identity: &str,
        name: &str,
        seconds: u32,
        ranges: Vec<[f64; 2]>,
    ) -> Result<SessionInfo, RoomError> {
        self.ask(session, |reply| RoomCmd::ReplayWatched {
            recording_id: recording_id.to_string(),
            identity: identity.to_string(),
            name: name.to_string(),
            seconds,
            ranges: ranges.clone(),
            reply,
        })
        .await
    }

    pub async fn update(
        &self,
        session: &str,
        patch: SessionPatch,
    ) -> Result<SessionInfo, RoomError> {
        self.ask(session, |reply| RoomCmd::Update {
            patch: patch.clone(),
            reply,
        })
        .await
    }

    async fn ask(
        &self,
        session: &str,
        make: impl Fn(oneshot::Sender<Result<SessionInfo, Rejection>>) -> RoomCmd,
    ) -> Result<SessionInfo, RoomError> {
        let mut rx_slot = None;
        self.send(session, || {
            let (tx, rx) = oneshot::channel();
            rx_slot = Some(rx);
            make(tx)
        })
        .await?;
        let rx = rx_slot.expect("send built a command");
        match rx.await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(r)) => Err(RoomError::Rejected(r)),
            Err(_) => Err(RoomError::ShuttingDown),
        }
    }

    /// Loads every live session once at start-up, so attendance left open by
    /// a crash is closed before anyone reads a report.
    pub async fn recover(&self) -> Result<(), crate::store::StoreError> {
        for s in self.shared.store.list_sessions().await? {
            if s.status == crate::protocol::SessionStatus::Live {
                let mut done = None;
                let sent = self
                    .send(&s.id, || {
                        let (reply, rx) = oneshot::channel();
                        done = Some(rx);
                        RoomCmd::Barrier { reply }
                    })
                    .await;
                match (sent, done) {
                    (Ok(()), Some(rx)) => {
                        let _ = rx.await;
                    }
                    (Err(e), _) => tracing::warn!(session = %s.id, "could not recover room: {e}"),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Stops accepting joins, and has every room close attendance, tell its
    /// clients and store everything. Returns when all rooms are done.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::Release);
        let handles: Vec<RoomHandle> = self
            .shared
            .rooms
            .iter()
            .map(|e| e.value().clone())
            .collect();
        let mut waits = Vec::new();
        for h in handles {
            let (reply, rx) = oneshot::channel();
            if h.tx.send(RoomCmd::Shutdown { reply }).await.is_ok() {
                waits.push(rx);
            }
        }
        for rx in waits {
            let _ = rx.await;
        }
    }

    pub fn live_rooms(&self) -> usize {
        self.shared.rooms.len()
    }
}

/// A joined connection's line to its room.
#[derive(Clone)]
pub struct RoomLink {
    tx: mpsc::Sender<RoomCmd>,
    conn_id: u64,
}

impl RoomLink {
    pub async fn request(
        &self,
        req_id: Option<crate::protocol::ReqId>,
        msg: crate::protocol::ClientMsg,
    ) {
        let _ = self
            .tx
            .send(RoomCmd::Request {
                conn_id: self.conn_id,
                req_id,
                msg,
            })
            .await;
    }

    pub async fn disconnected(&self) {
        let _ = self
            .tx
            .send(RoomCmd::Disconnected {
                conn_id: self.conn_id,
            })
            .await;
    }
}
