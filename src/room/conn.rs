//! The room's view of one WebSocket connection: a bounded queue of encoded
//! frames and a way to close it with a code. The signal layer owns the socket.

use axum::extract::ws::Utf8Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Asks a connection to close with a WebSocket close code, once.
#[derive(Debug, Default)]
pub struct Closer {
    token: CancellationToken,
    /// Mirrors the token for the per-frame check: the token's own
    /// `is_cancelled` takes a lock, and fan-out asks once per frame.
    closed: AtomicBool,
    reason: Mutex<Option<(u16, String)>>,
}

impl Closer {
    /// The first close request wins; later ones are ignored.
    pub fn close(&self, code: u16, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some((code, reason.to_string()));
        }
        self.closed.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub async fn closed(&self) {
        self.token.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn reason(&self) -> Option<(u16, String)> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the room holds for each connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: u64,
    /// Encoded frames; bounded, so a stalled reader cannot grow memory.
    pub tx: mpsc::Sender<Utf8Bytes>,
    pub closer: Arc<Closer>,
}

/// Why a frame could not be queued.
pub enum SendFail {
    /// The queue is full: the reader is too slow.
    Full,
    /// The connection is gone.
    Closed,
}

impl ConnHandle {
    pub fn send(&self, frame: Utf8Bytes) -> Result<(), SendFail> {
        if self.closer.is_closed() {
            return Err(SendFail::Closed);
        }
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendFail::Full,
            mpsc::error::TrySendError::Closed(_) => SendFail::Closed,
        })
    }
}
