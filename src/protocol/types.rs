//! The things a room is made of, as they appear on the wire and in the REST API.

use super::{Permission, Role, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// An expert streams to a large audience; participants ask in writing.
    Qa,
    /// A tutor and a small class, everyone on camera.
    Seminar,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Qa => "qa",
            SessionKind::Seminar => "seminar",
        }
    }
    pub fn parse(s: &str) -> Option<SessionKind> {
        match s {
            "qa" => Some(SessionKind::Qa),
            "seminar" => Some(SessionKind::Seminar),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Created, nobody has joined yet.
    Scheduled,
    /// Someone joined; the session runs until it is ended.
    Live,
    Ended,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Scheduled => "scheduled",
            SessionStatus::Live => "live",
            SessionStatus::Ended => "ended",
        }
    }
    pub fn parse(s: &str) -> Option<SessionStatus> {
        match s {
            "scheduled" => Some(SessionStatus::Scheduled),
            "live" => Some(SessionStatus::Live),
            "ended" => Some(SessionStatus::Ended),
            _ => None,
        }
    }
}

/// Per-session settings. Every field is optional; absent means the server default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Longest chat message, question or reply in characters (server default 2,000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_max_length: Option<u32>,
    /// Send participants a count instead of every join and leave.
    /// Default: on for `qa`, off for `seminar`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience_mode: Option<bool>,
    /// Record from the moment the session goes live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// Presence checks at random times (docs/grading.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_checks: Option<PresenceCheckSettings>,
    /// How participation is scored (docs/grading.md); the server's default
    /// rubric when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rubric: Option<crate::grading::rubric::Rubric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub title: String,
    pub kind: SessionKind,
    pub status: SessionStatus,
    pub scheduled_start: Option<Timestamp>,
    pub scheduled_end: Option<Timestamp>,
    pub settings: SessionSettings,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

impl SessionInfo {
    pub fn audience_mode(&self) -> bool {
        self.settings
            .audience_mode
            .unwrap_or(self.kind == SessionKind::Qa)
    }
}

/// A member as listed in the roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantInfo {
    pub identity: String,
    pub name: String,
    pub role: Role,
    /// Start of the current attendance interval.
    pub joined_at: Timestamp,
    /// False while the member is disconnected within the reconnect grace period.
    pub connected: bool,
    pub chat_muted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Left on purpose.
    Left,
    /// Removed by a moderator.
    Kicked,
    /// Disconnected and did not come back within the grace period.
    Timeout,
    /// The server shut down cleanly.
    ServerShutdown,
    /// The server stopped without a clean shutdown; closed at the last time seen.
    ServerRestart,
    /// The session was ended.
    SessionEnded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    /// Numbered per session, from 1.
    pub id: i64,
    pub identity: String,
    pub name: String,
    pub text: String,
    pub sent_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Hand {
    pub identity: String,
    pub name: String,
    pub raised_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionStatus {
    Open,
    Answered,
    Dismissed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reply {
    /// Numbered per session, from 1.
    pub id: i64,
    pub identity: String,
    pub name: String,
    pub text: String,
    pub sent_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Question {
    /// Numbered per session, from 1.
    pub id: i64,
    pub identity: String,
    pub name: String,
    pub text: String,
    pub asked_at: Timestamp,
    pub status: QuestionStatus,
    pub upvotes: u32,
    pub replies: Vec<Reply>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageMember {
    pub identity: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageLeaveReason {
    /// The member left the stage (or withdrew from an invitation).
    Left,
    /// A moderator removed the member.
    Removed,
    /// The member left the session.
    Disconnected,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageInfo {
    /// Participants invited to and on the stage (hosts and moderators may
    /// always publish and are not listed here).
    pub members: Vec<StageMember>,
    /// Invitations waiting for an answer.
    pub invited: Vec<StageMember>,
    /// Seminar publish lock.
    pub locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Camera,
    Microphone,
    /// A screen or window share (slides).
    Screen,
}

/// A question's upvote count, as coalesced for audience-mode participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionVotes {
    pub question_id: i64,
    pub upvotes: u32,
}

/// A published media track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackInfo {
    /// Server-assigned, unique in the session.
    pub id: String,
    pub owner: String,
    /// The owner's display name, so a Q&A audience without a roster can
    /// label the stage. Empty in events stored before it existed.
    #[serde(default)]
    pub name: String,
    pub kind: TrackKind,
    pub source: TrackSource,
    /// The codec, e.g. `video/VP8`, `audio/opus`.
    pub codec: String,
}

/// Which of a member's two media connections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaTarget {
    /// The connection you send on (you offer).
    Publisher,
    /// The connection you receive on (the server offers).
    Subscriber,
}

/// An ICE candidate as browsers give it (`RTCIceCandidate.toJSON()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, rename = "sdpMid")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
}

/// A STUN or TURN server for clients, from the server config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Who you are in this session and what you may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct You {
    pub identity: String,
    pub name: String,
    pub role: Role,
    pub permissions: Vec<Permission>,
    /// May publish audio and video now (role, stage and seminar lock together).
    pub can_publish: bool,
    pub chat_muted: bool,
}

/// The first frame of a connection: everything needed to draw the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub session: SessionInfo,
    pub you: You,
    /// The full roster; `null` for participants in audience mode.
    pub roster: Option<Vec<ParticipantInfo>>,
    pub participant_count: u32,
    /// The raised hands, first raised first. In audience mode a participant
    /// sees only their own hand.
    pub hands: Vec<Hand>,
    pub stage: StageInfo,
    /// Open and answered questions, with replies (dismissed ones are left out).
    pub questions: Vec<Question>,
    /// Ids of the questions you have upvoted.
    pub my_votes: Vec<i64>,
    pub pinned_question: Option<i64>,
    /// Media tracks being published now.
    pub tracks: Vec<TrackInfo>,
    /// Members speaking now.
    pub speaking: Vec<String>,
    /// STUN/TURN servers to give your `RTCPeerConnection`s.
    pub ice_servers: Vec<IceServer>,
    /// The most recent chat messages, oldest first.
    pub chat: Vec<ChatMessage>,
    pub chat_locked: bool,
    /// The running presence check, if any.
    pub presence_check: Option<PresenceCheck>,
    /// Whether you confirmed it.
    pub presence_confirmed: bool,
    /// Polls: open and closed ones for everyone, drafts for staff; correct
    /// answers only for staff or once closed.
    pub polls: Vec<Poll>,
    /// Your answers.
    pub my_poll_answers: Vec<PollChoice>,
    /// The recording in progress (running or paused), if any.
    pub recording: Option<RecordingState>,
    /// Present this (with `last_seq`) when reconnecting to resume.
    pub resume_token: String,
    /// The sequence number of the last event included in this snapshot.
    pub seq: u64,
    pub server_time: Timestamp,
}

/// Presence checks the room starts by itself at random times, never in the
/// first or last five minutes of the scheduled time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceCheckSettings {
    /// Checks per hour, at least and at most (e.g. 2 and 4).
    pub per_hour_min: f64,
    pub per_hour_max: f64,
    /// Seconds to confirm (default 60).
    #[serde(default)]
    pub window_secs: Option<u32>,
}

/// A "still here?" check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PresenceCheck {
    pub id: i64,
    pub started_at: Timestamp,
    pub deadline: Timestamp,
    /// Who started it (`"schedule"` for a scheduled check).
    pub by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PollStatus {
    Draft,
    Open,
    Closed,
}

/// A poll or quiz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Poll {
    pub id: i64,
    pub question: String,
    pub options: Vec<String>,
    pub multiple: bool,
    pub time_limit_secs: Option<u32>,
    pub status: PollStatus,
    /// Whether the poll has correct answers (a quiz).
    pub graded: bool,
    /// The correct options: only for staff before the poll closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<Vec<u32>>,
    pub opened_at: Option<Timestamp>,
    pub closes_at: Option<Timestamp>,
    /// Answers per option, once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Vec<u32>>,
    /// How many answered, once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<u32>,
}

/// One of your poll answers (in the welcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PollChoice {
    pub poll_id: i64,
    pub choices: Vec<u32>,
}

/// A recording in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordingState {
    pub id: String,
    pub paused: bool,
}
