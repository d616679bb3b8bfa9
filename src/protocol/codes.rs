use serde::{Deserialize, Serialize};

/// Stable error codes carried by `error` frames and REST error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    Malformed,
    /// The frame's `type` is missing or not one the server knows.
    UnknownType,
    /// The `type` is known but its fields are missing or of the wrong kind.
    InvalidMessage,
    /// The frame is larger than the configured limit.
    FrameTooLarge,
    /// Too many frames or chat messages in a short time.
    RateLimited,
    /// Your role or state does not allow this action.
    Forbidden,
    /// The message, question or participant named does not exist.
    NotFound,
    ChatLocked,
    ChatMuted,
    TextTooLong,
    EmptyText,
    AlreadyVoted,
    NotInvited,
    /// The action does not fit the current state (e.g. a seminar-only action in Q&A).
    InvalidState,
    SessionEnded,
    /// A media negotiation failed (bad SDP, no such connection, no socket).
    MediaFailed,
    /// Storage failed; nothing was changed. Retry later.
    StorageUnavailable,
    // REST-only codes below.
    Unauthorized,
    TokenExpired,
    BadRequest,
    /// The path exists but does not take this HTTP method.
    MethodNotAllowed,
    /// A WebSocket upgrade from a web page whose origin is not allowed.
    OriginNotAllowed,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ChatLocked => "chat_locked",
            ErrorCode::ChatMuted => "chat_muted",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::EmptyText => "empty_text",
            ErrorCode::AlreadyVoted => "already_voted",
            ErrorCode::NotInvited => "not_invited",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::MediaFailed => "media_failed",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::Internal => "internal",
        }
    }
}

/// WebSocket close codes the server uses (RFC 6455 private range 4000–4999,
/// plus standard ones).
pub mod close {
    /// The connection is over: the client closed it, or went away.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down or restarting; reconnect after the hint.
    pub const SERVER_SHUTDOWN: u16 = 1012;
    /// A frame exceeded the hard size cap (four times the frame limit, at least 64 KiB).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The session has ended; do not reconnect.
    pub const SESSION_ENDED: u16 = 4000;
    /// A moderator removed you from the session; do not reconnect.
    pub const KICKED: u16 = 4001;
    /// The same identity connected again elsewhere; this connection is replaced.
    pub const REPLACED: u16 = 4002;
    /// Your send queue overflowed (a slow or stalled link); resume to catch up.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Too many bad or rate-limited frames in a short time.
    pub const ABUSE: u16 = 4009;
    /// No frame from the client for the idle timeout; resume to catch up.
    pub const IDLE_TIMEOUT: u16 = 4010;
    /// Storage failed while joining; retry later.
    pub const STORAGE_UNAVAILABLE: u16 = 4011;
}
