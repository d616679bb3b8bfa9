//! The room's view of one WebSocket connection: somewhere to send encoded
//! frames and a way to close it with a code. The signal layer owns the socket.

use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

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

    /// Wakes the connection's writer: it has frames to send.
    pub fn wake_writer(&self) {
        self.writer.wake();
    }

    /// Registers the writer's task for [`Closer::wake_writer`] and for the
    /// close (both wake the same task).
    pub fn register_writer(&self, cx: &Context<'_>) {
        self.writer.register(cx.waker());
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

/// Where a connection's frames go. The socket's side implements it; the
/// room only needs to know that a frame was taken, or why not.
pub trait FrameSink: Send + Sync + std::fmt::Debug {
    /// Takes an encoded frame without waiting, sending it at once when
    /// nothing is waiting before it.
    fn send(&self, frame: Utf8Bytes) -> Result<(), SendFail>;
    /// Takes a frame without sending it yet. `Ok(true)` means nothing else
    /// will send it: the caller must see that [`FrameSink::flush`] is called.
    fn queue(&self, frame: Utf8Bytes) -> Result<bool, SendFail>;
    /// Sends what is queued, as far as the connection takes it now; the
    /// rest is left to the connection.
    fn flush(&self);
}

/// What the room holds for each connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: u64,
    /// Bounded, so a stalled reader cannot grow memory.
    pub out: Arc<dyn FrameSink>,
    pub closer: Arc<Closer>,
}

/// Why a frame could not be sent.
pub enum SendFail {
    /// Too many frames wait already: the reader is too slow.
    Full,
    /// The connection is gone.
    Closed,
}

impl ConnHandle {
    pub fn send(&self, frame: Utf8Bytes) -> Result<(), SendFail> {
        if self.closer.is_closed() {
            return Err(SendFail::Closed);
        }
        self.out.send(frame)
    }

    /// Queues a frame for a [`Flusher`]; see [`FrameSink::queue`].
    pub fn queue(&self, frame: Utf8Bytes) -> Result<bool, SendFail> {
        if self.closer.is_closed() {
            return Err(SendFail::Closed);
        }
        self.out.queue(frame)
    }
}

/// Connections flushed between two yields: small enough that a reader or
/// the room waits at most a fraction of a millisecond behind a fan-out.
const FLUSH_CHUNK: usize = 64;

/// Lists longer than this are split among a room's flusher tasks.
const SPLIT_OVER: usize = 4 * FLUSH_CHUNK;

/// A room's fan-out writer: tasks that flush the connections a room queued
/// frames on, a chunk at a time, so the room goes on taking requests
/// meanwhile. Frames the room queues on a connection not yet flushed go out
/// together with the earlier ones.
///
/// There is one task per runtime worker, and a long list is split among
/// them, so one large room's fan-out can use every core. Order is kept
/// whichever task flushes a connection: a flush always writes that
/// connection's queue from its front.
#[derive(Debug)]
pub struct Flusher {
    tasks: Vec<mpsc::UnboundedSender<Vec<Arc<dyn FrameSink>>>>,
    /// The task the next short list goes to.
    next: usize,
}

impl Flusher {
    /// Starts one task per worker of the current runtime; they end when the
    /// flusher is dropped and their lists are done.
    pub fn spawn() -> Flusher {
        Flusher::with_tasks(tokio::runtime::Handle::current().metrics().num_workers())
    }

    fn with_tasks(n: usize) -> Flusher {
        let tasks = (0..n.max(1))
            .map(|_| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Arc<dyn FrameSink>>>();
                tokio::spawn(async move {
                    while let Some(list) = rx.recv().await {
                        for chunk in list.chunks(FLUSH_CHUNK) {
                            for sink in chunk {
                                sink.flush();
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                });
                tx
            })
            .collect();
        Flusher { tasks, next: 0 }
    }

    /// Hands over connections whose [`ConnHandle::queue`] returned `true`.
    pub fn flush(&mut self, mut list: Vec<Arc<dyn FrameSink>>) {
        let n = self.tasks.len();
        if list.len() <= SPLIT_OVER || n == 1 {
            self.next = (self.next + 1) % n;
            self.hand(self.next, list);
            return;
        }
        let per = list.len().div_ceil(n);
        for task in 0..n {
            let part = list.split_off(list.len().saturating_sub(per));
            self.hand(task, part);
        }
    }

    fn hand(&self, task: usize, list: Vec<Arc<dyn FrameSink>>) {
        if list.is_empty() {
            return;
        }
        if let Err(mpsc::error::SendError(list)) = self.tasks[task].send(list) {
            // The task is gone (the runtime is stopping): flush here.
            for sink in list {
                sink.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl FrameSink for Counting {
        fn send(&self, _: Utf8Bytes) -> Result<(), SendFail> {
            Ok(())
        }
        fn queue(&self, _: Utf8Bytes) -> Result<bool, SendFail> {
            Ok(true)
        }
        fn flush(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sinks(n: usize) -> Vec<Arc<Counting>> {
        (0..n).map(|_| Arc::default()).collect()
    }

    fn as_list(sinks: &[Arc<Counting>]) -> Vec<Arc<dyn FrameSink>> {
        sinks.iter().map(|s| s.clone() as _).collect()
    }

    /// How many of `sinks` were flushed at least once.
    fn flushed(sinks: &[Arc<Counting>]) -> usize {
        sinks
            .iter()
            .filter(|s| s.0.load(Ordering::Relaxed) > 0)
            .count()
    }

    #[tokio::test]
    async fn a_flusher_flushes_every_sink_once_yielding_between_chunks() {
        let mut flusher = Flusher::spawn();
        let sinks = sinks(3 * FLUSH_CHUNK + 5);
        let flushed = || flushed(&sinks);
        flusher.flush(as_list(&sinks));
        assert_eq!(flushed(), 0, "the caller goes on at once");
        while flushed() == 0 {
            tokio::task::yield_now().await;
        }
        // The single-threaded test runtime ran the flusher until its first
        // yield: one chunk, then this task's turn.
        assert_eq!(flushed(), FLUSH_CHUNK);
        while flushed() < sinks.len() {
            tokio::task::yield_now().await;
        }
        assert!(sinks.iter().all(|s| s.0.load(Ordering::Relaxed) == 1));
    }

    #[tokio::test]
    async fn a_long_list_is_split_among_the_tasks_and_each_sink_flushed_once() {
        let mut flusher = Flusher::with_tasks(3);
        let sinks = sinks(10 * FLUSH_CHUNK + 7);
        let flushed = || flushed(&sinks);
        flusher.flush(as_list(&sinks));
        while flushed() == 0 {
            tokio::task::yield_now().await;
        }
        // Each task yields after a chunk: more than one chunk done before
        // this task's next turn means several tasks shared the list.
        assert!(flushed() > FLUSH_CHUNK, "flushed {}", flushed());
        while flushed() < sinks.len() {
            tokio::task::yield_now().await;
        }
        // A short list goes to one task, whole.
        flusher.flush(as_list(&sinks[..3]));
        while sinks[..3].iter().any(|s| s.0.load(Ordering::Relaxed) < 2) {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let counts: Vec<usize> = sinks.iter().map(|s| s.0.load(Ordering::Relaxed)).collect();
        assert!(counts[..3].iter().all(|&c| c == 2));
        assert!(counts[3..].iter().all(|&c| c == 1), "each flushed once");
    }
}
