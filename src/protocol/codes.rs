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

    /// The HTTP status of a refusal with this code: the one table that REST
    /// answers and the `/ws` refusals read (docs/protocol.md §12). Codes
    /// that only travel in `error` frames answer 400 should one ever be sent
    /// over HTTP.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::NotFound => 404,
            ErrorCode::Unauthorized | ErrorCode::TokenExpired => 401,
            ErrorCode::Forbidden | ErrorCode::OriginNotAllowed => 403,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::SessionEnded => 410,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::StorageUnavailable => 503,
            ErrorCode::Malformed
            | ErrorCode::UnknownType
            | ErrorCode::InvalidMessage
            | ErrorCode::FrameTooLarge
            | ErrorCode::ChatLocked
            | ErrorCode::ChatMuted
            | ErrorCode::TextTooLong
            | ErrorCode::EmptyText
            | ErrorCode::AlreadyVoted
            | ErrorCode::NotInvited
            | ErrorCode::InvalidState
            | ErrorCode::MediaFailed
            | ErrorCode::BadRequest => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// The table of docs/protocol.md §12 lists every code, and its HTTP
    /// column says what [`ErrorCode::http_status`] answers.
    #[test]
    fn the_protocol_document_lists_every_code_with_its_status() {
        let doc = include_str!("../../docs/protocol.md");
        let start = doc.find("## 12. Error codes").expect("§12");
        let end = start + doc[start..].find("## 13.").expect("§13");
        let mut listed = Vec::new();
        for row in doc[start..end].lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let code: ErrorCode = serde_json::from_value(serde_json::json!(name))
                .unwrap_or_else(|_| panic!("§12 lists {name}, which is not a code"));
            assert_eq!(code.as_str(), name);
            let http = cells[cells.len() - 2];
            if http != "—" {
                assert_eq!(http, code.http_status().to_string(), "{name}");
            }
            listed.push(name.to_string());
        }
        // Every code the server can send is in the table.
        for name in [
            "malformed",
            "unknown_type",
            "invalid_message",
            "frame_too_large",
            "rate_limited",
            "forbidden",
            "not_found",
            "chat_locked",
            "chat_muted",
            "text_too_long",
            "empty_text",
            "already_voted",
            "not_invited",
            "invalid_state",
            "session_ended",
            "media_failed",
            "storage_unavailable",
            "unauthorized",
            "token_expired",
            "bad_request",
            "method_not_allowed",
            "origin_not_allowed",
            "internal",
        ] {
            let code: ErrorCode = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(code.as_str(), name);
            assert!(listed.iter().any(|l| l == name), "§12 does not list {name}");
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
