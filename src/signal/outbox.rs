//! The sending side of one WebSocket connection.
//!
//! A frame is written to the socket without a task of its own: one
//! `sendmsg` of its header and its shared body. A room fanning a frame out
//! to thousands of sockets queues it on each (a push, no wake-up) and hands
//! the list to its flusher task, which writes them a few dozen sockets at a
//! time, yielding between, so the room and the readers keep running; a
//! frame the room sends to a socket the flusher has not reached yet goes
//! out with the earlier one in the same `sendmsg`. Other senders write at
//! once when nothing waits. Only when a socket's kernel buffer is full do
//! frames wait for the connection's writer task, which sends them as the
//! socket drains. The queue is bounded: a reader too slow for it is closed
//! as a slow consumer.
//!
//! The connection's reader (tungstenite, on [`ConnIo`]) writes its own
//! control frames (pong, the answer to a close) through the same queue, so
//! every byte on the socket goes out in one order.

use crate::protocol::close;
use crate::room::conn::{Closer, FrameSink, SendFail};
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tungstenite::Utf8Bytes;

/// How often the server pings an idle client.
const PING_EVERY: Duration = Duration::from_secs(20);
/// How long the writer may take to send what is queued when closing.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// At most this many queued frames go to the socket in one `sendmsg`.
const WRITE_BURST: usize = 32;

/// The code a connection whose socket failed is closed with (1006: it
/// never goes on the wire; the closer only records it).
const WRITE_FAILED: u16 = 1006;

/// A WebSocket ping with no payload (FIN, opcode 9).
const PING: [u8; 2] = [0x89, 0x00];

/// One frame on its way to the socket: its header and its body, of which
/// the first `done` bytes (header first) are already written.
#[derive(Debug)]
struct Entry {
    head: [u8; 10],
    head_len: u8,
    body: Bytes,
    done: usize,
    /// Written by the reader (a control frame tungstenite made), not by a
    /// room: kept when a closing connection drops its unsent frames.
    control: bool,
}

impl Entry {
    /// An unmasked, unfragmented server frame (RFC 6455 §5.2).
    fn frame(opcode: u8, body: Bytes) -> Entry {
        let mut head = [0u8; 10];
        head[0] = 0x80 | opcode;
        let n = body.len();
        let head_len = if n < 126 {
            head[1] = n as u8;
            2
        } else if n <= u16::MAX as usize {
            head[1] = 126;
            head[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        } else {
            head[1] = 127;
            head[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        };
        Entry {
            head,
            head_len,
            body,
            done: 0,
            control: false,
        }
    }

    /// Bytes that are already whole frames (tungstenite's control frames).
    fn raw(body: Bytes) -> Entry {
        Entry {
            head: [0; 10],
            head_len: 0,
            body,
            done: 0,
            control: true,
        }
    }

    fn len(&self) -> usize {
        self.head_len as usize + self.body.len()
    }

    fn unwritten(&self) -> [&[u8]; 2] {
        let h = self.head_len as usize;
        if self.done < h {
            [&self.head[self.done..h], &self.body[..]]
        } else {
            [&[], &self.body[self.done - h..]]
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// A write failed: the socket is unusable.
    broken: bool,
    /// The close frame is queued: nothing may follow it.
    sealed: bool,
    /// A room's flusher will write the queue; until then the connection's
    /// writer leaves it alone.
    listed: bool,
}

/// What a write attempt left behind.
enum Flushed {
    /// Nothing is queued.
    Empty,
    /// The socket's buffer is full; frames are still queued.
    Blocked,
    /// The socket failed.
    Failed,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    sock: Arc<TcpStream>,
    closer: Arc<Closer>,
    /// Frames a room may leave queued before its reader counts as slow.
    limit: usize,
    queue: Mutex<Queue>,
}

impl Outbox {
    pub fn new(sock: Arc<TcpStream>, closer: Arc<Closer>, limit: usize) -> Outbox {
        Outbox {
            sock,
            closer,
            limit,
            queue: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `e` now if nothing is ahead of it, and queues what the socket
    /// did not take. `limit` bounds the queue for frames from rooms.
    fn push(&self, mut e: Entry, limit: Option<usize>) -> Result<(), SendFail> {
        let mut q = self.lock();
        if q.broken || q.sealed {
            return Err(SendFail::Closed);
        }
        if q.entries.is_empty() {
            let [a, b] = e.unwritten();
            match send(&self.sock, &[IoSlice::new(a), IoSlice::new(b)]) {
                Ok(n) => e.done += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    q.broken = true;
                    drop(q);
                    self.closer.close(WRITE_FAILED, "write failed");
                    return Err(SendFail::Closed);
                }
            }
            if e.done == e.len() {
                return Ok(());
            }
            q.entries.push_back(e);
            let listed = q.listed;
            drop(q);
            // The queue was empty, so nobody else will send it.
            if !listed {
                self.closer.wake_writer();
            }
            return Ok(());
        }
        if limit.is_some_and(|l| q.entries.len() >= l) {
            return Err(SendFail::Full);
        }
        // The writer or a flusher already has work here and will reach this one.
        q.entries.push_back(e);
        Ok(())
    }

    /// Sends as much of the queue as the socket takes now.
    fn flush_some(&self) -> Flushed {
        self.write_queued(&mut self.lock())
    }

    fn write_queued(&self, q: &mut Queue) -> Flushed {
        loop {
            if q.broken {
                return Flushed::Failed;
            }
            if q.entries.is_empty() {
                return Flushed::Empty;
            }
            let mut slices = [IoSlice::new(&[]); 2 * WRITE_BURST];
            let mut used = 0;
            for e in q.entries.iter().take(WRITE_BURST) {
                for s in e.unwritten() {
                    if !s.is_empty() {
                        slices[used] = IoSlice::new(s);
                        used += 1;
                    }
                }
            }
            let mut n = match send(&self.sock, &slices[..used]) {
                // A socket that takes nothing of a non-empty write is gone.
                Ok(0) => {
                    q.broken = true;
                    return Flushed::Failed;
                }
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(_) => {
                    q.broken = true;
                    return Flushed::Failed;
                }
            };
            while n > 0 {
                let front = q.entries.front_mut().expect("written bytes were queued");
                let take = n.min(front.len() - front.done);
                front.done += take;
                n -= take;
                if front.done == front.len() {
                    q.entries.pop_front();
                }
            }
        }
    }

    /// Sends the queue, waiting for the socket to drain.
    async fn drain(&self) -> Result<(), ()> {
        loop {
            match self.flush_some() {
                Flushed::Empty => return Ok(()),
                Flushed::Failed => return Err(()),
                Flushed::Blocked => {
                    if self.sock.writable().await.is_err() {
                        return Err(());
                    }
                }
            }
        }
    }

    /// Resolves when frames wait for the writer.
    async fn work(&self) {
        poll_fn(|cx| {
            self.closer.register_writer(cx);
            let q = self.lock();
            if q.entries.is_empty() || q.listed {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Drops the frames nobody will read, keeping a partly written one (the
    /// stream would be corrupt without its rest) and the reader's control
    /// frames.
    fn drop_unsent(&self) {
        let mut q = self.lock();
        let mut first = true;
        q.entries.retain(|e| {
            let keep = (first && e.done > 0) || e.control;
            first = false;
            keep
        });
    }

    fn seal(&self, last: Entry) {
        let mut q = self.lock();
        if !q.sealed && !q.broken {
            q.entries.push_back(last);
            q.sealed = true;
        }
    }
}

impl FrameSink for Outbox {
    fn send(&self, frame: Utf8Bytes) -> Result<(), SendFail> {
        if self.closer.is_closed() {
            return Err(SendFail::Closed);
        }
        self.push(Entry::frame(0x1, frame.into()), Some(self.limit))
    }

    fn queue(&self, frame: Utf8Bytes) -> Result<bool, SendFail> {
        let mut q = self.lock();
        if q.broken || q.sealed {
            return Err(SendFail::Closed);
        }
        if q.entries.len() >= self.limit {
            return Err(SendFail::Full);
        }
        q.entries.push_back(Entry::frame(0x1, frame.into()));
        // Frames already waiting have someone to send them.
        let idle = q.entries.len() == 1 && !q.listed;
        q.listed |= idle;
        Ok(idle)
    }

    fn flush(&self) {
        let mut q = self.lock();
        q.listed = false;
        match self.write_queued(&mut q) {
            Flushed::Empty => {}
            // The writer waits for the socket to drain.
            Flushed::Blocked => {
                drop(q);
                self.closer.wake_writer();
            }
            Flushed::Failed => {
                drop(q);
                self.closer.close(WRITE_FAILED, "write failed");
            }
        }
    }
}

/// What a room (or a media session kept for a resume) holds: the outbox
/// without keeping it. The connection's own tasks own it, so when they end
/// the socket is closed at once, even while the room still counts the
/// member as present for the grace period. Frames sent after that are
/// refused as to a closed connection.
#[derive(Debug)]
pub struct Link(Weak<Outbox>);

impl Link {
    pub fn new(out: &Arc<Outbox>) -> Link {
        Link(Arc::downgrade(out))
    }
}

impl FrameSink for Link {
    fn send(&self, frame: Utf8Bytes) -> Result<(), SendFail> {
        self.0.upgrade().ok_or(SendFail::Closed)?.send(frame)
    }

    fn queue(&self, frame: Utf8Bytes) -> Result<bool, SendFail> {
        self.0.upgrade().ok_or(SendFail::Closed)?.queue(frame)
    }

    fn flush(&self) {
        if let Some(out) = self.0.upgrade() {
            out.flush();
        }
    }
}

/// Writes `bufs` to the socket without waiting, as `sendmsg(2)`: the
/// socket call, not `writev(2)`, because a file write first goes through
/// the file layer before it reaches the same TCP code (7 % of the server's
/// samples in `perf` of a fan-out to 5,000; docs/benchmarks.md). A peer
/// that is gone gives an error, not a SIGPIPE.
fn send(sock: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    sock.try_io(Interest::WRITABLE, || {
        socket2::SockRef::from(sock).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    })
}

/// The connection's writer task: sends what the socket could not take at
/// once, pings, and at the end sends the close frame.
pub async fn write_loop(out: Arc<Outbox>) {
    let closer = out.closer.clone();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let closed = closer.writer_closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            _ = out.work() => {
                let drained = tokio::select! {
                    biased;
                    _ = &mut closed => break,
                    r = out.drain() => r,
                };
                if drained.is_err() {
                    closer.close(WRITE_FAILED, "write failed");
                    return;
                }
            }
            _ = ping.tick() => {
                let _ = out.push(Entry::raw(Bytes::from_static(&PING)), None);
            }
        }
    }
    // Closing: send what is queued (the reason for closing is often among
    // it), then say why.
    let (code, reason) = closer.reason().unwrap_or((close::NORMAL, String::new()));
    // The client closed (or its connection ended): queued frames would not
    // be read, and the answer to its close frame is the reader's to send.
    let client_closed = code == close::NORMAL && reason.is_empty();
    if code == close::SLOW_CONSUMER || client_closed {
        out.drop_unsent();
    }
    if !client_closed {
        out.seal(Entry::frame(0x8, close_payload(code, &reason)));
    }
    let _ = tokio::time::timeout(CLOSE_DRAIN, out.drain()).await;
    // FIN after the last frame; the socket itself closes when the reader
    // lets go of it too.
    let _ = socket2::SockRef::from(&*out.sock).shutdown(std::net::Shutdown::Write);
    closer.close(code, "");
}

/// A close frame's body: the code, then a reason cut to fit the 125 bytes
/// a control frame may carry, at a character boundary.
fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut b = Vec::with_capacity(2 + end);
    b.extend_from_slice(&code.to_be_bytes());
    b.extend_from_slice(&reason.as_bytes()[..end]);
    Bytes::from(b)
}

/// The socket as the reader's tungstenite sees it: reads come from the
/// socket, writes (its pongs and close answers, always whole frames) go
/// through the [`Outbox`] so they keep their place among the room's frames.
pub struct ConnIo {
    pub sock: Arc<TcpStream>,
    pub out: Arc<Outbox>,
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.sock.poll_read_ready(cx))?;
            match self.sock.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Taken whole, so every write is whole frames and cannot interleave
        // with a room's frame. After the close frame, nothing more is sent.
        let _ = self.out.push(Entry::raw(Bytes::copy_from_slice(buf)), None);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer shuts the socket down after the close frame.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_use_the_shortest_length_form() {
        let short = Entry::frame(0x1, Bytes::from_static(b"hi"));
        assert_eq!(&short.head[..short.head_len as usize], &[0x81, 2]);
        let mid = Entry::frame(0x1, Bytes::from(vec![b'x'; 300]));
        assert_eq!(&mid.head[..mid.head_len as usize], &[0x81, 126, 1, 44]);
        let long = Entry::frame(0x1, Bytes::from(vec![b'x'; 70_000]));
        assert_eq!(
            &long.head[..long.head_len as usize],
            &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
        assert_eq!(long.len(), 70_010);
    }

    #[test]
    fn unwritten_parts_follow_what_was_written() {
        let mut e = Entry::frame(0x1, Bytes::from_static(b"hello"));
        e.done = 1;
        assert_eq!(e.unwritten(), [&[5u8][..], &b"hello"[..]]);
        e.done = 4;
        assert_eq!(e.unwritten(), [&[][..], &b"llo"[..]]);
    }

    /// A connected pair on loopback: the server's outbox and the peer.
    async fn pair(limit: usize) -> (Arc<Outbox>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (sock, _) = listener.accept().await.unwrap();
        let closer = Arc::new(Closer::default());
        (Arc::new(Outbox::new(Arc::new(sock), closer, limit)), peer)
    }

    /// Reads `n` unmasked text frames with 1-byte lengths.
    async fn read_frames(peer: &mut TcpStream, n: usize) -> Vec<String> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        for _ in 0..n {
            let mut head = [0u8; 2];
            peer.read_exact(&mut head).await.unwrap();
            assert_eq!(head[0], 0x81);
            let mut body = vec![0u8; head[1] as usize];
            peer.read_exact(&mut body).await.unwrap();
            out.push(String::from_utf8(body).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn queued_frames_wait_for_one_flush_and_the_queue_is_bounded() {
        let (out, mut peer) = pair(3).await;
        // Only the first frame asks for a flush: later ones ride along.
        assert!(matches!(out.queue("a".into()), Ok(true)));
        assert!(matches!(out.queue("b".into()), Ok(false)));
        assert!(matches!(out.queue("c".into()), Ok(false)));
        assert!(matches!(out.queue("d".into()), Err(SendFail::Full)));
        // A direct send keeps its place behind them.
        assert!(out.send("e".into()).is_err(), "the queue is still full");
        out.flush();
        assert!(out.send("e".into()).is_ok());
        assert_eq!(read_frames(&mut peer, 4).await, ["a", "b", "c", "e"]);
        // Empty again: the next queued frame asks for a flush again.
        assert!(matches!(out.queue("f".into()), Ok(true)));
        out.flush();
        assert_eq!(read_frames(&mut peer, 1).await, ["f"]);
    }

    #[tokio::test]
    async fn a_closed_outbox_sends_its_close_frame_last_and_takes_nothing_after() {
        use tokio::io::AsyncReadExt;
        let (out, mut peer) = pair(16).await;
        let writer = tokio::spawn(write_loop(out.clone()));
        assert!(matches!(out.queue("bye".into()), Ok(true)));
        out.closer.close(4000, "ended");
        writer.await.unwrap();
        assert!(out.send("late".into()).is_err());
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.unwrap();
        let mut expect = vec![0x81, 3];
        expect.extend_from_slice(b"bye");
        expect.extend_from_slice(&[0x88, 7, 0x0f, 0xa0]);
        expect.extend_from_slice(b"ended");
        assert_eq!(all, expect, "the frame, the close frame, then the end");
    }

    #[tokio::test]
    async fn a_link_does_not_keep_the_socket_open() {
        use tokio::io::AsyncReadExt;
        let (out, mut peer) = pair(16).await;
        let link = Link::new(&out);
        assert!(link.send("hi".into()).is_ok());
        drop(out);
        // The connection's tasks are gone: the peer reads the frame, then
        // the end of the stream, while the link is still held.
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, [0x81, 2, b'h', b'i']);
        assert!(matches!(link.send("late".into()), Err(SendFail::Closed)));
        assert!(matches!(link.queue("late".into()), Err(SendFail::Closed)));
        link.flush();
    }

    #[test]
    fn a_close_reason_is_cut_at_a_character_boundary() {
        let reason = "课".repeat(60); // 180 bytes
        let p = close_payload(4008, &reason);
        assert_eq!(&p[..2], &4008u16.to_be_bytes());
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }
}
