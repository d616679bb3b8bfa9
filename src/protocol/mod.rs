//! Wire types shared by the server, the load-test tool and the tests.
//!
//! Everything that crosses the WebSocket is defined here: what a client may
//! send ([`ClientMsg`]), what the server sends ([`ServerMsg`] and the numbered
//! room [`Event`]s), error and close codes, roles and permissions. Nothing in
//! this module does I/O. `docs/protocol.md` documents the same types with
//! examples and must be kept true with them.

mod codes;
mod role;
mod time;
mod types;

pub use codes::{close, ErrorCode};
pub use role::{Permission, Role};
pub use time::Timestamp;
pub use types::*;

use serde::{Deserialize, Serialize};

/// A server frame as the text sent on the wire: serialized once, then the
/// same bytes go to every receiver (the room's fan-out, the edge's own
/// replies, the media task's answers).
pub fn encode<T: Serialize>(v: &T) -> tungstenite::Utf8Bytes {
    tungstenite::Utf8Bytes::from(serde_json::to_string(v).expect("protocol types serialize"))
}

/// A client's request id, echoed in the single `ack` or `error` that answers it.
/// Clients may use a string or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReqId {
    Num(i64),
    Str(String),
}

/// A frame a client sends. `type` selects the variant; an optional `req_id`
/// sits beside it and is read separately by the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Liveness check; answered with `pong`.
    Ping,
    /// Leave the session on purpose (attendance records reason `left`).
    Leave,
    ChatSend {
        text: String,
    },
    ChatDelete {
        message_id: i64,
    },
    ChatMute {
        identity: String,
        muted: bool,
    },
    ChatLock {
        locked: bool,
    },
    HandRaise,
    /// Lower a hand: one's own when `identity` is absent, anyone's for moderators.
    HandLower {
        #[serde(default)]
        identity: Option<String>,
    },
    HandsClear,
    QuestionAsk {
        text: String,
    },
    QuestionUpvote {
        question_id: i64,
    },
    QuestionReply {
        question_id: i64,
        text: String,
    },
    QuestionAnswer {
        question_id: i64,
    },
    QuestionDismiss {
        question_id: i64,
    },
    /// Pin the question being answered now; `null` unpins.
    QuestionPin {
        question_id: Option<i64>,
    },
    StageInvite {
        identity: String,
    },
    StageAccept,
    StageDecline,
    /// Leave the stage (on stage) or withdraw from an invitation.
    StageLeave,
    StageRemove {
        identity: String,
    },
    /// Seminar only: lock publishing to hosts, moderators and the stage.
    StageLock {
        locked: bool,
    },
    /// Start a "still here?" check for every present participant.
    PresenceCheckStart {
        /// Seconds to confirm (10–600; default 60).
        #[serde(default)]
        window_secs: Option<u32>,
    },
    /// Confirm a running presence check.
    PresenceConfirm {
        check_id: i64,
    },
    /// The page was hidden (tab in the background) or shown again.
    Visibility {
        hidden: bool,
    },
    /// The client's own account of its media: it could not connect
    /// (`failed`, with why) or it connected again (`ok`).
    MediaReport {
        state: MediaHealth,
        #[serde(default)]
        reason: Option<MediaProblem>,
    },
    PollCreate {
        question: String,
        options: Vec<String>,
        /// Several options may be chosen.
        #[serde(default)]
        multiple: bool,
        /// Indexes of the correct options, for a quiz.
        #[serde(default)]
        correct: Option<Vec<u32>>,
        /// Closes by itself this many seconds after opening.
        #[serde(default)]
        time_limit_secs: Option<u32>,
    },
    PollOpen {
        poll_id: i64,
    },
    PollAnswer {
        poll_id: i64,
        /// Indexes of the chosen options.
        choices: Vec<u32>,
    },
    PollClose {
        poll_id: i64,
    },
    /// Start recording (hosts).
    RecordStart,
    RecordPause,
    RecordResume,
    RecordStop,
    Kick {
        identity: String,
    },
    SessionEnd,
    /// The SDP offer of your publishing connection (first offer, added or
    /// removed tracks, or an ICE restart). `sources` names what each track is,
    /// by its track id (the msid track id in the SDP); unnamed audio is
    /// `microphone`, unnamed video `camera`. Acked with `{"sdp": answer}`.
    MediaPublish {
        sdp: String,
        #[serde(default)]
        sources: std::collections::HashMap<String, TrackSource>,
        /// This offer comes from a new `RTCPeerConnection` (page reload, or a
        /// reconnect that lost the old one): replace the old connection.
        #[serde(default)]
        reset: bool,
    },
    /// Stop publishing: closes your publishing connection.
    MediaUnpublish,
    /// Ask to receive media, and choose what: `audio_only` stops video;
    /// `video` (track ids) limits which video tracks you get (`null` = all).
    /// The server then sends `media_offer` for your receiving connection.
    MediaSubscribe {
        #[serde(default)]
        audio_only: bool,
        #[serde(default)]
        video: Option<Vec<String>>,
        /// Discard the old receiving connection and offer a new one.
        #[serde(default)]
        reset: bool,
    },
    /// Your SDP answer to the server's last `media_offer`.
    MediaAnswer {
        sdp: String,
    },
    /// Which simulcast layer to receive of one video track (default `high`).
    MediaQuality {
        track_id: String,
        quality: crate::media::layers::Quality,
    },
    /// A trickled ICE candidate of one of your connections.
    MediaIce {
        target: MediaTarget,
        candidate: IceCandidate,
    },
}

impl ClientMsg {
    /// Every `type` a client may send, for telling "unknown type" from "bad fields".
    pub const TYPES: &'static [&'static str] = &[
        "ping",
        "leave",
        "chat_send",
        "chat_delete",
        "chat_mute",
        "chat_lock",
        "hand_raise",
        "hand_lower",
        "hands_clear",
        "question_ask",
        "question_upvote",
        "question_reply",
        "question_answer",
        "question_dismiss",
        "question_pin",
        "stage_invite",
        "stage_accept",
        "stage_decline",
        "stage_leave",
        "stage_remove",
        "stage_lock",
        "kick",
        "session_end",
        "media_publish",
        "media_unpublish",
        "media_subscribe",
        "media_answer",
        "media_quality",
        "media_ice",
        "presence_check_start",
        "presence_confirm",
        "visibility",
        "media_report",
        "poll_create",
        "poll_open",
        "poll_answer",
        "poll_close",
        "record_start",
        "record_pause",
        "record_resume",
        "record_stop",
    ];
}

/// A numbered room event: stored in the session timeline, then broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the session's timeline; strictly increasing. A member who
    /// may not see some events (audience mode) sees gaps, never a reordering.
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened in a room. Each variant is a frame `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    SessionStarted,
    SessionUpdated {
        session: SessionInfo,
    },
    SessionEnded {
        by: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    /// A present member's link dropped (`false`: they are inside the grace
    /// period) or came back within it (`true`). Keeps the roster's
    /// `connected` true; attendance is not affected.
    ParticipantConnection {
        identity: String,
        connected: bool,
    },
    ParticipantLeft {
        identity: String,
        reason: LeaveReason,
        /// When the participant was last present: for `timeout` and
        /// `server_restart` this is earlier than the event's `at`.
        left_at: Timestamp,
    },
    ChatMessage {
        message: ChatMessage,
    },
    ChatDeleted {
        message_id: i64,
        by: String,
    },
    ChatMuted {
        identity: String,
        muted: bool,
        by: String,
    },
    ChatLocked {
        locked: bool,
        by: String,
    },
    HandRaised {
        hand: Hand,
    },
    HandLowered {
        identity: String,
        by: String,
    },
    HandsCleared {
        by: String,
    },
    QuestionAsked {
        question: Question,
    },
    QuestionUpvoted {
        question_id: i64,
        upvotes: u32,
        by: String,
    },
    QuestionReplied {
        question_id: i64,
        reply: Reply,
    },
    QuestionStatusChanged {
        question_id: i64,
        status: QuestionStatus,
        by: String,
    },
    QuestionPinned {
        question_id: Option<i64>,
        by: String,
    },
    StageInvited {
        member: StageMember,
        by: String,
    },
    StageDeclined {
        identity: String,
    },
    StageJoined {
        member: StageMember,
    },
    StageLeft {
        identity: String,
        reason: StageLeaveReason,
        by: String,
    },
    StageLocked {
        locked: bool,
        by: String,
    },
    TrackPublished {
        track: TrackInfo,
    },
    TrackUnpublished {
        track_id: String,
        owner: String,
    },
    /// A publisher started or stopped speaking (a few changes a second at most).
    Speaking {
        identity: String,
        speaking: bool,
    },
    PresenceCheckStarted {
        check: PresenceCheck,
    },
    /// Staff and the member only.
    PresenceConfirmed {
        check_id: i64,
        identity: String,
        response_ms: i64,
    },
    /// The window closed; who passed and who missed follows from the
    /// confirmations and who was present when it started.
    PresenceCheckEnded {
        check_id: i64,
        passed: u32,
        missed: u32,
    },
    /// Staff only: a participant's page was hidden or shown.
    VisibilityChanged {
        identity: String,
        hidden: bool,
    },
    /// Staff only: a member's media could not connect, or works again.
    MediaReported {
        identity: String,
        state: MediaHealth,
        /// Why, for `failed`.
        reason: Option<MediaProblem>,
    },
    /// Staff only (carries the correct answers).
    PollCreated {
        poll: Poll,
    },
    /// Everyone; never carries the correct answers.
    PollOpened {
        poll: Poll,
    },
    /// Staff and the member only.
    PollAnswered {
        poll_id: i64,
        identity: String,
        choices: Vec<u32>,
    },
    /// Everyone: counts per option, and the correct answers if any.
    PollClosed {
        poll: Poll,
        by: String,
    },
    RecordingStarted {
        recording_id: String,
        by: String,
    },
    RecordingPaused {
        recording_id: String,
        by: String,
    },
    RecordingResumed {
        recording_id: String,
        by: String,
    },
    /// `reason`: `stopped`, `session_ended` or `server_restart`.
    RecordingStopped {
        recording_id: String,
        by: String,
        reason: String,
    },
    /// Staff only: someone watched stretches of a recording's replay
    /// (seconds newly watched, and the stretches, in recording seconds).
    ReplayWatched {
        recording_id: String,
        identity: String,
        name: String,
        seconds: u32,
        ranges: Vec<[f64; 2]>,
    },
}

impl EventKind {
    /// The frame `type` of this event, as stored in the timeline's `type` column.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::SessionStarted => "session_started",
            EventKind::SessionUpdated { .. } => "session_updated",
            EventKind::SessionEnded { .. } => "session_ended",
            EventKind::ParticipantJoined { .. } => "participant_joined",
            EventKind::ParticipantLeft { .. } => "participant_left",
            EventKind::ParticipantConnection { .. } => "participant_connection",
            EventKind::ChatMessage { .. } => "chat_message",
            EventKind::ChatDeleted { .. } => "chat_deleted",
            EventKind::ChatMuted { .. } => "chat_muted",
            EventKind::ChatLocked { .. } => "chat_locked",
            EventKind::HandRaised { .. } => "hand_raised",
            EventKind::HandLowered { .. } => "hand_lowered",
            EventKind::HandsCleared { .. } => "hands_cleared",
            EventKind::QuestionAsked { .. } => "question_asked",
            EventKind::QuestionUpvoted { .. } => "question_upvoted",
            EventKind::QuestionReplied { .. } => "question_replied",
            EventKind::QuestionStatusChanged { .. } => "question_status_changed",
            EventKind::QuestionPinned { .. } => "question_pinned",
            EventKind::StageInvited { .. } => "stage_invited",
            EventKind::StageDeclined { .. } => "stage_declined",
            EventKind::StageJoined { .. } => "stage_joined",
            EventKind::StageLeft { .. } => "stage_left",
            EventKind::StageLocked { .. } => "stage_locked",
            EventKind::TrackPublished { .. } => "track_published",
            EventKind::TrackUnpublished { .. } => "track_unpublished",
            EventKind::Speaking { .. } => "speaking",
            EventKind::PresenceCheckStarted { .. } => "presence_check_started",
            EventKind::PresenceConfirmed { .. } => "presence_confirmed",
            EventKind::PresenceCheckEnded { .. } => "presence_check_ended",
            EventKind::VisibilityChanged { .. } => "visibility_changed",
            EventKind::MediaReported { .. } => "media_reported",
            EventKind::PollCreated { .. } => "poll_created",
            EventKind::PollOpened { .. } => "poll_opened",
            EventKind::PollAnswered { .. } => "poll_answered",
            EventKind::PollClosed { .. } => "poll_closed",
            EventKind::RecordingStarted { .. } => "recording_started",
            EventKind::RecordingPaused { .. } => "recording_paused",
            EventKind::RecordingResumed { .. } => "recording_resumed",
            EventKind::RecordingStopped { .. } => "recording_stopped",
            EventKind::ReplayWatched { .. } => "replay_watched",
        }
    }

    /// The participant this event is about, if any (indexed in the timeline).
    pub fn subject(&self) -> Option<&str> {
        match self {
            EventKind::ParticipantJoined { participant } => Some(&participant.identity),
            EventKind::ParticipantLeft { identity, .. }
            | EventKind::ParticipantConnection { identity, .. }
            | EventKind::ChatMuted { identity, .. }
            | EventKind::HandLowered { identity, .. }
            | EventKind::StageDeclined { identity }
            | EventKind::StageLeft { identity, .. } => Some(identity),
            EventKind::ChatMessage { message } => Some(&message.identity),
            EventKind::HandRaised { hand } => Some(&hand.identity),
            EventKind::QuestionAsked { question } => Some(&question.identity),
            EventKind::QuestionUpvoted { by, .. } => Some(by),
            EventKind::QuestionReplied { reply, .. } => Some(&reply.identity),
            EventKind::StageInvited { member, .. } | EventKind::StageJoined { member } => {
                Some(&member.identity)
            }
            EventKind::TrackPublished { track } => Some(&track.owner),
            EventKind::TrackUnpublished { owner, .. } => Some(owner),
            EventKind::Speaking { identity, .. }
            | EventKind::PresenceConfirmed { identity, .. }
            | EventKind::VisibilityChanged { identity, .. }
            | EventKind::MediaReported { identity, .. }
            | EventKind::PollAnswered { identity, .. }
            | EventKind::ReplayWatched { identity, .. } => Some(identity),
            _ => None,
        }
    }
}

/// Frames the server sends that are not numbered room events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome(Box<Welcome>),
    /// First frame of a resumed connection; the missed events follow it.
    Resumed {
        you: You,
        resume_token: String,
        /// Events with `seq` above `from_seq` up to `seq` follow, in order.
        from_seq: u64,
        seq: u64,
        /// How many people are present now.
        participant_count: u32,
    },
    Ack {
        req_id: Option<ReqId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
        code: ErrorCode,
        message: String,
    },
    Pong,
    /// How many people are present (not numbered; sent at most once a second).
    ParticipantCount {
        count: u32,
    },
    /// Audience mode: the upvote counts that changed in the last second
    /// (participants get these instead of every `question_upvoted`).
    QuestionVotes {
        votes: Vec<QuestionVotes>,
    },
    /// Your own permissions changed (stage, chat mute, seminar lock).
    YouUpdated {
        you: You,
    },
    /// The server is going down; reconnect after `retry_after_ms`.
    ServerShutdown {
        retry_after_ms: u64,
    },
    /// The server's SDP offer for your receiving connection; answer with `media_answer`.
    MediaOffer {
        sdp: String,
    },
}

/// Any frame the server sends: what a client decodes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Incoming {
    Event(Event),
    Msg(ServerMsg),
}

/// A member's media as its client sees it (`media_report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaHealth {
    /// Audio and video connected (sent after a failure).
    Ok,
    /// The client could not connect its media.
    Failed,
}

/// Why a client's media failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaProblem {
    /// ICE failed: no path for UDP (or TURN) to the server's media ports.
    IceFailed,
    /// The connection did not come up within the client's wait.
    Timeout,
    /// No camera or microphone could be opened.
    NoDevices,
    /// The server refused to open a media connection (`media_failed`).
    ServerRefused,
}
