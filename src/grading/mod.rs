//! Participation for grading: the events programmes credit (docs/grading.md),
//! a durable outbox written in the same transaction as the room events that
//! cause them, and delivery of that outbox to webhook and xAPI sinks.
//!
//! [`Tally`] is a fold over the session timeline, like the room's own state:
//! every room event goes through it, live or reloaded, and yields the
//! participation events it causes with the same per-session numbers every
//! time. The room writes what the live fold yields; the report folds the
//! stored timeline again. This module reads room events; it never changes
//! room state.

pub mod deliver;
pub mod rubric;
pub mod webhook;
pub mod xapi;

use crate::protocol::{EventKind, Role, SessionInfo, StageLeaveReason, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the rooms need to know of grading: the sinks every outbox row goes
/// to, and how to wake their delivery workers after a commit.
#[derive(Debug, Default)]
pub struct Hub {
    pub sinks: std::sync::Arc<[String]>,
    wakes: Vec<std::sync::Arc<tokio::sync::Notify>>,
    /// Whether chat, question and reply text goes to sinks.
    pub include_text: bool,
}

impl Hub {
    pub fn new(
        sinks: Vec<String>,
        wakes: Vec<std::sync::Arc<tokio::sync::Notify>>,
        include_text: bool,
    ) -> Hub {
        Hub {
            sinks: sinks.into(),
            wakes,
            include_text,
        }
    }

    /// New outbox rows were committed.
    pub fn wake(&self) {
        for w in &self.wakes {
            w.notify_one();
        }
    }
}

/// One participation event, as delivered to sinks.
#[derive(Debug, Clone, Serialize)]
pub struct Participation {
    /// Stable and unique: the session id and the per-session number.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub session_id: String,
    /// Numbered per session from 1, without gaps, in the order of the room's timeline.
    pub seq: u64,
    /// The member concerned (for session events, who started or ended it).
    pub identity: String,
    pub at: Timestamp,
    /// The typed payload of `kind` (docs/grading.md).
    pub data: Value,
}

/// What one member did in a session, counted by the fold.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub name: String,
    pub role: Option<Role>,
    pub first_joined_at: Option<Timestamp>,
    /// Milliseconds present in closed intervals.
    pub present_ms: i64,
    /// Start of the open attendance interval.
    #[serde(skip)]
    pub open_since: Option<Timestamp>,
    pub intervals: u32,
    pub chat: u32,
    pub questions: u32,
    pub replies: u32,
    pub upvotes: u32,
    pub hands: u32,
    pub speaking_ms: i64,
    #[serde(skip)]
    pub speaking_since: Option<Timestamp>,
    pub stage_ms: i64,
    #[serde(skip)]
    pub stage_since: Option<(Timestamp, i64)>,
    pub checks_passed: u32,
    /// Present when a check started and did not confirm in time.
    pub checks_missed: u32,
    /// Not present when a check started (already reflected in attendance).
    pub checks_absent: u32,
    /// Milliseconds with the page hidden while present (a signal, never proof).
    pub hidden_ms: i64,
    #[serde(skip)]
    pub hidden_since: Option<Timestamp>,
    pub poll_answers: u32,
    pub poll_correct: u32,
    /// Polls answered that had a correct answer (the base of correctness).
    pub polls_gradable: u32,
    /// Seconds of recordings watched in replay.
    pub replay_seconds: u32,
}

impl Counts {
    /// Present time up to `now`, counting an open interval.
    pub fn present_ms_at(&self, now: Timestamp) -> i64 {
        self.present_ms
            + self
                .open_since
                .map_or(0, |s| (now.millis() - s.millis()).max(0))
    }

    /// Speaking time up to `now`, counting an open stretch.
    pub fn speaking_ms_at(&self, now: Timestamp) -> i64 {
        self.speaking_ms
            + self
                .speaking_since
                .map_or(0, |s| (now.millis() - s.millis()).max(0))
    }
}

/// A running presence check: who was asked, who was away, who confirmed.
type CheckTally = (Vec<String>, Vec<String>, HashSet<String>);

/// The participation fold of one session.
#[derive(Debug, Clone)]
pub struct Tally {
    session: String,
    /// Number of the last participation event.
    pub seq: u64,
    /// Per identity, in order of first arrival.
    pub members: BTreeMap<String, Counts>,
    order: Vec<String>,
    /// Hands raised now (to report each lowered by `hands_cleared`).
    raised: HashSet<String>,
    /// Chat text goes to sinks only when this is on (privacy).
    include_text: bool,
    /// Running presence checks.
    checks: HashMap<i64, CheckTally>,
    /// Correct answers of graded polls.
    poll_keys: HashMap<i64, Option<Vec<u32>>>,
    /// Quizzes (polls with correct answers) opened in the session: the base
    /// of poll points, so a skipped quiz counts as not correct.
    pub graded_polls: u32,
}

impl Tally {
    pub fn new(session: &str, include_text: bool) -> Tally {
        Tally {
            session: session.to_string(),
            seq: 0,
            members: BTreeMap::new(),
            order: Vec::new(),
            raised: HashSet::new(),
            include_text,
            checks: HashMap::new(),
            poll_keys: HashMap::new(),
            graded_polls: 0,
        }
    }

    /// Members in order of first arrival.
    pub fn in_order(&self) -> impl Iterator<Item = (&String, &Counts)> {
        self.order
            .iter()
            .filter_map(|id| self.members.get(id).map(|c| (id, c)))
    }

    fn member(&mut self, identity: &str) -> &mut Counts {
        if !self.members.contains_key(identity) {
            self.order.push(identity.to_string());
        }
        self.members.entry(identity.to_string()).or_default()
    }

    fn push(
        &mut self,
        out: &mut Vec<Participation>,
        kind: &'static str,
        identity: &str,
        at: Timestamp,
        data: Value,
    ) {
        self.seq += 1;
        out.push(Participation {
            id: format!("{}-{}", self.session, self.seq),
            kind,
            session_id: self.session.clone(),
            seq: self.seq,
            identity: identity.to_string(),
            at,
            data,
        });
    }

    fn show(&mut self, identity: &str, at: Timestamp) {
        if let Some(c) = self.members.get_mut(identity) {
            if let Some(s) = c.hidden_since.take() {
                c.hidden_ms += (at.millis() - s.millis()).max(0);
            }
        }
    }

    fn stop_speaking(&mut self, identity: &str, at: Timestamp) {
        if let Some(c) = self.members.get_mut(identity) {
            if let Some(s) = c.speaking_since.take() {
                c.speaking_ms += (at.millis() - s.millis()).max(0);
            }
        }
    }

    /// Folds one room event in and returns the participation events it
    /// causes. `session` is the session as it is after the event.
    pub fn apply(
        &mut self,
        at: Timestamp,
        kind: &EventKind,
        session: &SessionInfo,
    ) -> Vec<Participation> {
        let mut out = Vec::new();
        match kind {
            EventKind::SessionStarted => {
                self.push(&mut out, "session.started", "", at, json!({}));
            }
            EventKind::SessionEnded { by } => {
                let ids: Vec<String> = self.order.clone();
                for id in &ids {
                    let c = self.member(id);
                    if let Some(s) = c.open_since.take() {
                        c.present_ms += (at.millis() - s.millis()).max(0);
                    }
                }
                for id in &ids {
                    self.stop_speaking(id, at);
                    self.show(id, at);
                    let c = &self.members[id];
                    let late = match (session.scheduled_start, c.first_joined_at) {
                        (Some(s), Some(f)) => Some(((f.millis() - s.millis()) / 1000).max(0)),
                        _ => None,
                    };
                    let data = json!({
                        "name": c.name,
                        "role": c.role,
                        "present_seconds": c.present_ms / 1000,
                        "intervals": c.intervals,
                        "first_joined_at": c.first_joined_at,
                        "late_seconds": late,
                        "scheduled_seconds": scheduled_seconds(session),
                        "hidden_seconds": c.hidden_ms / 1000,
                        "presence_checks_passed": c.checks_passed,
                        "presence_checks_missed": c.checks_missed,
                    });
                    self.push(&mut out, "attendance.summary", id, at, data);
                }
                let graded = self.graded_polls;
                let scores: Vec<(String, Value)> = ids
                    .iter()
                    .filter(|id| self.members[*id].role == Some(Role::Participant))
                    .map(|id| {
                        let s = rubric::score(
                            &rubric::of(session),
                            &self.members[id],
                            session,
                            at,
                            graded,
                        );
                        (id.clone(), serde_json::to_value(s).unwrap_or(Value::Null))
                    })
                    .collect();
                for (id, s) in scores {
                    self.push(&mut out, "score.computed", &id, at, s);
                }
                self.push(&mut out, "session.ended", by, at, json!({ "by": by }));
            }
            EventKind::ParticipantJoined { participant: p } => {
                let c = self.member(&p.identity);
                c.name = p.name.clone();
                c.role = Some(p.role);
                c.first_joined_at.get_or_insert(p.joined_at);
                c.open_since = Some(p.joined_at);
                c.intervals += 1;
                let data = json!({ "name": p.name, "role": p.role });
                self.push(&mut out, "participant.joined", &p.identity, at, data);
            }
            EventKind::ParticipantLeft {
                identity,
                reason,
                left_at,
            } => {
                self.stop_speaking(identity, *left_at);
                self.show(identity, *left_at);
                self.raised.remove(identity);
                let c = self.member(identity);
                let interval = c
                    .open_since
                    .take()
                    .map_or(0, |s| (left_at.millis() - s.millis()).max(0));
                c.present_ms += interval;
                let data = json!({
                    "reason": reason,
                    "left_at": left_at,
                    "interval_seconds": interval / 1000,
                });
                self.push(&mut out, "participant.left", identity, at, data);
            }
            EventKind::ChatMessage { message: m } => {
                self.member(&m.identity).chat += 1;
                let mut data = json!({ "message_id": m.id, "length": m.text.chars().count() });
                if self.include_text {
                    data["text"] = json!(m.text);
                }
                self.push(&mut out, "chat.posted", &m.identity, at, data);
            }
            EventKind::QuestionAsked { question: q } => {
                self.member(&q.identity).questions += 1;
                let mut data = json!({ "question_id": q.id, "length": q.text.chars().count() });
                if self.include_text {
                    data["text"] = json!(q.text);
                }
                self.push(&mut out, "question.asked", &q.identity, at, data);
            }
            EventKind::QuestionReplied { question_id, reply } => {
                self.member(&reply.identity).replies += 1;
                let mut data = json!({
                    "question_id": question_id,
                    "reply_id": reply.id,
                    "length": reply.text.chars().count(),
                });
                if self.include_text {
                    data["text"] = json!(reply.text);
                }
                self.push(&mut out, "reply.posted", &reply.identity, at, data);
            }
            EventKind::QuestionUpvoted {
                question_id, by, ..
            } => {
                self.member(by).upvotes += 1;
                let data = json!({ "question_id": question_id });
                self.push(&mut out, "upvote.given", by, at, data);
            }
            EventKind::HandRaised { hand } => {
                self.member(&hand.identity).hands += 1;
                self.raised.insert(hand.identity.clone());
                self.push(&mut out, "hand.raised", &hand.identity, at, json!({}));
            }
            EventKind::HandLowered { identity, by } if self.raised.remove(identity) => {
                self.push(&mut out, "hand.lowered", identity, at, json!({ "by": by }));
            }
            EventKind::HandsCleared { by } => {
                let mut ids: Vec<String> = self.raised.drain().collect();
                ids.sort();
                for id in ids {
                    self.push(&mut out, "hand.lowered", &id, at, json!({ "by": by }));
                }
            }
            EventKind::StageJoined { member } => {
                // Joining the stage lowers the hand (docs/protocol.md §10).
                if self.raised.remove(&member.identity) {
                    let data = json!({ "by": "stage" });
                    self.push(&mut out, "hand.lowered", &member.identity, at, data);
                }
                let c = self.member(&member.identity);
                let spoken = c.speaking_ms_at(at);
                c.stage_since = Some((at, spoken));
                self.push(&mut out, "stage.joined", &member.identity, at, json!({}));
            }
            EventKind::StageInvited { member, .. } if self.raised.remove(&member.identity) => {
                // An invitation lowers the hand (docs/protocol.md §10).
                let data = json!({ "by": "stage" });
                self.push(&mut out, "hand.lowered", &member.identity, at, data);
            }
            EventKind::StageLeft {
                identity,
                reason,
                by,
            } => {
                if let Some((since, spoken_before)) = self
                    .members
                    .get_mut(identity)
                    .and_then(|c| c.stage_since.take())
                {
                    let c = self.member(identity);
                    let on_stage = (at.millis() - since.millis()).max(0);
                    c.stage_ms += on_stage;
                    let spoke = (c.speaking_ms_at(at) - spoken_before).max(0);
                    let data = json!({
                        "reason": match reason {
                            StageLeaveReason::Left => "left",
                            StageLeaveReason::Removed => "removed",
                            StageLeaveReason::Disconnected => "disconnected",
                        },
                        "by": by,
                        "stage_seconds": on_stage / 1000,
                        "speaking_seconds": spoke / 1000,
                    });
                    self.push(&mut out, "stage.left", identity, at, data);
                }
            }
            EventKind::PresenceCheckStarted { check } => {
                let (mut asked, mut away) = (Vec::new(), Vec::new());
                for (id, c) in self.in_order() {
                    if c.role == Some(Role::Participant) {
                        if c.open_since.is_some() {
                            asked.push(id.clone());
                        } else {
                            away.push(id.clone());
                        }
                    }
                }
                self.checks.insert(check.id, (asked, away, HashSet::new()));
            }
            EventKind::PresenceConfirmed {
                check_id,
                identity,
                response_ms,
            } => {
                if let Some((_, _, done)) = self.checks.get_mut(check_id) {
                    if done.insert(identity.clone()) {
                        self.member(identity).checks_passed += 1;
                        let data = json!({ "check_id": check_id, "response_ms": response_ms });
                        self.push(&mut out, "presence_check.passed", identity, at, data);
                    }
                }
            }
            EventKind::PresenceCheckEnded { check_id, .. } => {
                if let Some((asked, away, done)) = self.checks.remove(check_id) {
                    for id in asked.iter().filter(|id| !done.contains(*id)) {
                        self.member(id).checks_missed += 1;
                        let data = json!({ "check_id": check_id, "reason": "no_response" });
                        self.push(&mut out, "presence_check.missed", id, at, data);
                    }
                    for id in &away {
                        self.member(id).checks_absent += 1;
                        let data = json!({ "check_id": check_id, "reason": "absent" });
                        self.push(&mut out, "presence_check.missed", id, at, data);
                    }
                }
            }
            EventKind::VisibilityChanged { identity, hidden } => {
                if *hidden {
                    self.member(identity).hidden_since.get_or_insert(at);
                } else {
                    self.show(identity, at);
                }
            }
            EventKind::PollCreated { poll } => {
                self.poll_keys.insert(poll.id, poll.correct.clone());
            }
            EventKind::PollOpened { poll } if poll.graded => {
                self.graded_polls += 1;
            }
            EventKind::PollAnswered {
                poll_id,
                identity,
                choices,
            } => {
                let key = self.poll_keys.get(poll_id).cloned().flatten();
                let correct = key.as_ref().map(|k| {
                    let mut c = choices.clone();
                    c.sort_unstable();
                    &c == k
                });
                let c = self.member(identity);
                c.poll_answers += 1;
                if let Some(ok) = correct {
                    c.polls_gradable += 1;
                    c.poll_correct += ok as u32;
                }
                let data = json!({ "poll_id": poll_id, "choices": choices, "correct": correct });
                self.push(&mut out, "poll.answered", identity, at, data);
            }
            EventKind::ReplayWatched {
                recording_id,
                identity,
                name,
                seconds,
                ranges,
            } => {
                let c = self.member(identity);
                if c.name.is_empty() {
                    c.name = name.clone();
                }
                c.replay_seconds += seconds;
                let data =
                    json!({ "recording_id": recording_id, "seconds": seconds, "ranges": ranges });
                self.push(&mut out, "replay.watched", identity, at, data);
            }
            EventKind::Speaking { identity, speaking } => {
                if *speaking {
                    let c = self.member(identity);
                    c.speaking_since.get_or_insert(at);
                } else {
                    self.stop_speaking(identity, at);
                }
            }
            _ => {}
        }
        out
    }

    /// Speaking and stage time for reports, with open stretches counted to `now`.
    pub fn snapshot(&self, now: Timestamp) -> HashMap<String, Counts> {
        self.members
            .iter()
            .map(|(id, c)| {
                let mut c = c.clone();
                c.present_ms = c.present_ms_at(now);
                c.open_since = None;
                c.speaking_ms = c.speaking_ms_at(now);
                c.speaking_since = None;
                if let Some(h) = c.hidden_since.take() {
                    c.hidden_ms += (now.millis() - h.millis()).max(0);
                }
                if let Some((s, _)) = c.stage_since.take() {
                    c.stage_ms += (now.millis() - s.millis()).max(0);
                }
                (id.clone(), c)
            })
            .collect()
    }
}

/// The planned length, when the session has both scheduled times.
pub fn scheduled_seconds(session: &SessionInfo) -> Option<i64> {
    match (session.scheduled_start, session.scheduled_end) {
        (Some(s), Some(e)) => Some((e.millis() - s.millis()) / 1000),
        _ => None,
    }
}
