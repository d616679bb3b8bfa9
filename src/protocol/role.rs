use serde::{Deserialize, Serialize};

/// What a member of a session is. Chosen by whoever issues the join token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Moderator,
    Participant,
    /// Programme staff: sees everything, is never listed or counted, cannot speak.
    Observer,
}

/// A static permission of a role. Whether one may publish media also depends
/// on room state (stage, seminar lock) and is reported as `can_publish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "chat.post")]
    ChatPost,
    #[serde(rename = "chat.moderate")]
    ChatModerate,
    #[serde(rename = "hand.raise")]
    HandRaise,
    #[serde(rename = "hand.moderate")]
    HandModerate,
    #[serde(rename = "question.ask")]
    QuestionAsk,
    #[serde(rename = "question.upvote")]
    QuestionUpvote,
    #[serde(rename = "question.reply")]
    QuestionReply,
    #[serde(rename = "question.moderate")]
    QuestionModerate,
    #[serde(rename = "stage.manage")]
    StageManage,
    #[serde(rename = "participant.kick")]
    ParticipantKick,
    #[serde(rename = "session.end")]
    SessionEnd,
    /// Receives the full roster and every join/leave, also in audience mode.
    #[serde(rename = "roster.view")]
    RosterView,
    /// Start presence checks; create, open and close polls.
    #[serde(rename = "activity.manage")]
    ActivityManage,
    /// Confirm presence checks and answer polls (participants: they are graded).
    #[serde(rename = "activity.respond")]
    ActivityRespond,
    /// Start, pause, resume and stop recording.
    #[serde(rename = "recording.manage")]
    RecordingManage,
}

impl Permission {
    pub const ALL: [Permission; 15] = [
        Permission::ChatPost,
        Permission::ChatModerate,
        Permission::HandRaise,
        Permission::HandModerate,
        Permission::QuestionAsk,
        Permission::QuestionUpvote,
        Permission::QuestionReply,
        Permission::QuestionModerate,
        Permission::StageManage,
        Permission::ParticipantKick,
        Permission::SessionEnd,
        Permission::RosterView,
        Permission::ActivityManage,
        Permission::ActivityRespond,
        Permission::RecordingManage,
    ];
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Moderator => "moderator",
            Role::Participant => "participant",
            Role::Observer => "observer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "host" => Some(Role::Host),
            "moderator" => Some(Role::Moderator),
            "participant" => Some(Role::Participant),
            "observer" => Some(Role::Observer),
            _ => None,
        }
    }

    /// The permission table of `docs/protocol.md`, in code.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match p {
            ChatPost | QuestionAsk | QuestionUpvote | QuestionReply => self != Observer,
            HandRaise => matches!(self, Moderator | Participant),
            ChatModerate | HandModerate | QuestionModerate | StageManage | ParticipantKick
            | ActivityManage => matches!(self, Host | Moderator),
            ActivityRespond => self == Participant,
            SessionEnd | RecordingManage => self == Host,
            RosterView => self != Participant,
        }
    }

    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.allows(*p))
            .collect()
    }

    /// Staff may act on members of lower rank only (a moderator cannot mute a host).
    pub fn rank(self) -> u8 {
        match self {
            Role::Host => 3,
            Role::Moderator => 2,
            Role::Participant => 1,
            Role::Observer => 0,
        }
    }

    /// Counted in attendance and the participant count, listed in the roster.
    pub fn is_listed(self) -> bool {
        self != Role::Observer
    }
}
