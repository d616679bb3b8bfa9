//! The room's view of one WebSocket connection: a bounded queue of encoded
//! frames and a way to close it with a code. The signal layer owns the socket.

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Asks a connection to close with a WebSocket close code, once.
#[derive(Debug, Default)]
pub struct Closer {
    token: CancellationToken,
    /// Mirrors the token for the per-frame check: the token's own
    /// `is_cancelled` takes a lock, and fan-out asks once per frame.
    closed: AtomicBool,
    /// The writer's waker: re-arming it is two atomic operations, where the
    /// token's future takes a lock on every poll (the writer polls once
    /// per wake-up, so once per delivered burst).
    writer: AtomicWaker,
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
        self.writer.wake();
        self.token.cancel();
    }

    /// Resolves once the connection is asked to close. For one task only
    /// (the connection's writer): a second waiter would steal its wake-up.
    pub fn writer_closed(&self) -> WriterClosed<'_> {
        WriterClosed(self)
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

/// See [`Closer::writer_closed`].
pub struct WriterClosed<'a>(&'a Closer);

impl Future for WriterClosed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_closed() {
            return Poll::Ready(());
        }
        self.0.writer.register(cx.waker());
        // A close between the check and the registration woke nobody.
        if self.0.is_closed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writer_closed_wakes_a_waiting_writer_and_reports_the_first_reason() {
        let closer = Arc::new(Closer::default());
        let c = closer.clone();
        let writer = tokio::spawn(async move { c.writer_closed().await });
        tokio::task::yield_now().await;
        assert!(!writer.is_finished());
        closer.close(4008, "slow");
        closer.close(1000, "later");
        writer.await.unwrap();
        assert_eq!(closer.reason(), Some((4008, "slow".into())));
        // Already closed: ready at once.
        closer.writer_closed().await;
    }
}
