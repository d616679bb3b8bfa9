//! What a request does to a room: validation and the events it produces.
//!
//! Pure functions of the current state, the request and the time; no I/O,
//! no clocks. The actor applies the events, stores them, then sends them.

use super::state::ClassState;
use crate::protocol::{
    ChatMessage, ClientMsg, ErrorCode, EventKind, Hand, LeaveReason, ParticipantInfo, Permission,
    Question, QuestionStatus, Reply, Role, SessionKind, SessionStatus, StageLeaveReason,
    StageMember, Timestamp,
};
use serde_json::json;

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub identity: String,
    pub name: String,
    pub role: Role,
}

/// Why a request was refused; becomes an `error` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// The events a request produces and the `result` of its `ack`.
#[derive(Debug, Default)]
pub struct Outcome {
    pub events: Vec<EventKind>,
    pub result: Option<serde_json::Value>,
}

impl Outcome {
    fn events(events: Vec<EventKind>) -> Outcome {
        Outcome {
            events,
            result: None,
        }
    }
    fn none() -> Outcome {
        Outcome::default()
    }
}

/// The one permission check of the room's rules (chat, hands, Q&A, stage
/// here; activities and recording in `activities`).
pub(super) fn require(role: Role, p: Permission) -> Result<(), Rejection> {
    if role.allows(p) {
        Ok(())
    } else {
        let name = serde_json::to_value(p).ok();
        let name = name.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        Err(Rejection::new(
            ErrorCode::Forbidden,
            format!("a {} may not do this (needs {name})", role.as_str()),
        ))
    }
}

/// The one text check: trims, refuses empty text and text over `max`
/// characters. `what` names it in the message ("the text", "an option").
pub(super) fn check_text(text: &str, max: usize, what: &str) -> Result<String, Rejection> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::new(
            ErrorCode::EmptyText,
            format!("{what} is empty"),
        ));
    }
    let len = text.chars().count();
    if len > max {
        return Err(Rejection::new(
            ErrorCode::TextTooLong,
            format!("{what} has {len} characters; the limit is {max}"),
        ));
    }
    Ok(text.to_string())
}

impl ClassState {
    fn max_len(&self, default: usize) -> usize {
        self.session
            .settings
            .chat_max_length
            .map(|n| n as usize)
            .unwrap_or(default)
    }

    /// Trims and checks a chat message, question or reply against the
    /// session's length limit.
    fn check_text(&self, text: &str, default_max: usize) -> Result<String, Rejection> {
        check_text(text, self.max_len(default_max), "the text")
    }

    /// A present member other than the actor, whom the actor outranks.
    fn target(&self, actor: &Actor, identity: &str) -> Result<Role, Rejection> {
        if identity == actor.identity {
            return Err(Rejection::new(
                ErrorCode::InvalidState,
                "this acts on someone else, not on yourself",
            ));
        }
        let m = self
            .members
            .get(identity)
            .filter(|m| m.present)
            .ok_or_else(|| {
                Rejection::new(
                    ErrorCode::NotFound,
                    format!("{identity:?} is not in this session"),
                )
            })?;
        if actor.role != Role::Host && m.role.rank() >= actor.role.rank() {
            return Err(Rejection::new(
                ErrorCode::Forbidden,
                format!(
                    "a {} cannot act on a {}",
                    actor.role.as_str(),
                    m.role.as_str()
                ),
            ));
        }
        Ok(m.role)
    }

    fn question(&self, id: i64) -> Result<&Question, Rejection> {
        self.questions
            .get(&id)
            .ok_or_else(|| Rejection::new(ErrorCode::NotFound, format!("no question {id}")))
    }

    /// Someone connects. Returns the events their arrival causes (none when
    /// they are already present, e.g. reconnecting within the grace period).
    pub fn join(&self, actor: &Actor, now: Timestamp) -> Result<Vec<EventKind>, Rejection> {
        if self.session.status == SessionStatus::Ended {
            return Err(Rejection::new(
                ErrorCode::SessionEnded,
                "this session has ended",
            ));
        }
        let member = self.members.get(&actor.identity);
        if member.is_some_and(|m| m.kicked) {
            return Err(Rejection::new(
                ErrorCode::Forbidden,
                "you were removed from this session by a moderator",
            ));
        }
        let mut events = Vec::new();
        if self.session.status == SessionStatus::Scheduled {
            events.push(EventKind::SessionStarted);
        }
        let mut present = member.is_some_and(|m| m.present);
        if member.is_some_and(|m| m.present && m.role != actor.role) {
            // Back with another role (a new token): the old attendance ends here.
            events.extend(self.leave(&actor.identity, LeaveReason::Left, now, &actor.identity));
            present = false;
        }
        if actor.role.is_listed() && !present {
            events.push(EventKind::ParticipantJoined {
                participant: ParticipantInfo {
                    identity: actor.identity.clone(),
                    name: actor.name.clone(),
                    role: actor.role,
                    joined_at: now,
                    connected: true,
                    chat_muted: self.chat_muted(&actor.identity),
                },
            });
        }
        Ok(events)
    }

    /// Someone's attendance ends. Stage membership is ended explicitly so that
    /// audience-mode members, who do not see leaves, still see the stage change.
    /// `by` is who caused it: the member, or the moderator who kicked them.
    pub fn leave(
        &self,
        identity: &str,
        reason: LeaveReason,
        left_at: Timestamp,
        by: &str,
    ) -> Vec<EventKind> {
        let mut events = Vec::new();
        if !self.members.get(identity).is_some_and(|m| m.present) {
            return events;
        }
        if self.on_stage(identity) || self.invited(identity) {
            events.push(EventKind::StageLeft {
                identity: identity.to_string(),
                reason: if reason == LeaveReason::Kicked {
                    StageLeaveReason::Removed
                } else {
                    StageLeaveReason::Disconnected
                },
                by: by.to_string(),
            });
        }
        // Explicit, like the stage: audience-mode members see no leaves.
        if self.speaking.iter().any(|s| s == identity) {
            events.push(EventKind::Speaking {
                identity: identity.to_string(),
                speaking: false,
            });
        }
        for t in self.tracks.iter().filter(|t| t.owner == identity) {
            events.push(EventKind::TrackUnpublished {
                track_id: t.id.clone(),
                owner: t.owner.clone(),
            });
        }
        events.push(EventKind::ParticipantLeft {
            identity: identity.to_string(),
            reason,
            left_at,
        });
        events
    }

    /// Ends the session: everyone present leaves with `session_ended`.
    pub fn end(&self, by: &str, now: Timestamp) -> Vec<EventKind> {
        if self.session.status == SessionStatus::Ended {
            return Vec::new();
        }
        // A running check and open polls end with the session, first.
        let mut events = self.activities.close_all(by);
        events.extend(
            self.present_identities()
                .iter()
                .flat_map(|id| self.leave(id, LeaveReason::SessionEnded, now, by)),
        );
        events.push(EventKind::SessionEnded { by: by.to_string() });
        events
    }

    /// A request from a connected member. `Ping` and `Leave` are handled by the caller.
    pub fn handle(
        &self,
        actor: &Actor,
        msg: &ClientMsg,
        now: Timestamp,
        default_max_len: usize,
    ) -> Result<Outcome, Rejection> {
        if self.session.status == SessionStatus::Ended {
            return Err(Rejection::new(
                ErrorCode::SessionEnded,
                "this session has ended",
            ));
        }
        if let Some(r) = super::activities::handle(self, actor, msg, now) {
            return r;
        }
        let by = actor.identity.clone();
        match msg {
            // Handled by the actor (leave) and the edge (ping).
            ClientMsg::Ping | ClientMsg::Leave => Ok(Outcome::none()),
            // Handled by `activities::handle` above.
            ClientMsg::PresenceCheckStart { .. }
            | ClientMsg::PresenceConfirm { .. }
            | ClientMsg::Visibility { .. }
            | ClientMsg::MediaReport { .. }
            | ClientMsg::PollCreate { .. }
            | ClientMsg::PollOpen { .. }
            | ClientMsg::PollAnswer { .. }
            | ClientMsg::PollClose { .. }
            | ClientMsg::RecordStart
            | ClientMsg::RecordPause
            | ClientMsg::RecordResume
            | ClientMsg::RecordStop => Ok(Outcome::none()),
            // Media requests go to the media layer after the actor's
            // `may_publish` check; they change no room state directly.
            ClientMsg::MediaPublish { .. }
            | ClientMsg::MediaUnpublish
            | ClientMsg::MediaSubscribe { .. }
            | ClientMsg::MediaAnswer { .. }
            | ClientMsg::MediaQuality { .. }
            | ClientMsg::MediaIce { .. } => Ok(Outcome::none()),
            ClientMsg::ChatSend { text } => {
                require(actor.role, Permission::ChatPost)?;
                let staff = actor.role.allows(Permission::ChatModerate);
                if self.chat_locked && !staff {
                    return Err(Rejection::new(
                        ErrorCode::ChatLocked,
                        "chat is locked by a moderator",
                    ));
                }
                if self.chat_muted(&actor.identity) {
                    return Err(Rejection::new(
                        ErrorCode::ChatMuted,
                        "a moderator muted your chat",
                    ));
                }
                let text = self.check_text(text, default_max_len)?;
                let id = self.last_chat_id + 1;
                Ok(Outcome {
                    events: vec![EventKind::ChatMessage {
                        message: ChatMessage {
                            id,
                            identity: by,
                            name: actor.name.clone(),
                            text,
                            sent_at: now,
                        },
                    }],
                    result: Some(json!({ "message_id": id })),
                })
            }
            ClientMsg::ChatDelete { message_id } => {
                require(actor.role, Permission::ChatModerate)?;
                if !self.chat_ids.contains(message_id) {
                    return Err(Rejection::new(
                        ErrorCode::NotFound,
                        format!("no chat message {message_id}"),
                    ));
                }
                Ok(Outcome::events(vec![EventKind::ChatDeleted {
                    message_id: *message_id,
                    by,
                }]))
            }
            ClientMsg::ChatMute { identity, muted } => {
                require(actor.role, Permission::ChatModerate)?;
                self.target(actor, identity)?;
                if self.chat_muted(identity) == *muted {
                    return Ok(Outcome::none());
                }
                Ok(Outcome::events(vec![EventKind::ChatMuted {
                    identity: identity.clone(),
                    muted: *muted,
                    by,
                }]))
            }
            ClientMsg::ChatLock { locked } => {
                require(actor.role, Permission::ChatModerate)?;
                if self.chat_locked == *locked {
                    return Ok(Outcome::none());
                }
                Ok(Outcome::events(vec![EventKind::ChatLocked {
                    locked: *locked,
                    by,
                }]))
            }
            ClientMsg::HandRaise => {
                require(actor.role, Permission::HandRaise)?;
                if self.hand_raised(&actor.identity) {
                    return Ok(Outcome::none());
                }
                if self.on_stage(&actor.identity) || self.invited(&actor.identity) {
                    return Err(Rejection::new(
                        ErrorCode::InvalidState,
                        "you are already invited to or on the stage",
                    ));
                }
                Ok(Outcome::events(vec![EventKind::HandRaised {
                    hand: Hand {
                        identity: by,
                        name: actor.name.clone(),
                        raised_at: now,
                    },
                }]))
            }
            ClientMsg::HandLower { identity } => {
                let target = identity.as_deref().unwrap_or(&actor.identity);
                if target != actor.identity {
                    require(actor.role, Permission::HandModerate)?;
                    self.target(actor, target)?;
                }
                if !self.hand_raised(target) {
                    return Ok(Outcome::none());
                }
                Ok(Outcome::events(vec![EventKind::HandLowered {
                    identity: target.to_string(),
                    by,
                }]))
            }
            ClientMsg::HandsClear => {
                require(actor.role, Permission::HandModerate)?;
                if self.hands.is_empty() {
                    return Ok(Outcome::none());
                }
                Ok(Outcome::events(vec![EventKind::HandsCleared { by }]))
            }
            ClientMsg::QuestionAsk { text } => {
                require(actor.role, Permission::QuestionAsk)?;
                let text = self.check_text(text, default_max_len)?;
                let id = self.questions.keys().next_back().copied().unwrap_or(0) + 1;
                Ok(Outcome {
                    events: vec![EventKind::QuestionAsked {
                        question: Question {
                            id,
                            identity: by,
                            name: actor.name.clone(),
                            text,
                            asked_at: now,
                            status: QuestionStatus::Open,
                            upvotes: 0,
                            replies: Vec::new(),
                        },
                    }],
                    result: Some(json!({ "question_id": id })),
                })
            }
            ClientMsg::QuestionUpvote { question_id } => {
                require(actor.role, Permission::QuestionUpvote)?;
                let q = self.question(*question_id)?;
                if q.status != QuestionStatus::Open {
                    return Err(Rejection::new(
                        ErrorCode::InvalidState,
                        "only open questions can be upvoted",
                    ));
                }
                if self.votes.contains(&(*question_id, actor.identity.clone())) {
                    return Err(Rejection::new(
                        ErrorCode::AlreadyVoted,
                        "you already upvoted this question",
                    ));
                }
                Ok(Outcome {
                    events: vec![EventKind::QuestionUpvoted {
                        question_id: *question_id,
                        upvotes: q.upvotes + 1,
                        by,
                    }],
                    result: Some(json!({ "upvotes": q.upvotes + 1 })),
                })
            }
            ClientMsg::QuestionReply { question_id, text } => {
                require(actor.role, Permission::QuestionReply)?;
                let q = self.question(*question_id)?;
                if q.status == QuestionStatus::Dismissed {
                    return Err(Rejection::new(
                        ErrorCode::InvalidState,
                        "this question was dismissed",
                    ));
                }
                let text = self.check_text(text, default_max_len)?;
                let id = self.last_reply_id + 1;
                Ok(Outcome {
                    events: vec![EventKind::QuestionReplied {
                        question_id: *question_id,
                        reply: Reply {
                            id,
                            identity: by,
                            name: actor.name.clone(),
                            text,
                            sent_at: now,
                        },
                    }],
                    result: Some(json!({ "reply_id": id })),
                })
            }
            ClientMsg::QuestionAnswer { question_id }
            | ClientMsg::QuestionDismiss { question_id } => {
                require(actor.role, Permission::QuestionModerate)?;
                let status = if matches!(msg, ClientMsg::QuestionAnswer { .. }) {
                    QuestionStatus::Answered
                } else {
                    QuestionStatus::Dismissed
                };
                if self.question(*question_id)?.status == status {
                    return Ok(Outcome::none());
                }
                Ok(Outcome::events(vec![EventKind::QuestionStatusChanged {
                    question_id: *question_id,
                    status,
                    by,
                }]))
            }
            ClientMsg::QuestionPin { question_id } => {
                require(actor.role, Permission::QuestionModerate)?;
                if let Some(id) = question_id {
                    if self.question(*id)?.status != QuestionStatus::Open {
                        return Err(Rejection::new(
                            ErrorCode::InvalidState,
                            "only open questions can be pinned",
                        ));
                    }
                }
                if self.pinned == *question_id {
                    return Ok(Outcome::none());
                }
                Ok(Outcome::events(vec![EventKind::QuestionPinned {
                    question_id: *question_id,
                    by,
                }]))
            }
            ClientMsg::StageInvite { identity } => {
                require(actor.role, Permission::StageManage)?;
                let role = self.target(actor, identity)?;
                if role != Role::Participant {
                    return Err(Rejection::new(
                        ErrorCode::InvalidState,
                        "only participants are invited; hosts and moderators may always speak",
                    ));
                }
                if self.on_stage(identity) || self.invited(identity) {
                    return Ok(Outcome::none());
                }
                let name = self
                    .members
                    .get(identity)
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                Ok(Outcome::events(vec![EventKind::StageInvited {
                    member: StageMember {
                        identity: identity.clone(),
                        name,
                    },
                    by,
                }]))
            }
            ClientMsg::StageAccept | ClientMsg::StageDecline => {
                if !self.invited(&actor.identity) {
                    return Err(Rejection::new(
                        ErrorCode::NotInvited,
                        "you have not been invited to the stage",
                    ));
                }
                let event = if matches!(msg, ClientMsg::StageAccept) {
                    EventKind::StageJoined {
                        member: StageMember {
                            identity: by,
                            name: actor.name.clone(),
                        },
                    }
                } else {
                    EventKind::StageDeclined { identity: by }
                };
                Ok(Outcome::events(vec![event]))
            }
            ClientMsg::StageLeave => {
                if !self.on_stage(&actor.identity) && !self.invited(&actor.identity) {
                    return Err(Rejection::new(
                        ErrorCode::InvalidState,
                        "you are not on the stage",
                    ));
                }
                Ok(Outcome::events(vec![EventKind::StageLeft {
                    identity: by.clone(),
                    reason: StageLeaveReason::Left,
                    by,
                }]))
            }
            ClientMsg::StageRemove { identity } => {
                require(actor.role, Permission::StageManage)?;
                self.target(actor, identity)?;
                if !self.on_stage(identity) && !self.invited(identity) {
                    return Err(Rejection::new(
                        ErrorCode::InvalidState,
                        format!("{identity:?} is not on the stage"),
                    ));
                }
                Ok(Outcome::events(vec![EventKind::StageLeft {
                    identity: identity.clone(),
                    reason: StageLeaveReason::Removed,
                    by,
                }]))
            }
            ClientMsg::StageLock { locked } => {
                require(actor.role, Permission::StageManage)?;
                if self.session.kind != SessionKind::Seminar {
                    return Err(Rejection::new(
                        ErrorCode::InvalidState,
                        "the publish lock is for seminars; in Q&A only the stage may speak",
                    ));
                }
                if self.stage_locked == *locked {
                    return Ok(Outcome::none());
                }
                Ok(Outcome::events(vec![EventKind::StageLocked {
                    locked: *locked,
                    by,
                }]))
            }
            ClientMsg::Kick { identity } => {
                require(actor.role, Permission::ParticipantKick)?;
                self.target(actor, identity)?;
                Ok(Outcome::events(self.leave(
                    identity,
                    LeaveReason::Kicked,
                    now,
                    &actor.identity,
                )))
            }
            ClientMsg::SessionEnd => {
                require(actor.role, Permission::SessionEnd)?;
                Ok(Outcome::events(self.end(&actor.identity, now)))
            }
        }
    }
}
