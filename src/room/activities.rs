//! Presence checks ("still here?"), page visibility and polls: their state
//! (folded from the timeline like the rest of the room) and the rules for
//! the requests that drive them. Pure: no I/O, no clocks.

use super::logic::{check_text, require, Outcome, Rejection};
use super::state::ClassState;
use crate::protocol::MediaHealth;
use crate::protocol::{
    ClientMsg, ErrorCode, EventKind, Permission, Poll, PollChoice, PollStatus, PresenceCheck, Role,
    Timestamp,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Default and allowed confirmation windows, in seconds.
pub const CHECK_WINDOW_DEFAULT: u32 = 60;
const CHECK_WINDOW: (u32, u32) = (10, 600);

#[derive(Debug, Clone, Default)]
pub struct Activities {
    /// The running presence check, who it asks, and who confirmed.
    pub check: Option<RunningCheck>,
    pub last_check_id: i64,
    pub polls: BTreeMap<i64, PollState>,
    pub last_poll_id: i64,
    /// Participants whose page is hidden now.
    pub hidden: HashSet<String>,
    /// Members whose last media report was `failed`.
    pub media_failed: HashSet<String>,
    /// The recording in progress: its id, and whether it is paused.
    pub recording: Option<(String, bool)>,
    /// Recordings made so far (a scheduled recording starts only once).
    pub recordings: u32,
}

#[derive(Debug, Clone)]
pub struct RunningCheck {
    pub check: PresenceCheck,
    /// Participants present when it started.
    pub targets: HashSet<String>,
    pub confirmed: HashSet<String>,
}

#[derive(Debug, Clone)]
pub struct PollState {
    /// With the correct answers.
    pub poll: Poll,
    pub answers: HashMap<String, Vec<u32>>,
}

impl PollState {
    /// The poll as `viewer` may see it: correct answers for staff, or once closed.
    pub fn view(&self, staff: bool) -> Poll {
        let mut p = self.poll.clone();
        if !staff && p.status != PollStatus::Closed {
            p.correct = None;
        }
        p
    }

    fn counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.poll.options.len()];
        for choices in self.answers.values() {
            for i in choices {
                if let Some(n) = c.get_mut(*i as usize) {
                    *n += 1;
                }
            }
        }
        c
    }
}

fn reject(code: ErrorCode, msg: &str) -> Rejection {
    Rejection::new(code, msg)
}

impl Activities {
    /// Folds one event in. `members` tells who is present (before the event).
    pub fn fold(&mut self, kind: &EventKind, present_participants: impl Fn() -> HashSet<String>) {
        match kind {
            EventKind::PresenceCheckStarted { check } => {
                self.last_check_id = self.last_check_id.max(check.id);
                self.check = Some(RunningCheck {
                    check: check.clone(),
                    targets: present_participants(),
                    confirmed: HashSet::new(),
                });
            }
            EventKind::PresenceConfirmed {
                check_id, identity, ..
            } => {
                if let Some(c) = self.check.as_mut().filter(|c| c.check.id == *check_id) {
                    c.confirmed.insert(identity.clone());
                }
            }
            EventKind::PresenceCheckEnded { check_id, .. }
                if self.check.as_ref().is_some_and(|c| c.check.id == *check_id) =>
            {
                self.check = None;
            }
            EventKind::VisibilityChanged { identity, hidden } => {
                if *hidden {
                    self.hidden.insert(identity.clone());
                } else {
                    self.hidden.remove(identity);
                }
            }
            EventKind::MediaReported {
                identity, state, ..
            } => {
                if *state == MediaHealth::Failed {
                    self.media_failed.insert(identity.clone());
                } else {
                    self.media_failed.remove(identity);
                }
            }
            EventKind::ParticipantLeft { identity, .. } => {
                self.hidden.remove(identity);
                self.media_failed.remove(identity);
            }
            EventKind::PollCreated { poll } => {
                self.last_poll_id = self.last_poll_id.max(poll.id);
                self.polls.insert(
                    poll.id,
                    PollState {
                        poll: poll.clone(),
                        answers: HashMap::new(),
                    },
                );
            }
            EventKind::PollOpened { poll } => {
                if let Some(p) = self.polls.get_mut(&poll.id) {
                    p.poll.status = PollStatus::Open;
                    p.poll.opened_at = poll.opened_at;
                    p.poll.closes_at = poll.closes_at;
                }
            }
            EventKind::PollAnswered {
                poll_id,
                identity,
                choices,
            } => {
                if let Some(p) = self.polls.get_mut(poll_id) {
                    p.answers.insert(identity.clone(), choices.clone());
                }
            }
            EventKind::RecordingStarted { recording_id, .. } => {
                self.recording = Some((recording_id.clone(), false));
                self.recordings += 1;
            }
            EventKind::RecordingPaused { .. } => {
                if let Some(r) = self.recording.as_mut() {
                    r.1 = true;
                }
            }
            EventKind::RecordingResumed { .. } => {
                if let Some(r) = self.recording.as_mut() {
                    r.1 = false;
                }
            }
            EventKind::RecordingStopped { .. } => {
                self.recording = None;
            }
            EventKind::PollClosed { poll, .. } => {
                if let Some(p) = self.polls.get_mut(&poll.id) {
                    p.poll.status = PollStatus::Closed;
                    p.poll.counts = poll.counts.clone();
                    p.poll.answers = poll.answers;
                }
            }
            _ => {}
        }
    }

    /// Polls as a member sees them in the welcome.
    pub fn polls_for(&self, staff: bool) -> Vec<Poll> {
        self.polls
            .values()
            .filter(|p| staff || p.poll.status != PollStatus::Draft)
            .map(|p| p.view(staff))
            .collect()
    }

    pub fn answers_of(&self, identity: &str) -> Vec<PollChoice> {
        self.polls
            .values()
            .filter_map(|p| {
                p.answers.get(identity).map(|c| PollChoice {
                    poll_id: p.poll.id,
                    choices: c.clone(),
                })
            })
            .collect()
    }

    /// What time does by itself: a check's window closes, a timed poll ends.
    pub fn due(&self, now: Timestamp) -> Vec<EventKind> {
        let mut out = Vec::new();
        if let Some(c) = &self.check {
            if c.check.deadline.millis() <= now.millis() {
                out.push(self.end_check(c));
            }
        }
        for p in self.polls.values() {
            let timed_out = p.poll.status == PollStatus::Open
                && p.poll.closes_at.is_some_and(|t| t.millis() <= now.millis());
            if timed_out {
                out.push(self.close_poll(p, "timer"));
            }
        }
        out
    }

    fn end_check(&self, c: &RunningCheck) -> EventKind {
        let passed = c.targets.intersection(&c.confirmed).count() as u32;
        EventKind::PresenceCheckEnded {
            check_id: c.check.id,
            passed,
            missed: c.targets.len() as u32 - passed,
        }
    }

    fn close_poll(&self, p: &PollState, by: &str) -> EventKind {
        let mut poll = p.poll.clone();
        poll.status = PollStatus::Closed;
        poll.counts = Some(p.counts());
        poll.answers = Some(p.answers.len() as u32);
        EventKind::PollClosed {
            poll,
            by: by.to_string(),
        }
    }

    /// A new recording, unless one is in progress.
    pub fn start_recording(&self, by: &str) -> Option<EventKind> {
        if self.recording.is_some() {
            return None;
        }
        let id = format!("R{}{}", self.recordings + 1, &crate::ids::new_id()[..6]);
        Some(EventKind::RecordingStarted {
            recording_id: id,
            by: by.to_string(),
        })
    }

    /// Stops the recording in progress, if any.
    pub fn stop_recording(&self, by: &str, reason: &str) -> Option<EventKind> {
        self.recording
            .as_ref()
            .map(|(id, _)| EventKind::RecordingStopped {
                recording_id: id.clone(),
                by: by.to_string(),
                reason: reason.to_string(),
            })
    }

    /// Everything still running, ended by `by` (the session is ending).
    pub fn close_all(&self, by: &str) -> Vec<EventKind> {
        let mut out: Vec<EventKind> = self
            .stop_recording(by, "session_ended")
            .into_iter()
            .collect();
        if let Some(c) = &self.check {
            out.push(self.end_check(c));
        }
        for p in self.polls.values() {
            if p.poll.status == PollStatus::Open {
                out.push(self.close_poll(p, by));
            }
        }
        out
    }

    /// A check started by the schedule (`by` = "schedule"), unless one runs.
    pub fn start_check(&self, by: &str, window_secs: u32, now: Timestamp) -> Option<EventKind> {
        if self.check.is_some() {
            return None;
        }
        Some(EventKind::PresenceCheckStarted {
            check: PresenceCheck {
                id: self.last_check_id + 1,
                started_at: now,
                deadline: Timestamp(now.millis() + window_secs as i64 * 1000),
                by: by.to_string(),
            },
        })
    }
}

/// Checks a set of chosen option indexes.
fn check_choices(choices: &[u32], options: usize, multiple: bool) -> Result<Vec<u32>, Rejection> {
    let mut c = choices.to_vec();
    c.sort_unstable();
    c.dedup();
    let bad = c.is_empty()
        || c.len() != choices.len()
        || c.iter().any(|i| *i as usize >= options)
        || (!multiple && c.len() != 1);
    if bad {
        let rule = if multiple {
            "one or more"
        } else {
            "exactly one"
        };
        return Err(reject(
            ErrorCode::InvalidMessage,
            &format!("choose {rule} of the {options} options, each once (0-based indexes)"),
        ));
    }
    Ok(c)
}

/// Handles the activity requests; `None` for any other message.
pub fn handle(
    state: &ClassState,
    actor: &super::logic::Actor,
    msg: &ClientMsg,
    now: Timestamp,
) -> Option<Result<Outcome, Rejection>> {
    let a = &state.activities;
    let by = actor.identity.clone();
    let result = match msg {
        ClientMsg::PresenceCheckStart { window_secs } => (|| {
            require(actor.role, Permission::ActivityManage)?;
            let w = window_secs.unwrap_or(CHECK_WINDOW_DEFAULT);
            if !(CHECK_WINDOW.0..=CHECK_WINDOW.1).contains(&w) {
                return Err(reject(
                    ErrorCode::InvalidMessage,
                    "window_secs must be 10 to 600",
                ));
            }
            let e = a.start_check(&by, w, now).ok_or_else(|| {
                reject(
                    ErrorCode::InvalidState,
                    "a presence check is already running",
                )
            })?;
            Ok(Outcome {
                events: vec![e],
                result: Some(json!({ "check_id": a.last_check_id + 1 })),
            })
        })(),
        ClientMsg::PresenceConfirm { check_id } => (|| {
            require(actor.role, Permission::ActivityRespond)?;
            let c = a
                .check
                .as_ref()
                .filter(|c| c.check.id == *check_id)
                .ok_or_else(|| reject(ErrorCode::InvalidState, "this presence check is closed"))?;
            if c.check.deadline.millis() <= now.millis() {
                return Err(reject(
                    ErrorCode::InvalidState,
                    "this presence check is closed",
                ));
            }
            if !c.targets.contains(&actor.identity) {
                return Err(reject(
                    ErrorCode::InvalidState,
                    "you joined after this presence check started",
                ));
            }
            let response_ms = now.millis() - c.check.started_at.millis();
            if c.confirmed.contains(&actor.identity) {
                return Ok(Outcome {
                    events: vec![],
                    result: Some(json!({ "response_ms": null })),
                });
            }
            Ok(Outcome {
                events: vec![EventKind::PresenceConfirmed {
                    check_id: *check_id,
                    identity: by.clone(),
                    response_ms,
                }],
                result: Some(json!({ "response_ms": response_ms })),
            })
        })(),
        ClientMsg::Visibility { hidden } => {
            // Only participants are graded; for others it changes nothing.
            let changed =
                actor.role == Role::Participant && a.hidden.contains(&actor.identity) != *hidden;
            Ok(Outcome {
                events: if changed {
                    vec![EventKind::VisibilityChanged {
                        identity: by.clone(),
                        hidden: *hidden,
                    }]
                } else {
                    vec![]
                },
                result: None,
            })
        }
        ClientMsg::MediaReport { state, reason } => {
            // Any role: observers receive media too. Only a change is an
            // event, so a client that repeats itself costs nothing.
            let failed = *state == MediaHealth::Failed;
            let changed = a.media_failed.contains(&actor.identity) != failed;
            Ok(Outcome {
                events: if changed {
                    vec![EventKind::MediaReported {
                        identity: by.clone(),
                        state: *state,
                        reason: if failed { *reason } else { None },
                    }]
                } else {
                    vec![]
                },
                result: None,
            })
        }
        ClientMsg::PollCreate {
            question,
            options,
            multiple,
            correct,
            time_limit_secs,
        } => (|| {
            require(actor.role, Permission::ActivityManage)?;
            let question = check_text(question, 500, "the question")?;
            if !(2..=10).contains(&options.len()) {
                return Err(reject(
                    ErrorCode::InvalidMessage,
                    "a poll has 2 to 10 options",
                ));
            }
            let options = options
                .iter()
                .map(|o| check_text(o, 200, "an option"))
                .collect::<Result<Vec<_>, _>>()?;
            let correct = match correct {
                Some(c) => Some(check_choices(c, options.len(), *multiple)?),
                None => None,
            };
            if let Some(t) = time_limit_secs {
                if !(5..=3600).contains(t) {
                    return Err(reject(
                        ErrorCode::InvalidMessage,
                        "time_limit_secs must be 5 to 3600",
                    ));
                }
            }
            let id = a.last_poll_id + 1;
            Ok(Outcome {
                events: vec![EventKind::PollCreated {
                    poll: Poll {
                        id,
                        question,
                        options,
                        multiple: *multiple,
                        time_limit_secs: *time_limit_secs,
                        status: PollStatus::Draft,
                        graded: correct.is_some(),
                        correct,
                        opened_at: None,
                        closes_at: None,
                        counts: None,
                        answers: None,
                    },
                }],
                result: Some(json!({ "poll_id": id })),
            })
        })(),
        ClientMsg::PollOpen { poll_id } => (|| {
            require(actor.role, Permission::ActivityManage)?;
            let p = a
                .polls
                .get(poll_id)
                .ok_or_else(|| reject(ErrorCode::NotFound, "no such poll"))?;
            if p.poll.status != PollStatus::Draft {
                return Err(reject(
                    ErrorCode::InvalidState,
                    "this poll was opened already",
                ));
            }
            let mut poll = p.poll.clone();
            poll.status = PollStatus::Open;
            poll.correct = None;
            poll.opened_at = Some(now);
            poll.closes_at = poll
                .time_limit_secs
                .map(|t| Timestamp(now.millis() + t as i64 * 1000));
            Ok(Outcome {
                events: vec![EventKind::PollOpened { poll }],
                result: None,
            })
        })(),
        ClientMsg::PollAnswer { poll_id, choices } => (|| {
            require(actor.role, Permission::ActivityRespond)?;
            let p = a
                .polls
                .get(poll_id)
                .filter(|p| p.poll.status != PollStatus::Draft)
                .ok_or_else(|| reject(ErrorCode::NotFound, "no such poll"))?;
            let late = p.poll.closes_at.is_some_and(|t| t.millis() <= now.millis());
            if p.poll.status != PollStatus::Open || late {
                return Err(reject(ErrorCode::InvalidState, "this poll is closed"));
            }
            if p.answers.contains_key(&actor.identity) {
                return Err(reject(
                    ErrorCode::AlreadyVoted,
                    "you answered this poll already",
                ));
            }
            let choices = check_choices(choices, p.poll.options.len(), p.poll.multiple)?;
            Ok(Outcome {
                events: vec![EventKind::PollAnswered {
                    poll_id: *poll_id,
                    identity: by.clone(),
                    choices,
                }],
                result: None,
            })
        })(),
        ClientMsg::PollClose { poll_id } => (|| {
            require(actor.role, Permission::ActivityManage)?;
            let p = a
                .polls
                .get(poll_id)
                .ok_or_else(|| reject(ErrorCode::NotFound, "no such poll"))?;
            match p.poll.status {
                PollStatus::Open => Ok(Outcome {
                    events: vec![a.close_poll(p, &by)],
                    result: None,
                }),
                PollStatus::Closed => Ok(Outcome::default()),
                PollStatus::Draft => Err(reject(
                    ErrorCode::InvalidState,
                    "this poll was never opened",
                )),
            }
        })(),
        ClientMsg::RecordStart => (|| {
            require(actor.role, Permission::RecordingManage)?;
            let e = a.start_recording(&by).ok_or_else(|| {
                reject(ErrorCode::InvalidState, "the session is recording already")
            })?;
            let id = match &e {
                EventKind::RecordingStarted { recording_id, .. } => recording_id.clone(),
                _ => unreachable!("start_recording makes a RecordingStarted"),
            };
            Ok(Outcome {
                events: vec![e],
                result: Some(json!({ "recording_id": id })),
            })
        })(),
        ClientMsg::RecordPause | ClientMsg::RecordResume => (|| {
            require(actor.role, Permission::RecordingManage)?;
            let pause = matches!(msg, ClientMsg::RecordPause);
            let (id, paused) = a
                .recording
                .clone()
                .ok_or_else(|| reject(ErrorCode::InvalidState, "the session is not recording"))?;
            if paused == pause {
                return Ok(Outcome::default());
            }
            let e = if pause {
                EventKind::RecordingPaused {
                    recording_id: id,
                    by: by.clone(),
                }
            } else {
                EventKind::RecordingResumed {
                    recording_id: id,
                    by: by.clone(),
                }
            };
            Ok(Outcome {
                events: vec![e],
                result: None,
            })
        })(),
        ClientMsg::RecordStop => (|| {
            require(actor.role, Permission::RecordingManage)?;
            let e = a
                .stop_recording(&by, "stopped")
                .ok_or_else(|| reject(ErrorCode::InvalidState, "the session is not recording"))?;
            Ok(Outcome {
                events: vec![e],
                result: None,
            })
        })(),
        _ => return None,
    };
    Some(result)
}
