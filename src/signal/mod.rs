//! The WebSocket edge: authenticate the upgrade, decode client frames into
//! typed requests for the room, and write the room's frames to the socket.
//!
//! Nothing past this module sees raw JSON. Bad frames are answered here with
//! an `error` frame and never reach the room.

use crate::auth::{Claims, TokenType};
use crate::http::ApiError;
use crate::protocol::{
    close, ClientMsg, ErrorCode, ReqId, ServerMsg, SessionInfo, SessionStatus, Timestamp,
};
use crate::room::conn::{Closer, ConnHandle};
use crate::room::{Actor, RoomError, RoomLink};
use crate::App;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the server pings an idle client.
const PING_EVERY: Duration = Duration::from_secs(20);
/// How long the writer may take to flush queued frames when closing.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// A join token from the REST API.
    token: Option<String>,
    /// A resume token from an earlier `welcome` or `resumed` frame.
    resume: Option<String>,
    /// The last `seq` the client saw, to get only what it missed.
    last_seq: Option<u64>,
}

fn refuse(app: &App, e: ApiError) -> Response {
    app.metrics.joins_refused.fetch_add(1, Ordering::Relaxed);
    e.into_response()
}

/// `GET /ws?token=…` or `GET /ws?resume=…&last_seq=…`.
pub async fn ws_handler(
    State(app): State<App>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let (token, want) = match (&q.resume, &q.token) {
        (Some(r), _) => (r, TokenType::Resume),
        (None, Some(t)) => (t, TokenType::Join),
        (None, None) => {
            return refuse(
                &app,
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthorized,
                    "a token is required: /ws?token=…",
                ),
            )
        }
    };
    let claims = match check_token(&app, token, want).await {
        Ok((claims, _)) => claims,
        Err(e) => return refuse(&app, e),
    };
    let limits = &app.config.limits;
    // A hard cap well above the frame limit: frames between the two get a
    // `frame_too_large` error and the connection stays up.
    let hard_cap = limits
        .max_frame_bytes
        .saturating_mul(4)
        .max(limits.max_sdp_bytes + 1024)
        .max(64 * 1024);
    let actor = Actor {
        identity: claims.sub,
        name: claims.name,
        role: claims.role,
    };
    // Small buffers keep idle connections cheap; queued frames collect in
    // the write buffer until the writer flushes its burst.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_upgrade(move |socket| connection(app, socket, claims.sid, actor, q.last_seq))
}

/// Verifies a token of the wanted kind and loads its session, refusing an
/// expired token, a missing session and an ended one. Shared by `/ws` and
/// the join page's `GET /api/v1/token-info`.
pub async fn check_token(
    app: &App,
    token: &str,
    want: TokenType,
) -> Result<(Claims, SessionInfo), ApiError> {
    let claims = match app.keys.verify(token, Timestamp::now()) {
        Ok(c) if c.typ == want => c,
        Ok(_) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "wrong kind of token for this parameter",
            ))
        }
        Err(crate::auth::TokenError::Expired) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::TokenExpired,
                "your link has expired; ask the organiser for a new one",
            ))
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                format!("invalid token: {e}"),
            ))
        }
    };
    match app.store.get_session(&claims.sid).await {
        Ok(Some(s)) if s.status == SessionStatus::Ended => Err(ApiError::from_code(
            ErrorCode::SessionEnded,
            "this session has ended",
        )),
        Ok(Some(s)) => Ok((claims, s)),
        Ok(None) => Err(ApiError::not_found("session")),
        Err(e) => Err(e.into()),
    }
}

/// Counts rejected frames over ten seconds to spot abusive clients.
struct Abuse {
    times: VecDeque<Instant>,
    threshold: u32,
}

impl Abuse {
    fn hit(&mut self) -> bool {
        let now = Instant::now();
        self.times.push_back(now);
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(10))
        {
            self.times.pop_front();
        }
        self.times.len() as u32 > self.threshold
    }
}

/// Per-connection frame budget (token bucket).
struct FrameBudget {
    bucket: crate::room::budget::Bucket,
    burst: u32,
    per_sec: f64,
}

impl FrameBudget {
    fn take(&mut self) -> bool {
        let ready = self.bucket.ready(self.burst, self.per_sec, Instant::now());
        if ready {
            self.bucket.spend();
        }
        ready
    }
}

fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(msg).expect("protocol types serialize"))
}

fn carries_sdp(msg: &ClientMsg) -> bool {
    matches!(
        msg,
        ClientMsg::MediaPublish { .. } | ClientMsg::MediaAnswer { .. }
    )
}

/// Why a frame was refused at the edge: `(req_id if readable, code, message)`.
pub type FrameError = (Option<ReqId>, ErrorCode, String);

/// Decodes a text frame into a request, or the error to answer it with.
pub fn decode(text: &str) -> Result<(Option<ReqId>, ClientMsg), FrameError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| (None, ErrorCode::Malformed, format!("not valid JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err((
            None,
            ErrorCode::Malformed,
            "a frame must be a JSON object".into(),
        ));
    };
    let req_id = match obj.get("req_id") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(serde_json::from_value::<ReqId>(v.clone()).map_err(|_| {
            (
                None,
                ErrorCode::InvalidMessage,
                "req_id must be a string or an integer".to_string(),
            )
        })?),
    };
    let Some(ty) = obj.get("type").and_then(|t| t.as_str()).map(str::to_string) else {
        return Err((
            req_id,
            ErrorCode::UnknownType,
            "the frame has no \"type\"".into(),
        ));
    };
    if !ClientMsg::TYPES.contains(&ty.as_str()) {
        return Err((
            req_id,
            ErrorCode::UnknownType,
            format!("unknown type {ty:?}"),
        ));
    }
    match serde_json::from_value::<ClientMsg>(value) {
        Ok(msg) => Ok((req_id, msg)),
        Err(e) => Err((
            req_id,
            ErrorCode::InvalidMessage,
            format!("bad {ty:?}: {e}"),
        )),
    }
}

async fn connection(
    app: App,
    socket: WebSocket,
    session: String,
    actor: Actor,
    last_seq: Option<u64>,
) {
    app.metrics.connections.fetch_add(1, Ordering::Relaxed);
    let limits = app.config.limits.clone();
    let (tx, rx) = mpsc::channel(limits.send_queue);
    let closer = Arc::new(Closer::default());
    let handle = ConnHandle {
        id: app.next_conn.fetch_add(1, Ordering::Relaxed),
        tx: tx.clone(),
        closer: closer.clone(),
    };
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, rx, closer.clone()));

    let link: Option<RoomLink> = match app
        .rooms
        .join(&session, handle, actor.clone(), last_seq)
        .await
    {
        Ok(link) => Some(link),
        Err(e) => {
            let (code, close_code) = match &e {
                RoomError::Rejected(r) if r.code == ErrorCode::SessionEnded => {
                    (r.code, close::SESSION_ENDED)
                }
                RoomError::Rejected(r) if r.code == ErrorCode::Forbidden => (r.code, close::KICKED),
                RoomError::ShuttingDown => (ErrorCode::StorageUnavailable, close::SERVER_SHUTDOWN),
                other => (other.code(), close::STORAGE_UNAVAILABLE),
            };
            let _ = tx.try_send(encode(&ServerMsg::Error {
                req_id: None,
                code,
                message: e.to_string(),
            }));
            closer.close(close_code, code.as_str());
            None
        }
    };

    if let Some(link) = &link {
        read_loop(&app, &mut stream, link, &tx, &closer, &limits).await;
        link.disconnected().await;
    }
    // The client closed, vanished or was closed: the writer stops now (other
    // holders of this connection's queue, such as its media session kept
    // for a resume, would otherwise keep it waiting until a ping failed,
    // 20–40 s later, holding the socket). A close asked for earlier keeps
    // its code; after the client's own close frame, ours answers it.
    closer.close(close::NORMAL, "");
    drop(tx);
    let _ = writer.await;
    app.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

async fn read_loop(
    app: &App,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    link: &RoomLink,
    tx: &mpsc::Sender<Utf8Bytes>,
    closer: &Closer,
    limits: &crate::config::Limits,
) {
    let mut abuse = Abuse {
        times: VecDeque::new(),
        threshold: limits.abuse_threshold,
    };
    let mut budget = FrameBudget {
        bucket: crate::room::budget::Bucket::full(limits.frame_burst, Instant::now()),
        burst: limits.frame_burst,
        per_sec: limits.frame_per_sec,
    };
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    loop {
        let next = tokio::select! {
            _ = closer.closed() => return,
            n = tokio::time::timeout(idle, stream.next()) => n,
        };
        let msg = match next {
            Err(_) => {
                closer.close(
                    close::IDLE_TIMEOUT,
                    "no frames received; resume to continue",
                );
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(e))) => {
                // The socket is unusable after any read error; tungstenite's
                // capacity error means a frame above the hard cap.
                let too_big = e
                    .into_inner()
                    .downcast_ref::<tungstenite::Error>()
                    .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
                if too_big {
                    closer.close(close::MESSAGE_TOO_BIG, "frame above the hard size cap");
                }
                return;
            }
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                reject(
                    app,
                    tx,
                    closer,
                    None,
                    ErrorCode::Malformed,
                    "binary frames are not used; send JSON text".into(),
                );
                if abuse.hit() {
                    closer.close(close::ABUSE, "too many bad frames");
                    return;
                }
                continue;
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        app.metrics.messages_in.fetch_add(1, Ordering::Relaxed);
        let too_large = |req_id, limit: usize| {
            Err((
                req_id,
                ErrorCode::FrameTooLarge,
                format!("frame has {} bytes; the limit is {limit}", text.len()),
            ))
        };
        let verdict = if text.len() > limits.max_sdp_bytes {
            too_large(None, limits.max_sdp_bytes)
        } else if !budget.take() {
            Err((
                None,
                ErrorCode::RateLimited,
                "too many frames; slow down".into(),
            ))
        } else {
            match decode(&text) {
                // Only SDP-carrying frames may use the larger limit.
                Ok((req_id, msg)) if text.len() > limits.max_frame_bytes && !carries_sdp(&msg) => {
                    too_large(req_id, limits.max_frame_bytes)
                }
                other => other,
            }
        };
        match verdict {
            Ok((_, ClientMsg::Ping)) => queue(app, tx, closer, encode(&ServerMsg::Pong)),
            Ok((req_id, msg)) => link.request(req_id, msg).await,
            Err((req_id, code, message)) => {
                reject(app, tx, closer, req_id, code, message);
                if abuse.hit() {
                    closer.close(close::ABUSE, "too many bad frames");
                    return;
                }
            }
        }
    }
}

/// Queues a frame from the edge; a full queue means a slow consumer, as in rooms.
fn queue(app: &App, tx: &mpsc::Sender<Utf8Bytes>, closer: &Closer, frame: Utf8Bytes) {
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(frame) {
        app.metrics.queue_drops.fetch_add(1, Ordering::Relaxed);
        closer.close(
            close::SLOW_CONSUMER,
            "send queue overflow; resume to catch up",
        );
    }
}

fn reject(
    app: &App,
    tx: &mpsc::Sender<Utf8Bytes>,
    closer: &Closer,
    req_id: Option<ReqId>,
    code: ErrorCode,
    message: String,
) {
    app.metrics.frames_rejected.fetch_add(1, Ordering::Relaxed);
    queue(
        app,
        tx,
        closer,
        encode(&ServerMsg::Error {
            req_id,
            code,
            message,
        }),
    );
}

/// At most this many queued frames are written with one flush.
const WRITE_BURST: usize = 64;
/// Frames collect up to this many bytes before they go to the socket.
const WRITE_BUFFER: usize = 8 * 1024;

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    closer: Arc<Closer>,
) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    // One `closed` future for the whole loop, and a lock-free one: making a
    // token future per frame, or polling one, showed in profiles.
    let closed = closer.writer_closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                // Everything already queued goes out with one flush (one
                // write syscall for a burst, not one per frame).
                let burst = async {
                    sink.feed(Message::Text(frame)).await?;
                    for _ in 1..WRITE_BURST {
                        match rx.try_recv() {
                            Ok(f) => sink.feed(Message::Text(f)).await?,
                            Err(_) => break,
                        }
                    }
                    sink.flush().await
                };
                tokio::select! {
                    r = burst => if r.is_err() { closer.close(1006, "write failed"); return },
                    _ = &mut closed => break,
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    closer.close(1006, "write failed");
                    return;
                }
            }
        }
    }
    // Closing: flush what is already queued (the reason for closing is often
    // among it), then say why.
    let (code, reason) = closer.reason().unwrap_or((close::NORMAL, String::new()));
    // The client closed (or its connection ended): queued frames would not
    // be read.
    let client_closed = code == close::NORMAL && reason.is_empty();
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        if code != close::SLOW_CONSUMER && !client_closed {
            while let Ok(frame) = rx.try_recv() {
                if sink.send(Message::Text(frame)).await.is_err() {
                    break;
                }
            }
        }
        // Refused if the client's close frame came first; the flush in
        // `close` then sends the answer tungstenite queued when it read it.
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
        let _ = sink.close().await;
    })
    .await;
    closer.close(code, "");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_separates_malformed_unknown_and_invalid() {
        assert!(matches!(decode("{"), Err((None, ErrorCode::Malformed, _))));
        assert!(matches!(
            decode("[1]"),
            Err((None, ErrorCode::Malformed, _))
        ));
        assert!(matches!(
            decode(r#"{"type":"fly","req_id":7}"#),
            Err((Some(ReqId::Num(7)), ErrorCode::UnknownType, _))
        ));
        assert!(matches!(
            decode(r#"{"type":"chat_send","req_id":"a"}"#),
            Err((Some(ReqId::Str(_)), ErrorCode::InvalidMessage, _))
        ));
        assert_eq!(
            decode(r#"{"type":"chat_send","text":"你好","req_id":1}"#).unwrap(),
            (
                Some(ReqId::Num(1)),
                ClientMsg::ChatSend {
                    text: "你好".into()
                }
            )
        );
    }
}
