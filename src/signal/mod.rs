//! The WebSocket edge: authenticate the upgrade, decode client frames into
//! typed requests for the room, and write the room's frames to the socket.
//!
//! Nothing past this module sees raw JSON. Bad frames are answered here with
//! an `error` frame and never reach the room.
//!
//! The server does the opening handshake itself (RFC 6455 §4.2) rather than
//! through the HTTP framework's WebSocket type, to keep the socket: rooms
//! write their frames to it directly (see [`outbox`]), and tungstenite only
//! reads.

pub mod origin;
mod outbox;

use crate::auth::{Claims, TokenType};
use crate::http::extract::ApiQuery;
use crate::http::ApiError;
use crate::protocol::{
    close, encode, ClientMsg, ErrorCode, ReqId, ServerMsg, SessionInfo, SessionStatus, Timestamp,
};
use crate::room::conn::{Closer, ConnHandle, FrameSink};
use crate::room::{Actor, RoomError, RoomLink};
use crate::App;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use outbox::{ConnIo, Link, Outbox};
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

/// A WebSocket opening handshake, checked (RFC 6455 §4.2.1), with the
/// connection to take over once it is answered.
pub struct Upgrade {
    accept: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 §4.2.2).
fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    h.update(key);
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let bad = |message: &str| ApiError::new(ErrorCode::BadRequest, message).into_response();
        let h = &parts.headers;
        if parts.method != Method::GET
            || !has_token(h, header::CONNECTION, "upgrade")
            || !has_token(h, header::UPGRADE, "websocket")
        {
            return Err(bad(
                "this is a WebSocket endpoint: send a GET with Upgrade: websocket",
            ));
        }
        if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
            let mut r = ApiError::with_status(
                StatusCode::UPGRADE_REQUIRED,
                ErrorCode::BadRequest,
                "only WebSocket version 13 is spoken",
            )
            .into_response();
            r.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return Err(r);
        }
        let key = h.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes());
        let valid = key.is_some_and(|k| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|raw| raw.len() == 16)
        });
        let (Some(key), true) = (key, valid) else {
            return Err(bad("Sec-WebSocket-Key must be 16 bytes in base64"));
        };
        let accept = HeaderValue::from_str(&accept_key(key)).expect("base64 is a header value");
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(bad(
                "this connection cannot be upgraded (HTTP/1.1 is required)",
            ));
        };
        Ok(Upgrade { accept, on_upgrade })
    }
}

impl Upgrade {
    /// Answers the handshake with 101 and runs `conn` on the socket once
    /// the HTTP layer hands it over.
    fn answer<F, Fut>(self, conn: F) -> Response
    where
        F: FnOnce(TcpStream, Vec<u8>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!("WebSocket upgrade did not complete: {e}");
                    return;
                }
            };
            match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded)
            {
                Ok(parts) => {
                    // Bytes read past the request, copied: they sit in the
                    // HTTP layer's read buffer (8 KiB or more), which would
                    // otherwise live as long as the connection.
                    let read = parts.read_buf.to_vec();
                    drop(parts.read_buf);
                    conn(parts.io.into_inner(), read).await
                }
                Err(_) => tracing::error!("an upgraded connection is not a TCP socket"),
            }
        });
        let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        r
    }
}

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
///
/// The handshake is checked first, then the page's origin, then the query
/// and the token: a request that is not a WebSocket handshake is refused
/// before anything else is looked at.
pub async fn ws_handler(
    ws: Upgrade,
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<ApiQuery<WsQuery>, ApiError>,
) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("null"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !app.origins.allows(origin, host) {
        return refuse(
            &app,
            ApiError::new(
                ErrorCode::OriginNotAllowed,
                format!(
                    "pages from {} may not open this classroom; the server's \
                     allowed_origins setting lists the ones that may",
                    origin.unwrap_or_default()
                ),
            ),
        );
    }
    let ApiQuery(q) = match q {
        Ok(q) => q,
        Err(e) => return refuse(&app, e),
    };
    let (token, want) = match (&q.resume, &q.token) {
        (Some(r), _) => (r, TokenType::Resume),
        (None, Some(t)) => (t, TokenType::Join),
        (None, None) => {
            return refuse(
                &app,
                ApiError::new(ErrorCode::Unauthorized, "a token is required: /ws?token=…"),
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
    // A small read buffer keeps idle connections cheap. Tungstenite only
    // reads; what it writes (pongs, the answer to a close) it hands over at
    // once, so it needs no write buffer.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap));
    ws.answer(move |tcp, read| async move {
        connection(app, tcp, read, config, claims.sid, actor, q.last_seq).await
    })
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
                ErrorCode::Unauthorized,
                "wrong kind of token for this parameter",
            ))
        }
        Err(crate::auth::TokenError::Expired) => {
            return Err(ApiError::new(
                ErrorCode::TokenExpired,
                "your link has expired; ask the organiser for a new one",
            ))
        }
        Err(e) => {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                format!("invalid token: {e}"),
            ))
        }
    };
    match app.store.get_session(&claims.sid).await {
        Ok(Some(s)) if s.status == SessionStatus::Ended => Err(ApiError::new(
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
    tcp: TcpStream,
    read: Vec<u8>,
    config: WebSocketConfig,
    session: String,
    actor: Actor,
    last_seq: Option<u64>,
) {
    app.metrics.connections.fetch_add(1, Ordering::Relaxed);
    let limits = app.config.limits.clone();
    let closer = Arc::new(Closer::default());
    let tcp = Arc::new(tcp);
    let out = Arc::new(Outbox::new(tcp.clone(), closer.clone(), limits.send_queue));
    let handle = ConnHandle {
        id: app.next_conn.fetch_add(1, Ordering::Relaxed),
        out: Arc::new(Link::new(&out)),
        closer: closer.clone(),
    };
    let io = ConnIo {
        sock: tcp,
        out: out.clone(),
    };
    let mut stream =
        WebSocketStream::from_partially_read(io, read, Role::Server, Some(config)).await;
    let writer = tokio::spawn(outbox::write_loop(out.clone()));

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
            let _ = out.send(encode(&ServerMsg::Error {
                req_id: None,
                code,
                message: e.to_string(),
            }));
            closer.close(close_code, code.as_str());
            None
        }
    };

    if let Some(link) = &link {
        read_loop(&app, &mut stream, link, &out, &closer, &limits).await;
        link.disconnected().await;
    }
    // The client closed, vanished or was closed: the writer sends what is
    // still owed and stops, and the socket closes when this task and the
    // writer let go of it (a room's handle does not keep it). A close asked
    // for earlier keeps its code; after the client's own close frame, the
    // reader has already sent the answer.
    closer.close(close::NORMAL, "");
    let _ = writer.await;
    // The server closed: its close frame is out and the socket half-shut.
    // Dropping the socket now, with the client's frames still arriving,
    // would make the kernel answer them with a reset, which can destroy the
    // close frame before the client reads it (it then sees 1006, not the
    // code). So wait, briefly, for the client's own close frame or the end
    // of its stream, reading and discarding whatever comes first.
    let server_closed = closer
        .reason()
        .is_some_and(|(code, why)| code != close::NORMAL || !why.is_empty());
    if server_closed {
        let _ = tokio::time::timeout(CLOSING_HANDSHAKE, async {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Close(_) = m {
                    break;
                }
            }
        })
        .await;
    }
    app.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// How long a server-side close waits for the client's close frame.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(2);

async fn read_loop(
    app: &App,
    stream: &mut WebSocketStream<ConnIo>,
    link: &RoomLink,
    out: &Outbox,
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
                if matches!(e, tungstenite::Error::Capacity(_)) {
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
                    out,
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
            Message::Close(_) => {
                // Sends the answer tungstenite queued when it read the close.
                let _ = stream.flush().await;
                return;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
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
            Ok((_, ClientMsg::Ping)) => queue(app, out, closer, encode(&ServerMsg::Pong)),
            Ok((req_id, msg)) => link.request(req_id, msg).await,
            Err((req_id, code, message)) => {
                reject(app, out, closer, req_id, code, message);
                if abuse.hit() {
                    closer.close(close::ABUSE, "too many bad frames");
                    return;
                }
            }
        }
    }
}

/// Queues a frame from the edge; a full queue means a slow consumer, as in rooms.
fn queue(app: &App, out: &Outbox, closer: &Closer, frame: Utf8Bytes) {
    if let Err(crate::room::conn::SendFail::Full) = out.send(frame) {
        app.metrics.queue_drops.fetch_add(1, Ordering::Relaxed);
        closer.close(
            close::SLOW_CONSUMER,
            "send queue overflow; resume to catch up",
        );
    }
}

fn reject(
    app: &App,
    out: &Outbox,
    closer: &Closer,
    req_id: Option<ReqId>,
    code: ErrorCode,
    message: String,
) {
    app.metrics.frames_rejected.fetch_add(1, Ordering::Relaxed);
    queue(
        app,
        out,
        closer,
        encode(&ServerMsg::Error {
            req_id,
            code,
            message,
        }),
    );
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
