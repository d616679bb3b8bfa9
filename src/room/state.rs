//! Room state, rebuilt by folding the session timeline.
//!
//! `ClassState::apply` is the only place state changes: live events and
//! events loaded from storage go through the same fold, so a restarted room
//! is exactly the room clients saw. Some transitions are implied (documented
//! in `docs/protocol.md`): `participant_left` lowers the member's hand,
//! `stage_invited` lowers the invitee's hand, and a question leaving `open`
//! is unpinned.

use super::activities::Activities;
use crate::grading::{Participation, Tally};
use crate::protocol::{
    ChatMessage, EventKind, Hand, LeaveReason, Question, QuestionStatus, Role, SessionInfo,
    SessionKind, SessionStatus, StageInfo, StageMember, Timestamp, TrackInfo,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Someone who has joined the session at least once.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub role: Role,
    /// Has an open attendance interval (connected, or within the grace period).
    pub present: bool,
    /// Start of the current (or last) attendance interval.
    pub joined_at: Timestamp,
    pub chat_muted: bool,
    /// Kicked members may not rejoin this session.
    pub kicked: bool,
}

#[derive(Debug, Clone)]
pub struct ClassState {
    pub session: SessionInfo,
    /// Sequence number of the last applied event.
    pub seq: u64,
    pub members: HashMap<String, Member>,
    /// Raised hands, first raised first.
    pub hands: Vec<Hand>,
    pub stage_members: Vec<StageMember>,
    pub stage_invited: Vec<StageMember>,
    pub stage_locked: bool,
    pub questions: BTreeMap<i64, Question>,
    /// (question id, identity) for every upvote given.
    pub votes: HashSet<(i64, String)>,
    pub pinned: Option<i64>,
    /// The most recent undeleted chat messages (for the welcome snapshot).
    pub chat: VecDeque<ChatMessage>,
    /// How many recent messages to keep in `chat`.
    chat_keep: usize,
    /// Ids of all chat messages not deleted (so old ones can still be deleted).
    pub chat_ids: BTreeSet<i64>,
    pub chat_locked: bool,
    /// Media tracks being published.
    pub tracks: Vec<TrackInfo>,
    /// Members speaking now.
    pub speaking: Vec<String>,
    pub last_chat_id: i64,
    pub last_reply_id: i64,
    /// The participation fold (grading), fed every event like the rest.
    pub tally: Tally,
    /// Presence checks, visibility and polls.
    pub activities: Activities,
}

impl ClassState {
    pub fn new(session: SessionInfo, chat_keep: usize, include_text: bool) -> ClassState {
        ClassState {
            tally: Tally::new(&session.id, include_text),
            activities: Activities::default(),
            session,
            seq: 0,
            members: HashMap::new(),
            hands: Vec::new(),
            stage_members: Vec::new(),
            stage_invited: Vec::new(),
            stage_locked: false,
            questions: BTreeMap::new(),
            votes: HashSet::new(),
            pinned: None,
            chat: VecDeque::new(),
            chat_keep,
            chat_ids: BTreeSet::new(),
            chat_locked: false,
            tracks: Vec::new(),
            speaking: Vec::new(),
            last_chat_id: 0,
            last_reply_id: 0,
        }
    }

    /// Folds one event into the state and returns the participation events
    /// it causes (the same ones on every fold). Never fails: events were
    /// validated before they were stored.
    pub fn apply(&mut self, seq: u64, at: Timestamp, kind: &EventKind) -> Vec<Participation> {
        self.fold(seq, at, kind);
        self.tally.apply(at, kind, &self.session)
    }

    fn fold(&mut self, seq: u64, at: Timestamp, kind: &EventKind) {
        self.seq = seq;
        let members = &self.members;
        self.activities.fold(kind, || {
            members
                .iter()
                .filter(|(_, m)| m.present && m.role == Role::Participant)
                .map(|(id, _)| id.clone())
                .collect()
        });
        match kind {
            EventKind::SessionStarted => {
                self.session.status = SessionStatus::Live;
                self.session.started_at = Some(at);
            }
            EventKind::SessionUpdated { session } => {
                self.session.title = session.title.clone();
                self.session.scheduled_start = session.scheduled_start;
                self.session.scheduled_end = session.scheduled_end;
                self.session.settings = session.settings.clone();
            }
            EventKind::SessionEnded { .. } => {
                self.session.status = SessionStatus::Ended;
                self.session.ended_at = Some(at);
            }
            EventKind::ParticipantJoined { participant: p } => {
                let m = self.members.entry(p.identity.clone()).or_insert(Member {
                    name: p.name.clone(),
                    role: p.role,
                    present: false,
                    joined_at: p.joined_at,
                    chat_muted: false,
                    kicked: false,
                });
                m.name = p.name.clone();
                m.role = p.role;
                m.present = true;
                m.joined_at = p.joined_at;
            }
            EventKind::ParticipantLeft {
                identity, reason, ..
            } => {
                if let Some(m) = self.members.get_mut(identity) {
                    m.present = false;
                    if *reason == LeaveReason::Kicked {
                        m.kicked = true;
                    }
                }
                self.hands.retain(|h| &h.identity != identity);
                self.tracks.retain(|t| &t.owner != identity);
                self.speaking.retain(|s| s != identity);
                self.stage_members.retain(|s| &s.identity != identity);
                self.stage_invited.retain(|s| &s.identity != identity);
            }
            EventKind::ChatMessage { message } => {
                self.last_chat_id = self.last_chat_id.max(message.id);
                self.chat_ids.insert(message.id);
                self.chat.push_back(message.clone());
                while self.chat.len() > self.chat_keep {
                    self.chat.pop_front();
                }
            }
            EventKind::ChatDeleted { message_id, .. } => {
                self.chat_ids.remove(message_id);
                self.chat.retain(|m| m.id != *message_id);
            }
            EventKind::ChatMuted {
                identity, muted, ..
            } => {
                if let Some(m) = self.members.get_mut(identity) {
                    m.chat_muted = *muted;
                }
            }
            EventKind::ChatLocked { locked, .. } => self.chat_locked = *locked,
            EventKind::HandRaised { hand } => {
                if !self.hand_raised(&hand.identity) {
                    self.hands.push(hand.clone());
                }
            }
            EventKind::HandLowered { identity, .. } => {
                self.hands.retain(|h| &h.identity != identity)
            }
            EventKind::HandsCleared { .. } => self.hands.clear(),
            EventKind::QuestionAsked { question } => {
                self.questions.insert(question.id, question.clone());
            }
            EventKind::QuestionUpvoted {
                question_id,
                upvotes,
                by,
            } => {
                if let Some(q) = self.questions.get_mut(question_id) {
                    q.upvotes = *upvotes;
                }
                self.votes.insert((*question_id, by.clone()));
            }
            EventKind::QuestionReplied { question_id, reply } => {
                self.last_reply_id = self.last_reply_id.max(reply.id);
                if let Some(q) = self.questions.get_mut(question_id) {
                    q.replies.push(reply.clone());
                }
            }
            EventKind::QuestionStatusChanged {
                question_id,
                status,
                ..
            } => {
                if let Some(q) = self.questions.get_mut(question_id) {
                    q.status = *status;
                }
                if *status != QuestionStatus::Open && self.pinned == Some(*question_id) {
                    self.pinned = None;
                }
            }
            EventKind::QuestionPinned { question_id, .. } => self.pinned = *question_id,
            EventKind::StageInvited { member, .. } => {
                self.hands.retain(|h| h.identity != member.identity);
                if !self
                    .stage_invited
                    .iter()
                    .any(|s| s.identity == member.identity)
                {
                    self.stage_invited.push(member.clone());
                }
            }
            EventKind::StageDeclined { identity } => {
                self.stage_invited.retain(|s| &s.identity != identity)
            }
            EventKind::StageJoined { member } => {
                self.hands.retain(|h| h.identity != member.identity);
                self.stage_invited.retain(|s| s.identity != member.identity);
                if !self.on_stage(&member.identity) {
                    self.stage_members.push(member.clone());
                }
            }
            EventKind::StageLeft { identity, .. } => {
                self.stage_invited.retain(|s| &s.identity != identity);
                self.stage_members.retain(|s| &s.identity != identity);
            }
            EventKind::StageLocked { locked, .. } => self.stage_locked = *locked,
            EventKind::TrackPublished { track } => {
                self.tracks.retain(|t| t.id != track.id);
                self.tracks.push(track.clone());
            }
            EventKind::TrackUnpublished { track_id, .. } => {
                self.tracks.retain(|t| &t.id != track_id)
            }
            EventKind::Speaking { identity, speaking } => {
                self.speaking.retain(|s| s != identity);
                if *speaking {
                    self.speaking.push(identity.clone());
                }
            }
            // Folded by `activities` above.
            EventKind::PresenceCheckStarted { .. }
            | EventKind::PresenceConfirmed { .. }
            | EventKind::PresenceCheckEnded { .. }
            | EventKind::VisibilityChanged { .. }
            | EventKind::MediaReported { .. }
            | EventKind::PollCreated { .. }
            | EventKind::PollOpened { .. }
            | EventKind::PollAnswered { .. }
            | EventKind::PollClosed { .. }
            | EventKind::RecordingStarted { .. }
            | EventKind::RecordingPaused { .. }
            | EventKind::RecordingResumed { .. }
            | EventKind::RecordingStopped { .. }
            | EventKind::ReplayWatched { .. } => {}
            // The actor's to track: connections are not stored state.
            EventKind::ParticipantConnection { .. } => {}
        }
    }

    pub fn hand_raised(&self, identity: &str) -> bool {
        self.hands.iter().any(|h| h.identity == identity)
    }

    pub fn on_stage(&self, identity: &str) -> bool {
        self.stage_members.iter().any(|s| s.identity == identity)
    }

    pub fn invited(&self, identity: &str) -> bool {
        self.stage_invited.iter().any(|s| s.identity == identity)
    }

    /// Whether `identity` in `role` may publish audio and video right now.
    pub fn can_publish(&self, identity: &str, role: Role) -> bool {
        match role {
            Role::Host | Role::Moderator => true,
            Role::Observer => false,
            Role::Participant => match self.session.kind {
                SessionKind::Qa => self.on_stage(identity),
                SessionKind::Seminar => !self.stage_locked || self.on_stage(identity),
            },
        }
    }

    pub fn chat_muted(&self, identity: &str) -> bool {
        self.members.get(identity).is_some_and(|m| m.chat_muted)
    }

    /// Identities with an open attendance interval, sorted (a stable order for
    /// the leave events of a shutdown or a session end).
    pub fn present_identities(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.present)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Members with an open attendance interval who are counted (not observers).
    pub fn present_count(&self) -> u32 {
        self.members
            .values()
            .filter(|m| m.present && m.role.is_listed())
            .count() as u32
    }

    pub fn stage_info(&self) -> StageInfo {
        StageInfo {
            members: self.stage_members.clone(),
            invited: self.stage_invited.clone(),
            locked: self.stage_locked,
        }
    }

    /// Questions shown to members: open and answered, not dismissed.
    pub fn visible_questions(&self) -> Vec<Question> {
        self.questions
            .values()
            .filter(|q| q.status != QuestionStatus::Dismissed)
            .cloned()
            .collect()
    }
}
