//! The room actor: the single owner of one session's live state.
//!
//! Commands arrive on a channel and are handled in batches: every command in
//! a batch is applied to the state, the resulting events are written to the
//! store in one transaction, and only when that succeeds are frames sent.
//! Clients therefore never see an order or an event the database does not
//! have, and a burst of chat costs one commit, not one per message.

use super::budget::Bucket;
use super::conn::{ConnHandle, Flusher, FrameSink, SendFail};
use super::logic::{Actor, Rejection};
use super::registry::{SessionPatch, Shared};
use super::state::ClassState;
use crate::auth::{Claims, TokenType};
use crate::media::{MediaJob, MediaNote, MediaRoom};
use crate::protocol::{
    close, encode, ClientMsg, ErrorCode, Event, EventKind, LeaveReason, ParticipantInfo,
    Permission, ReqId, ServerMsg, SessionInfo, Timestamp, Welcome, You,
};
use crate::store::{StoreError, Write};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tungstenite::Utf8Bytes;

/// How many commands one batch takes at most.
const MAX_BATCH: usize = 128;
/// Writes stored by one transaction at most (see [`store_ranges`]): about
/// 200 leaves, some 10 ms of the server's single storage writer.
const STORE_CHUNK: usize = 500;
/// How often presence (`last_seen`) is written for connected members.
const SEEN_EVERY: Duration = Duration::from_secs(10);
/// An empty room stops after this long; it is reloaded on the next join.
const IDLE_EXIT: Duration = Duration::from_secs(30);
/// Resume tokens outlive join tokens so a long session can always reconnect.
const RESUME_TOKEN_SECS: i64 = 24 * 3600;

/// Why a join did not succeed.
#[derive(Debug)]
pub enum JoinError {
    Rejected(Rejection),
    /// The room stopped while the join was queued; look it up again.
    Retry,
}

pub enum RoomCmd {
    Join {
        conn: ConnHandle,
        actor: Actor,
        /// The last `seq` the client saw, when resuming.
        last_seq: Option<u64>,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Request {
        conn_id: u64,
        req_id: Option<ReqId>,
        msg: ClientMsg,
    },
    Disconnected {
        conn_id: u64,
    },
    End {
        by: String,
        reply: oneshot::Sender<Result<SessionInfo, Rejection>>,
    },
    Update {
        patch: SessionPatch,
        reply: oneshot::Sender<Result<SessionInfo, Rejection>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// A replay viewer's newly watched stretches (also after the session ended).
    ReplayWatched {
        recording_id: String,
        identity: String,
        name: String,
        seconds: u32,
        ranges: Vec<[f64; 2]>,
        reply: oneshot::Sender<Result<SessionInfo, Rejection>>,
    },
    /// Replies once everything before it (including start-up recovery) is stored.
    Barrier {
        reply: oneshot::Sender<()>,
    },
}

/// Who receives an event.
#[derive(Debug, Clone)]
enum Audience {
    All,
    /// Members with `roster.view`.
    Staff,
    /// Staff and the member the event is about.
    StaffAnd(String),
}

impl Audience {
    /// Audience mode keeps joins, leaves and other people's hands away from participants.
    fn of(kind: &EventKind, audience_mode: bool) -> Audience {
        // Answers, confirmations, drafts (with their correct answers) and
        // page visibility are never for other participants' eyes.
        match kind {
            EventKind::PresenceConfirmed { identity, .. }
            | EventKind::PollAnswered { identity, .. } => {
                return Audience::StaffAnd(identity.clone())
            }
            EventKind::PollCreated { .. }
            | EventKind::VisibilityChanged { .. }
            | EventKind::MediaReported { .. }
            | EventKind::ReplayWatched { .. } => return Audience::Staff,
            _ => {}
        }
        if !audience_mode {
            return Audience::All;
        }
        match kind {
            EventKind::ParticipantJoined { .. }
            | EventKind::ParticipantLeft { .. }
            | EventKind::ParticipantConnection { .. } => Audience::Staff,
            EventKind::HandRaised { hand } => Audience::StaffAnd(hand.identity.clone()),
            EventKind::HandLowered { identity, .. } => Audience::StaffAnd(identity.clone()),
            // With thousands watching, every upvote to everyone is most of
            // the traffic: participants get counts once a second instead.
            EventKind::QuestionUpvoted { by, .. } => Audience::StaffAnd(by.clone()),
            _ => Audience::All,
        }
    }

    fn includes(&self, actor: &Actor) -> bool {
        match self {
            Audience::All => true,
            Audience::Staff => actor.role.allows(Permission::RosterView),
            Audience::StaffAnd(id) => {
                actor.role.allows(Permission::RosterView) || &actor.identity == id
            }
        }
    }
}

struct Conn {
    handle: ConnHandle,
    actor: Actor,
    /// Events up to this seq were in the welcome (or replay); skip them.
    ready_seq: u64,
}

/// A frame to send once the batch is stored.
enum Out {
    Broadcast {
        seq: u64,
        audience: Audience,
        frame: Utf8Bytes,
    },
    /// Not numbered, to every connection (participant count).
    All(Utf8Bytes),
    /// Not numbered, to members without `roster.view` (coalesced votes).
    Participants(Utf8Bytes),
    To(u64, Utf8Bytes),
    /// An `ack`; becomes a `storage_unavailable` error if the batch fails.
    Ack(u64, Option<ReqId>, Utf8Bytes),
    /// A refusal: sent whether or not the batch is stored.
    Refusal(u64, Utf8Bytes),
    Close(u64, u16, &'static str),
}

#[derive(Default)]
struct Batch {
    writes: Vec<Write>,
    out: Vec<Out>,
    joins: Vec<(u64, oneshot::Sender<Result<(), JoinError>>)>,
    admin: Vec<(oneshot::Sender<Result<SessionInfo, Rejection>>, SessionInfo)>,
    barriers: Vec<oneshot::Sender<()>>,
    /// Media consequences, carried out only once the batch is stored.
    media: Vec<MediaJob>,
    /// Recording starts, pauses, resumes and stops, likewise.
    recording: Vec<EventKind>,
    /// Where each event's writes begin in `writes`: a large batch is
    /// stored in several transactions, cut only there.
    cuts: Vec<usize>,
}

/// Splits a batch of `len` writes into transactions of at most `max`
/// writes, cut only at `cuts` (ascending), so an event and its grading
/// outbox rows are always stored together. One event with more writes than
/// `max` still goes whole.
fn store_ranges(len: usize, cuts: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < len {
        let end = if len - start <= max {
            len
        } else {
            let mut later = cuts.iter().copied().filter(|&c| c > start);
            let first = later.next().unwrap_or(len);
            later
                .take_while(|&c| c <= start + max)
                .last()
                .unwrap_or(first)
                .max(first)
        };
        ranges.push(start..end);
        start = end;
    }
    ranges
}

pub(super) struct RoomActor {
    id: String,
    gen: u64,
    shared: Arc<Shared>,
    state: ClassState,
    conns: HashMap<u64, Conn>,
    by_identity: HashMap<String, u64>,
    /// Present members whose connection dropped, and since when.
    away: HashMap<String, Timestamp>,
    /// Listed members who dropped since the last batch: their
    /// `participant_connection` (false) goes out with the next one, since a
    /// drop noticed while delivering has no batch of its own. Outside
    /// audience mode only.
    newly_away: Vec<String>,
    /// Recent events for resuming connections: (seq, audience, frame).
    ring: VecDeque<(u64, Audience, Utf8Bytes)>,
    chat_buckets: HashMap<String, Bucket>,
    last_count: Option<u32>,
    /// Audience mode: upvote counts changed since the last tick.
    vote_counts: HashMap<i64, u32>,
    last_seen_flush: Instant,
    /// When the session's schedule starts the next presence check.
    next_check: Option<Timestamp>,
    /// The recording in progress, and the tap the SFU feeds it through.
    recording: Option<(
        crate::record::session::Recording,
        crate::record::session::Tap,
    )>,
    idle_since: Option<Instant>,
    /// Storage failed and state could not be reloaded; the room must stop.
    broken: bool,
    /// The media side of the room (peer connections, forwarding).
    media: Arc<MediaRoom>,
    /// Media work, done in order by one task per room.
    media_jobs: mpsc::UnboundedSender<MediaJob>,
    /// Writes the frames `deliver` queues, beside the room.
    flusher: Flusher,
}

fn error_frame(req_id: Option<ReqId>, code: ErrorCode, message: impl Into<String>) -> Utf8Bytes {
    encode(&ServerMsg::Error {
        req_id,
        code,
        message: message.into(),
    })
}

/// Runs a room: loads its state inside its own task (so a crowd joining at
/// once waits on the channel rather than each loading the timeline), then
/// serves commands until the room is idle or the server stops.
pub(super) async fn start_room(
    id: String,
    gen: u64,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<RoomCmd>,
) {
    let failure = match load_state(&shared, &id).await {
        Ok(Some(state)) => {
            let (note_tx, note_rx) = mpsc::unbounded_channel();
            let media = MediaRoom::new(
                shared.sfu.clone(),
                Box::new(move |note| {
                    let _ = note_tx.send(note);
                }),
            );
            return RoomActor::new(id, gen, shared, state, media)
                .run(rx, note_rx)
                .await;
        }
        Ok(None) => Rejection::new(ErrorCode::NotFound, "no such session"),
        Err(e) => {
            tracing::error!(session = %id, "loading room failed: {e}");
            Rejection::new(
                ErrorCode::StorageUnavailable,
                "storage is unavailable; retry later",
            )
        }
    };
    shared.rooms.remove_if(&id, |_, h| h.gen == gen);
    shared.metrics.rooms.fetch_sub(1, Ordering::Relaxed);
    refuse_queued(
        &mut rx,
        || JoinError::Rejected(failure.clone()),
        &failure.message,
    );
}

/// Closes a stopping room's channel and answers whatever was still queued.
fn refuse_queued(rx: &mut mpsc::Receiver<RoomCmd>, join: impl Fn() -> JoinError, why: &str) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        refuse(cmd, &join, why);
    }
}

/// Connections closed together at most; see [`close_paced`].
const CLOSE_CHUNK: usize = 250;
/// The pause between two such groups.
const CLOSE_PACE: Duration = Duration::from_millis(20);

/// Closes connections the room has already let go of (they get nothing
/// more from it). Thousands at once (a large session ending) are closed
/// [`CLOSE_CHUNK`] at a time, [`CLOSE_PACE`] apart: closing 5,000 sockets
/// is about 0.2 s of a core, and every other room's task on that core
/// waited behind all of it.
fn close_paced(closers: Vec<(Arc<super::conn::Closer>, u16, &'static str)>) {
    if closers.len() <= CLOSE_CHUNK {
        for (closer, code, why) in closers {
            closer.close(code, why);
        }
        return;
    }
    tokio::spawn(async move {
        for group in closers.chunks(CLOSE_CHUNK) {
            for (closer, code, why) in group {
                closer.close(*code, why);
            }
            tokio::time::sleep(CLOSE_PACE).await;
        }
    });
}

/// Answers a command the room will not carry out.
fn refuse(cmd: RoomCmd, join: impl Fn() -> JoinError, why: &str) {
    match cmd {
        RoomCmd::Join { reply, .. } => {
            let _ = reply.send(Err(join()));
        }
        RoomCmd::End { reply, .. }
        | RoomCmd::Update { reply, .. }
        | RoomCmd::ReplayWatched { reply, .. } => {
            let _ = reply.send(Err(Rejection::new(ErrorCode::StorageUnavailable, why)));
        }
        RoomCmd::Shutdown { reply } | RoomCmd::Barrier { reply } => {
            let _ = reply.send(());
        }
        RoomCmd::Request { .. } | RoomCmd::Disconnected { .. } => {}
    }
}

/// Loads a session's state by folding its stored timeline.
pub(super) async fn load_state(
    shared: &Shared,
    id: &str,
) -> Result<Option<ClassState>, StoreError> {
    let Some(session) = shared.store.get_session(id).await? else {
        return Ok(None);
    };
    let mut state = ClassState::new(
        session,
        shared.limits.chat_history,
        shared.grading.include_text,
    );
    for e in shared.store.events(id, 0, None, &[]).await? {
        let ev: Event = serde_json::from_str(&e.frame)
            .map_err(|err| StoreError::Corrupt(format!("event {} of {id}: {err}", e.seq)))?;
        state.apply(ev.seq, ev.at, &ev.kind);
    }
    Ok(Some(state))
}

impl RoomActor {
    fn new(
        id: String,
        gen: u64,
        shared: Arc<Shared>,
        state: ClassState,
        media: Arc<MediaRoom>,
    ) -> RoomActor {
        RoomActor {
            media_jobs: media.clone().start_worker(),
            flusher: Flusher::spawn(),
            media,
            id,
            gen,
            shared,
            state,
            conns: HashMap::new(),
            by_identity: HashMap::new(),
            away: HashMap::new(),
            newly_away: Vec::new(),
            ring: VecDeque::new(),
            chat_buckets: HashMap::new(),
            last_count: None,
            vote_counts: HashMap::new(),
            last_seen_flush: Instant::now(),
            next_check: None,
            recording: None,
            idle_since: None,
            broken: false,
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<RoomCmd>,
        mut notes: mpsc::UnboundedReceiver<MediaNote>,
    ) {
        self.recover_after_crash().await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown_reply = None;
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if self.broken {
                        break;
                    }
                    let mut cmds = vec![cmd];
                    while cmds.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(c) => cmds.push(c),
                            Err(_) => break,
                        }
                    }
                    let mut batch = Batch::default();
                    let now = Timestamp::now();
                    for cmd in cmds {
                        match cmd {
                            RoomCmd::Shutdown { reply } => {
                                self.on_shutdown(now, &mut batch);
                                shutdown_reply = Some(reply);
                            }
                            // Nothing that arrived after the shutdown is applied.
                            other if shutdown_reply.is_some() => refuse(other, || JoinError::Retry, "server shutting down"),
                            other => self.on_cmd(other, now, &mut batch),
                        }
                    }
                    self.tell_drops(now, &mut batch);
                    self.commit(batch).await;
                    if let Some(reply) = shutdown_reply.take() {
                        self.close_all_for_shutdown();
                        let _ = reply.send(());
                        break;
                    }
                }
                Some(note) = notes.recv() => {
                    let mut batch = Batch::default();
                    self.on_media_note(note, Timestamp::now(), &mut batch);
                    self.commit(batch).await;
                }
                _ = tick.tick() => {
                    if self.on_tick().await || self.broken {
                        break;
                    }
                }
            }
        }
        // The room stops (shutdown, or idle): finish the files, so they
        // have their cues and duration; the next load records the stop.
        self.media.set_recording(None).await;
        if let Some((rec, _)) = self.recording.take() {
            rec.stop().await;
        }
        self.media.close_all().await;
        self.shared
            .rooms
            .remove_if(&self.id, |_, h| h.gen == self.gen);
        self.shared.metrics.rooms.fetch_sub(1, Ordering::Relaxed);
        // Anything still queued belongs to the next actor for this session.
        refuse_queued(&mut rx, || JoinError::Retry, "room restarting; retry");
    }

    /// Members still marked present when the room loads were present when the
    /// server stopped without a clean shutdown: close them at their last-seen time.
    async fn recover_after_crash(&mut self) {
        let present = self.state.present_identities();
        if present.is_empty() {
            return;
        }
        let last_seen: HashMap<String, Timestamp> =
            match self.shared.store.participants(&self.id).await {
                Ok(rows) => rows
                    .into_iter()
                    .map(|r| (r.identity, r.last_seen))
                    .collect(),
                Err(e) => {
                    tracing::error!(session = %self.id, "cannot read last-seen times: {e}");
                    HashMap::new()
                }
            };
        let now = Timestamp::now();
        let mut batch = Batch::default();
        for id in present {
            let at = last_seen.get(&id).copied().unwrap_or(now);
            for e in self.state.leave(&id, LeaveReason::ServerRestart, at, &id) {
                self.emit(e, now, &mut batch);
            }
        }
        tracing::info!(session = %self.id, "closed attendance left open by an unclean stop");
        self.commit(batch).await;
    }

    fn on_cmd(&mut self, cmd: RoomCmd, now: Timestamp, b: &mut Batch) {
        match cmd {
            RoomCmd::Join {
                conn,
                actor,
                last_seq,
                reply,
            } => self.on_join(conn, actor, last_seq, reply, now, b),
            RoomCmd::Request {
                conn_id,
                req_id,
                msg,
            } => self.on_request(conn_id, req_id, msg, now, b),
            RoomCmd::Disconnected { conn_id } => self.on_disconnected(conn_id, now),
            RoomCmd::End { by, reply } => {
                for e in self.state.end(&by, now) {
                    self.emit(e, now, b);
                }
                b.admin.push((reply, self.state.session.clone()));
            }
            RoomCmd::ReplayWatched {
                recording_id,
                identity,
                name,
                seconds,
                ranges,
                reply,
            } => {
                let e = EventKind::ReplayWatched {
                    recording_id,
                    identity,
                    name,
                    seconds,
                    ranges,
                };
                self.emit(e, now, b);
                b.admin.push((reply, self.state.session.clone()));
            }
            RoomCmd::Update { patch, reply } => {
                if self.state.session.status == crate::protocol::SessionStatus::Ended {
                    let r = Rejection::new(
                        ErrorCode::SessionEnded,
                        "an ended session cannot be changed",
                    );
                    let _ = reply.send(Err(r));
                    return;
                }
                let mut session = self.state.session.clone();
                patch.apply_to(&mut session);
                if session != self.state.session {
                    self.emit(EventKind::SessionUpdated { session }, now, b);
                }
                b.admin.push((reply, self.state.session.clone()));
            }
            // Earlier commands of this batch are stored before any reply is sent.
            RoomCmd::Barrier { reply } => b.barriers.push(reply),
            RoomCmd::Shutdown { .. } => unreachable!("handled by run"),
        }
    }

    fn you(&self, actor: &Actor) -> You {
        You {
            identity: actor.identity.clone(),
            name: actor.name.clone(),
            role: actor.role,
            permissions: actor.role.permissions(),
            can_publish: self.state.can_publish(&actor.identity, actor.role),
            chat_muted: self.state.chat_muted(&actor.identity),
        }
    }

    fn resume_token(&self, actor: &Actor, now: Timestamp) -> String {
        let iat = now.millis() / 1000;
        self.shared.keys.sign(&Claims {
            sid: self.id.clone(),
            sub: actor.identity.clone(),
            name: actor.name.clone(),
            role: actor.role,
            iat,
            exp: iat + RESUME_TOKEN_SECS,
            typ: TokenType::Resume,
        })
    }

    /// Whether every event after `from` is still in the resume buffer.
    fn can_resume(&self, from: u64) -> bool {
        if from > self.state.seq {
            return false;
        }
        if from == self.state.seq {
            return true;
        }
        let covered = self
            .ring
            .front()
            .is_some_and(|(first, _, _)| *first <= from + 1);
        // A replay must fit comfortably in the send queue, or the connection
        // would be closed as a slow consumer and retry the same gap forever.
        let missed = self.state.seq - from;
        covered && missed <= (self.shared.limits.send_queue / 2) as u64
    }

    fn roster(&self) -> Vec<ParticipantInfo> {
        let mut roster: Vec<ParticipantInfo> = self
            .state
            .members
            .iter()
            .filter(|(_, m)| m.present && m.role.is_listed())
            .map(|(id, m)| ParticipantInfo {
                identity: id.clone(),
                name: m.name.clone(),
                role: m.role,
                joined_at: m.joined_at,
                connected: self.by_identity.contains_key(id),
                chat_muted: m.chat_muted,
            })
            .collect();
        roster.sort_by(|a, b| {
            a.joined_at
                .cmp(&b.joined_at)
                .then_with(|| a.identity.cmp(&b.identity))
        });
        roster
    }

    fn welcome(&self, actor: &Actor, now: Timestamp) -> Welcome {
        let staff = actor.role.allows(Permission::RosterView);
        let full = staff || !self.state.session.audience_mode();
        Welcome {
            session: self.state.session.clone(),
            you: self.you(actor),
            roster: full.then(|| self.roster()),
            participant_count: self.state.present_count(),
            hands: self
                .state
                .hands
                .iter()
                .filter(|h| full || h.identity == actor.identity)
                .cloned()
                .collect(),
            stage: self.state.stage_info(),
            questions: self.state.visible_questions(),
            my_votes: self
                .state
                .votes
                .iter()
                .filter(|(_, who)| who == &actor.identity)
                .map(|(q, _)| *q)
                .collect(),
            pinned_question: self.state.pinned,
            tracks: self.state.tracks.clone(),
            speaking: self.state.speaking.clone(),
            ice_servers: self.shared.sfu.config.ice_servers.clone(),
            chat: self.state.chat.iter().cloned().collect(),
            chat_locked: self.state.chat_locked,
            presence_check: self
                .state
                .activities
                .check
                .as_ref()
                .map(|c| c.check.clone()),
            presence_confirmed: self
                .state
                .activities
                .check
                .as_ref()
                .is_some_and(|c| c.confirmed.contains(&actor.identity)),
            polls: self
                .state
                .activities
                .polls_for(actor.role.allows(Permission::RosterView)),
            my_poll_answers: self.state.activities.answers_of(&actor.identity),
            recording: self
                .state
                .activities
                .recording
                .as_ref()
                .map(|(id, paused)| crate::protocol::RecordingState {
                    id: id.clone(),
                    paused: *paused,
                }),
            resume_token: self.resume_token(actor, now),
            seq: self.state.seq,
            server_time: now,
        }
    }

    fn on_join(
        &mut self,
        conn: ConnHandle,
        actor: Actor,
        last_seq: Option<u64>,
        reply: oneshot::Sender<Result<(), JoinError>>,
        now: Timestamp,
        b: &mut Batch,
    ) {
        let events = match self.state.join(&actor, now) {
            Ok(events) => events,
            Err(rej) => {
                let _ = reply.send(Err(JoinError::Rejected(rej)));
                return;
            }
        };
        if let Some(old) = self.by_identity.remove(&actor.identity) {
            if let Some(old) = self.conns.remove(&old) {
                old.handle
                    .closer
                    .close(close::REPLACED, "replaced by a newer connection");
            }
        }
        let was_away = self.away.remove(&actor.identity).is_some();
        for e in events {
            self.emit(e, now, b);
        }
        // Back within the grace period. A drop not yet told is not told.
        let untold = self.newly_away.iter().position(|i| *i == actor.identity);
        if let Some(i) = untold {
            self.newly_away.swap_remove(i);
        } else if was_away && actor.role.is_listed() && !self.state.session.audience_mode() {
            let e = EventKind::ParticipantConnection {
                identity: actor.identity.clone(),
                connected: true,
            };
            self.emit(e, now, b);
        }
        if actor.role.is_listed() {
            b.writes.push(Write::Participant {
                session: self.id.clone(),
                identity: actor.identity.clone(),
                name: actor.name.clone(),
                role: actor.role,
                at: now,
            });
        }
        let id = conn.id;
        // Registered before the snapshot is built, so the welcome lists the
        // joining member as connected.
        self.by_identity.insert(actor.identity.clone(), id);
        match last_seq.filter(|s| self.can_resume(*s)) {
            Some(from) => {
                b.out.push(Out::To(
                    id,
                    encode(&ServerMsg::Resumed {
                        you: self.you(&actor),
                        resume_token: self.resume_token(&actor, now),
                        from_seq: from,
                        seq: self.state.seq,
                        participant_count: self.state.present_count(),
                    }),
                ));
                for (seq, audience, frame) in &self.ring {
                    if *seq > from && audience.includes(&actor) {
                        b.out.push(Out::To(id, frame.clone()));
                    }
                }
                // Coalesced vote counts are not replayed: send the totals.
                if self.state.session.audience_mode() && !actor.role.allows(Permission::RosterView)
                {
                    let votes: Vec<crate::protocol::QuestionVotes> = self
                        .state
                        .visible_questions()
                        .iter()
                        .filter(|q| q.upvotes > 0)
                        .map(|q| crate::protocol::QuestionVotes {
                            question_id: q.id,
                            upvotes: q.upvotes,
                        })
                        .collect();
                    if !votes.is_empty() {
                        b.out
                            .push(Out::To(id, encode(&ServerMsg::QuestionVotes { votes })));
                    }
                }
            }
            None => {
                b.out.push(Out::To(
                    id,
                    encode(&ServerMsg::Welcome(Box::new(self.welcome(&actor, now)))),
                ));
            }
        }
        b.media.push(MediaJob::Attach {
            identity: actor.identity.clone(),
            conn: conn.clone(),
        });
        self.conns.insert(
            id,
            Conn {
                handle: conn,
                actor,
                ready_seq: self.state.seq,
            },
        );
        self.idle_since = None;
        b.joins.push((id, reply));
    }

    fn on_request(
        &mut self,
        conn_id: u64,
        req_id: Option<ReqId>,
        msg: ClientMsg,
        now: Timestamp,
        b: &mut Batch,
    ) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let actor = conn.actor.clone();
        // A leave or kick earlier in this batch closes the connection only
        // after delivery; nothing it sends meanwhile may count.
        if actor.role.is_listed()
            && !self
                .state
                .members
                .get(&actor.identity)
                .is_some_and(|m| m.present)
        {
            b.out.push(Out::Refusal(
                conn_id,
                error_frame(
                    req_id,
                    ErrorCode::InvalidState,
                    "you have left this session",
                ),
            ));
            return;
        }
        if matches!(msg, ClientMsg::Leave) {
            for e in self
                .state
                .leave(&actor.identity, LeaveReason::Left, now, &actor.identity)
            {
                self.emit(e, now, b);
            }
            let ack = encode(&ServerMsg::Ack {
                req_id: req_id.clone(),
                result: None,
            });
            b.out.push(Out::Ack(conn_id, req_id, ack));
            b.out.push(Out::Close(conn_id, 1000, "left"));
            return;
        }
        if matches!(
            msg,
            ClientMsg::MediaPublish { .. }
                | ClientMsg::MediaUnpublish
                | ClientMsg::MediaSubscribe { .. }
                | ClientMsg::MediaAnswer { .. }
                | ClientMsg::MediaQuality { .. }
                | ClientMsg::MediaIce { .. }
        ) {
            self.on_media_request(conn_id, &actor, req_id, msg, b);
            return;
        }
        let limited = matches!(
            msg,
            ClientMsg::ChatSend { .. }
                | ClientMsg::QuestionAsk { .. }
                | ClientMsg::QuestionReply { .. }
        );
        if limited {
            let l = &self.shared.limits;
            let bucket = self
                .chat_buckets
                .entry(actor.identity.clone())
                .or_insert_with(|| Bucket::full(l.chat_burst, Instant::now()));
            // Only accepted messages spend from the bucket (see below).
            if !bucket.ready(l.chat_burst, l.chat_per_sec, Instant::now()) {
                b.out.push(Out::Refusal(
                    conn_id,
                    error_frame(
                        req_id,
                        ErrorCode::RateLimited,
                        format!(
                            "you are sending too fast: at most {} messages at once, then {} per second",
                            l.chat_burst, l.chat_per_sec
                        ),
                    ),
                ));
                return;
            }
        }
        match self
            .state
            .handle(&actor, &msg, now, self.shared.limits.chat_max_length)
        {
            Ok(outcome) => {
                if limited {
                    if let Some(b) = self.chat_buckets.get_mut(&actor.identity) {
                        b.spend();
                    }
                }
                for e in outcome.events {
                    self.emit(e, now, b);
                }
                b.out.push(Out::Ack(
                    conn_id,
                    req_id.clone(),
                    encode(&ServerMsg::Ack {
                        req_id,
                        result: outcome.result,
                    }),
                ));
            }
            Err(rej) => b.out.push(Out::Refusal(
                conn_id,
                error_frame(req_id, rej.code, rej.message),
            )),
        }
    }

    /// Media requests: the permission check happens here, against room
    /// state; the negotiation runs in the media layer, off the room task.
    fn on_media_request(
        &mut self,
        conn_id: u64,
        actor: &Actor,
        req_id: Option<ReqId>,
        msg: ClientMsg,
        b: &mut Batch,
    ) {
        if matches!(msg, ClientMsg::MediaPublish { .. })
            && !self.state.can_publish(&actor.identity, actor.role)
        {
            let why = match actor.role {
                crate::protocol::Role::Observer => "observers never publish",
                _ if self.state.session.kind == crate::protocol::SessionKind::Qa => {
                    "in a Q&A session only the stage may speak; raise your hand"
                }
                _ => "publishing is locked by a moderator",
            };
            b.out.push(Out::Refusal(
                conn_id,
                error_frame(req_id, ErrorCode::Forbidden, why),
            ));
            return;
        }
        let Some(conn) = self.conns.get(&conn_id).map(|c| c.handle.clone()) else {
            return;
        };
        // One queue per room keeps a member's media requests in the order sent.
        self.media_job(MediaJob::Request {
            identity: actor.identity.clone(),
            msg,
            req_id,
            conn,
        });
    }

    fn media_job(&self, job: MediaJob) {
        let _ = self.media_jobs.send(job);
    }

    /// A track started or ended in the media layer.
    fn on_media_note(&mut self, note: MediaNote, now: Timestamp, b: &mut Batch) {
        match note {
            MediaNote::Published(mut track) => {
                let member = self.state.members.get(&track.owner);
                let allowed = member
                    .is_some_and(|m| m.present && self.state.can_publish(&track.owner, m.role));
                if let Some(m) = member {
                    track.name = m.name.clone();
                }
                if allowed {
                    self.emit(EventKind::TrackPublished { track }, now, b);
                } else {
                    // Lost a race with a stage removal: stop it again.
                    b.media.push(MediaJob::Unpublish(track.owner));
                }
            }
            MediaNote::Speaking { identity, speaking } => {
                let present = self.state.members.get(&identity).is_some_and(|m| m.present);
                let known = self.state.speaking.contains(&identity);
                if present && known != speaking {
                    self.emit(EventKind::Speaking { identity, speaking }, now, b);
                }
            }
            MediaNote::Unpublished { track_id, owner } => {
                if self.state.tracks.iter().any(|t| t.id == track_id) {
                    self.emit(EventKind::TrackUnpublished { track_id, owner }, now, b);
                }
            }
        }
    }

    fn on_disconnected(&mut self, conn_id: u64, now: Timestamp) {
        let Some(conn) = self.conns.remove(&conn_id) else {
            return;
        };
        let identity = conn.actor.identity;
        if self.by_identity.get(&identity) == Some(&conn_id) {
            self.by_identity.remove(&identity);
            // Observers have no attendance (and so no leave): their media
            // ends with their connection.
            if !conn.actor.role.is_listed() {
                self.media_job(MediaJob::Remove(identity.clone()));
            }
        }
        if self.state.members.get(&identity).is_some_and(|m| m.present) {
            // Not in audience mode: a mass drop of thousands would fill the
            // resume buffer with these and send every member a fresh
            // snapshot instead of a resume (measured in docs/benchmarks.md).
            if conn.actor.role.is_listed()
                && !self.state.session.audience_mode()
                && !self.away.contains_key(&identity)
            {
                self.newly_away.push(identity.clone());
            }
            self.away.insert(identity, now);
        }
    }

    /// Emits `participant_connection` (false) for the members who dropped
    /// since the last batch and are still away (not back, not gone).
    fn tell_drops(&mut self, now: Timestamp, b: &mut Batch) {
        for identity in std::mem::take(&mut self.newly_away) {
            if self.away.contains_key(&identity) && !self.by_identity.contains_key(&identity) {
                let e = EventKind::ParticipantConnection {
                    identity,
                    connected: false,
                };
                self.emit(e, now, b);
            }
        }
    }

    /// Numbers an event, applies it, and queues its storage and delivery.
    fn emit(&mut self, kind: EventKind, now: Timestamp, b: &mut Batch) {
        b.cuts.push(b.writes.len());
        let seq = self.state.seq + 1;
        let event = Event { seq, at: now, kind };
        let frame = encode(&event);
        if matches!(
            event.kind,
            EventKind::RecordingStarted { .. }
                | EventKind::RecordingPaused { .. }
                | EventKind::RecordingResumed { .. }
                | EventKind::RecordingStopped { .. }
        ) {
            b.recording.push(event.kind.clone());
        }
        let participation = self.state.apply(seq, now, &event.kind);
        for p in participation {
            b.writes.push(Write::Outbox {
                session: self.id.clone(),
                seq: p.seq,
                body: serde_json::to_string(&p).expect("participation events serialize"),
                id: p.id,
                kind: p.kind,
                identity: p.identity,
                at: p.at,
                sinks: self.shared.grading.sinks.clone(),
            });
        }
        let kind = event.kind;
        let audience = Audience::of(&kind, self.state.session.audience_mode());
        b.writes.push(Write::Event {
            session: self.id.clone(),
            seq,
            at: now,
            kind: kind.type_name(),
            subject: kind.subject().map(str::to_string),
            frame: frame.clone(),
        });
        if matches!(
            kind,
            EventKind::SessionStarted
                | EventKind::SessionUpdated { .. }
                | EventKind::SessionEnded { .. }
        ) {
            b.writes.push(Write::Session(self.state.session.clone()));
        }
        self.ring.push_back((seq, audience.clone(), frame.clone()));
        while self.ring.len() > self.shared.limits.resume_buffer {
            self.ring.pop_front();
        }
        b.out.push(Out::Broadcast {
            seq,
            audience,
            frame,
        });
        if let EventKind::QuestionUpvoted {
            question_id,
            upvotes,
            ..
        } = &kind
        {
            if self.state.session.audience_mode() {
                self.vote_counts.insert(*question_id, *upvotes);
            }
        }
        self.after_event(&kind, b);
    }

    /// Per-connection consequences of an event: permission updates and closes.
    fn after_event(&mut self, kind: &EventKind, b: &mut Batch) {
        let affected: Vec<&str> = match kind {
            EventKind::ChatMuted { identity, .. } | EventKind::StageLeft { identity, .. } => {
                vec![identity]
            }
            EventKind::StageJoined { member } => vec![&member.identity],
            // The lock changes what participants may do; staff are unaffected.
            EventKind::StageLocked { .. } => self
                .conns
                .values()
                .filter(|c| c.actor.role == crate::protocol::Role::Participant)
                .map(|c| c.actor.identity.as_str())
                .collect(),
            EventKind::ParticipantLeft {
                identity, reason, ..
            } => {
                let code = match reason {
                    LeaveReason::Kicked => Some((close::KICKED, "removed by a moderator")),
                    LeaveReason::SessionEnded => Some((close::SESSION_ENDED, "session ended")),
                    _ => None,
                };
                if let (Some((code, why)), Some(id)) = (code, self.by_identity.get(identity)) {
                    b.out.push(Out::Close(*id, code, why));
                }
                self.away.remove(identity);
                b.media.push(MediaJob::Remove(identity.clone()));
                vec![]
            }
            EventKind::SessionEnded { .. } => {
                for id in self.conns.keys() {
                    b.out
                        .push(Out::Close(*id, close::SESSION_ENDED, "session ended"));
                }
                vec![]
            }
            _ => vec![],
        };
        // Whoever may no longer publish stops publishing (also members inside
        // their grace period, whose tracks may still be flowing).
        let revoke: Vec<String> = match kind {
            EventKind::StageLeft { identity, .. } => vec![identity.clone()],
            EventKind::StageLocked { .. } => self.state.present_identities(),
            _ => vec![],
        };
        for identity in revoke {
            let role = self.state.members.get(&identity).map(|m| m.role);
            if role.is_some_and(|r| !self.state.can_publish(&identity, r)) {
                b.media.push(MediaJob::Unpublish(identity));
            }
        }
        let mut frames = Vec::new();
        for identity in affected {
            if let Some(conn) = self
                .by_identity
                .get(identity)
                .and_then(|id| self.conns.get(id))
            {
                frames.push((
                    conn.handle.id,
                    encode(&ServerMsg::YouUpdated {
                        you: self.you(&conn.actor),
                    }),
                ));
            }
        }
        b.out
            .extend(frames.into_iter().map(|(id, f)| Out::To(id, f)));
    }

    /// Stores the batch, then sends its frames; on a storage failure nothing is
    /// sent, requesters get `storage_unavailable`, and state is reloaded.
    async fn commit(&mut self, mut b: Batch) {
        let barriers = std::mem::take(&mut b.barriers);
        // A large batch (a session ending with thousands present, a mass
        // drop) goes in several transactions, so that it does not hold the
        // single storage writer, and with it every other room's sending, for
        // long. Nothing is sent or answered before all of it is stored.
        let mut stored = Ok(());
        let mut partly = false;
        for range in store_ranges(b.writes.len(), &b.cuts, STORE_CHUNK) {
            let began = std::time::Instant::now();
            stored = self.shared.store.apply(&b.writes[range.clone()]).await;
            self.shared.metrics.store_commit.observe(began.elapsed());
            if stored.is_err() {
                partly = range.start > 0;
                break;
            }
        }
        let events = b
            .writes
            .iter()
            .filter(|w| matches!(w, Write::Event { .. }))
            .count();
        let outbox = b.writes.iter().any(|w| matches!(w, Write::Outbox { .. }));
        match stored {
            Ok(()) => {
                if outbox {
                    self.shared.grading.wake();
                }
                self.shared
                    .metrics
                    .events_stored
                    .fetch_add(events as u64, Ordering::Relaxed);
                self.deliver(b.out);
                for job in b.media {
                    self.media_job(job);
                }
                for e in b.recording {
                    self.control_recording(e).await;
                }
                for (_, reply) in b.joins {
                    let _ = reply.send(Ok(()));
                }
                for (reply, session) in b.admin {
                    let _ = reply.send(Ok(session));
                }
            }
            Err(e) => {
                tracing::error!(session = %self.id, "storing a batch failed, nothing was sent: {e}");
                self.shared
                    .metrics
                    .storage_errors
                    .fetch_add(1, Ordering::Relaxed);
                // The state is reloaded below from what was stored: all of
                // it, or (`partly`) the first transactions of a large batch,
                // which then reach clients only on resume.
                let failed = || {
                    Rejection::new(
                        ErrorCode::StorageUnavailable,
                        if partly {
                            "storage is unavailable; the change was stored only in part"
                        } else {
                            "storage is unavailable; nothing was changed"
                        },
                    )
                };
                for out in b.out {
                    let (conn, frame) = match out {
                        Out::Ack(conn, req_id, _) => {
                            let r = failed();
                            (conn, error_frame(req_id, r.code, r.message))
                        }
                        Out::Refusal(conn, frame) => (conn, frame),
                        _ => continue,
                    };
                    if let Some(c) = self.conns.get(&conn) {
                        let _ = c.handle.send(frame);
                    }
                }
                for (conn, reply) in b.joins {
                    if let Some(c) = self.conns.remove(&conn) {
                        if self.by_identity.get(&c.actor.identity) == Some(&conn) {
                            self.by_identity.remove(&c.actor.identity);
                        }
                    }
                    let _ = reply.send(Err(JoinError::Rejected(failed())));
                }
                for (reply, _) in b.admin {
                    let _ = reply.send(Err(failed()));
                }
                match load_state(&self.shared, &self.id).await {
                    Ok(Some(state)) => {
                        self.state = state;
                        // Members the stored state still has present but who
                        // have no connection get a grace period again, so
                        // nobody stays "present" forever.
                        let now = Timestamp::now();
                        for id in self.state.present_identities() {
                            if !self.by_identity.contains_key(&id) {
                                self.away.entry(id).or_insert(now);
                            }
                        }
                        let seq = self.state.seq;
                        self.ring.retain(|(s, _, _)| *s <= seq);
                    }
                    other => {
                        // Memory now holds changes the store does not: stop the
                        // room so the next join loads what is really stored.
                        tracing::error!(session = %self.id, "reloading room state failed too, stopping the room: {:?}", other.err());
                        for conn in self.conns.values() {
                            conn.handle.closer.close(
                                close::STORAGE_UNAVAILABLE,
                                "storage unavailable; reconnect later",
                            );
                        }
                        self.conns.clear();
                        self.by_identity.clear();
                        self.away.clear();
                        self.broken = true;
                    }
                }
            }
        }
        for reply in barriers {
            let _ = reply.send(());
        }
    }

    fn deliver(&mut self, out: Vec<Out>) {
        let mut slow = Vec::new();
        let mut closes = Vec::new();
        // Connections with frames queued for the flusher.
        let mut listed: Vec<Arc<dyn FrameSink>> = Vec::new();
        let metrics = &self.shared.metrics;
        let mut push = |conn: &Conn, frame: &Utf8Bytes, slow: &mut Vec<u64>| match conn
            .handle
            .queue(frame.clone())
        {
            Ok(first) => {
                if first {
                    listed.push(conn.handle.out.clone());
                }
                metrics.messages_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(SendFail::Full) => slow.push(conn.handle.id),
            Err(SendFail::Closed) => {}
        };
        for o in out {
            match o {
                Out::Broadcast {
                    seq,
                    audience,
                    frame,
                } => {
                    for conn in self.conns.values() {
                        if conn.ready_seq < seq && audience.includes(&conn.actor) {
                            push(conn, &frame, &mut slow);
                        }
                    }
                }
                Out::All(frame) => {
                    for conn in self.conns.values() {
                        push(conn, &frame, &mut slow);
                    }
                }
                Out::Participants(frame) => {
                    for conn in self.conns.values() {
                        if !conn.actor.role.allows(Permission::RosterView) {
                            push(conn, &frame, &mut slow);
                        }
                    }
                }
                Out::To(id, frame) | Out::Ack(id, _, frame) | Out::Refusal(id, frame) => {
                    if let Some(conn) = self.conns.get(&id) {
                        push(conn, &frame, &mut slow);
                    }
                }
                Out::Close(id, code, why) => closes.push((id, code, why)),
            }
        }
        self.flusher.flush(listed);
        // Closes go last, so a closing member still gets the batch's frames
        // (the ack of its own request, `session_ended`, …).
        let mut closers = Vec::new();
        for (id, code, why) in closes {
            if let Some(conn) = self.conns.remove(&id) {
                closers.push((conn.handle.closer.clone(), code, why));
                if !conn.actor.role.is_listed() {
                    self.media_job(MediaJob::Remove(conn.actor.identity.clone()));
                }
                if self.by_identity.get(&conn.actor.identity) == Some(&id) {
                    self.by_identity.remove(&conn.actor.identity);
                }
            }
        }
        close_paced(closers);
        let now = Timestamp::now();
        for id in slow {
            if let Some(conn) = self.conns.get(&id) {
                tracing::info!(session = %self.id, identity = %conn.actor.identity, "closing a slow consumer");
                conn.handle.closer.close(
                    close::SLOW_CONSUMER,
                    "send queue overflow; resume to catch up",
                );
                self.shared
                    .metrics
                    .queue_drops
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.on_disconnected(id, now);
        }
    }

    /// Carries out a stored recording event: start or stop the recording
    /// task, and connect or disconnect the SFU's tap.
    async fn control_recording(&mut self, e: EventKind) {
        use crate::record::session::Recording;
        match e {
            EventKind::RecordingStarted { recording_id, .. } => {
                let dir = self
                    .shared
                    .sfu
                    .recordings_dir
                    .join(&self.id)
                    .join(&recording_id);
                let media = Arc::downgrade(&self.media);
                let ask = Box::new(move |track: &str| {
                    if let Some(m) = media.upgrade() {
                        let track = track.to_string();
                        tokio::spawn(async move { m.request_keyframe(&track).await });
                    }
                });
                let setup = crate::record::session::Setup {
                    min_free: self.shared.sfu.recording_min_free,
                    ask_keyframe: ask,
                    metrics: self.shared.metrics.clone(),
                };
                match Recording::start(recording_id.clone(), dir, setup) {
                    Ok((rec, tap)) => {
                        self.media.set_recording(Some(tap.clone())).await;
                        self.recording = Some((rec, tap));
                    }
                    Err(err) => tracing::error!(
                        session = %self.id, recording = %recording_id,
                        "cannot record: {err}"
                    ),
                }
            }
            EventKind::RecordingPaused { .. } => {
                self.media.set_recording(None).await;
                if let Some((rec, _)) = &self.recording {
                    rec.pause().await;
                }
            }
            EventKind::RecordingResumed { .. } => {
                if let Some((rec, tap)) = &self.recording {
                    rec.resume().await;
                    self.media.set_recording(Some(tap.clone())).await;
                }
            }
            EventKind::RecordingStopped { .. } => {
                self.media.set_recording(None).await;
                if let Some((rec, _)) = self.recording.take() {
                    let id = self.id.clone();
                    tokio::spawn(async move {
                        if let Some(m) = rec.stop().await {
                            tracing::info!(session = %id, recording = %m.id, tracks = m.tracks.len(), "recording finished");
                        }
                    });
                }
            }
            _ => {}
        }
    }

    /// A presence check from the session's schedule, when one is due:
    /// random gaps from the per-hour rates, never in the first or last five
    /// minutes (of the scheduled time, or from the start without one).
    fn scheduled_check(&mut self, now: Timestamp) -> Option<EventKind> {
        const MARGIN: i64 = 5 * 60 * 1000;
        let s = &self.state.session;
        let cfg = s.settings.presence_checks.clone()?;
        let start = s.scheduled_start.or(s.started_at)?;
        let earliest = Timestamp(now.millis().max(start.millis() + MARGIN));
        let next = *self
            .next_check
            .get_or_insert_with(|| next_check_after(&cfg, earliest));
        if now.millis() < next.millis() {
            return None;
        }
        self.next_check = Some(next_check_after(&cfg, now));
        let window = cfg
            .window_secs
            .unwrap_or(super::activities::CHECK_WINDOW_DEFAULT)
            .clamp(10, 600);
        if let Some(end) = s.scheduled_end {
            if now.millis() + MARGIN > end.millis() {
                return None;
            }
        }
        self.state.activities.start_check("schedule", window, now)
    }

    /// Once a second: expire grace periods, send the participant count,
    /// record presence, and stop when idle. Returns true to stop.
    async fn on_tick(&mut self) -> bool {
        let now = Timestamp::now();
        let mut b = Batch::default();
        let grace = self.shared.limits.grace().as_millis() as i64;
        let mut expired: Vec<(Timestamp, String)> = self
            .away
            .iter()
            .filter(|(_, since)| now.millis() - since.millis() >= grace)
            .map(|(id, since)| (*since, id.clone()))
            .collect();
        expired.sort();
        // The oldest first, as many as the server-wide budget allows this
        // second; the others stay away and come up again next tick.
        if !expired.is_empty() {
            let granted = self
                .shared
                .expiries
                .take(expired.len(), std::time::Instant::now());
            expired.truncate(granted);
        }
        // Each leave carries its own time, so a later tick loses nothing.
        for (since, id) in &expired {
            self.away.remove(id);
            for e in self.state.leave(id, LeaveReason::Timeout, *since, id) {
                self.emit(e, now, &mut b);
            }
        }
        if self.state.session.status == crate::protocol::SessionStatus::Live {
            for e in self.state.activities.due(now) {
                self.emit(e, now, &mut b);
            }
            if let Some(e) = self.scheduled_check(now) {
                self.emit(e, now, &mut b);
            }
            let a = &self.state.activities;
            let failed = self.recording.as_ref().and_then(|(r, _)| r.failure());
            if a.recording.is_some() && self.recording.is_none() {
                // The server stopped while recording: what was written
                // stays playable; this recording is over.
                if let Some(e) = a.stop_recording("server", "server_restart") {
                    self.emit(e, now, &mut b);
                }
            } else if let Some(reason) = failed {
                // The disk is (nearly) full or a write failed: the
                // recording ends, the class goes on.
                if let Some(e) = a.stop_recording("server", reason) {
                    self.emit(e, now, &mut b);
                }
            } else if self.state.session.settings.record == Some(true) && a.recordings == 0 {
                if let Some(e) = a.start_recording("schedule") {
                    self.emit(e, now, &mut b);
                }
            }
        }
        if !self.vote_counts.is_empty() {
            let mut votes: Vec<crate::protocol::QuestionVotes> = self
                .vote_counts
                .drain()
                .map(|(question_id, upvotes)| crate::protocol::QuestionVotes {
                    question_id,
                    upvotes,
                })
                .collect();
            votes.sort_by_key(|v| v.question_id);
            b.out
                .push(Out::Participants(encode(&ServerMsg::QuestionVotes {
                    votes,
                })));
        }
        let count = self.state.present_count();
        if self.last_count != Some(count) {
            self.last_count = Some(count);
            b.out
                .push(Out::All(encode(&ServerMsg::ParticipantCount { count })));
        }
        if self.last_seen_flush.elapsed() >= SEEN_EVERY {
            self.last_seen_flush = Instant::now();
            let identities: Vec<String> = self
                .conns
                .values()
                .filter(|c| c.actor.role.is_listed())
                .map(|c| c.actor.identity.clone())
                .collect();
            if !identities.is_empty() {
                b.writes.push(Write::Seen {
                    session: self.id.clone(),
                    identities,
                    at: now,
                });
            }
        }
        self.tell_drops(now, &mut b);
        self.commit(b).await;
        if self.conns.is_empty() && self.away.is_empty() {
            let since = *self.idle_since.get_or_insert_with(Instant::now);
            return since.elapsed() >= IDLE_EXIT;
        }
        self.idle_since = None;
        false
    }

    fn on_shutdown(&mut self, now: Timestamp, b: &mut Batch) {
        for id in self.state.present_identities() {
            for e in self.state.leave(&id, LeaveReason::ServerShutdown, now, &id) {
                self.emit(e, now, b);
            }
        }
    }

    fn close_all_for_shutdown(&mut self) {
        let frame = encode(&ServerMsg::ServerShutdown {
            retry_after_ms: 5000,
        });
        for conn in self.conns.values() {
            let _ = conn.handle.send(frame.clone());
            conn.handle
                .closer
                .close(close::SERVER_SHUTDOWN, "server shutting down");
        }
        self.conns.clear();
        self.by_identity.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_are_cut_between_events_only() {
        // Events of three writes each (an outbox row, the event, one more).
        let cuts = [0, 3, 6, 9];
        assert_eq!(store_ranges(0, &cuts, 5), vec![]);
        assert_eq!(store_ranges(12, &cuts, 12), vec![0..12]);
        assert_eq!(store_ranges(12, &cuts, 7), vec![0..6, 6..12]);
        assert_eq!(store_ranges(12, &cuts, 5), vec![0..3, 3..6, 6..9, 9..12]);
        // An event larger than a transaction still goes whole.
        assert_eq!(store_ranges(12, &[0, 8], 5), vec![0..8, 8..12]);
        // Writes after the last event (a presence flush) go with it.
        assert_eq!(store_ranges(13, &cuts, 5), vec![0..3, 3..6, 6..9, 9..13]);
    }
    use crate::protocol::Role;

    #[test]
    fn audience_mode_hides_joins_and_other_hands_from_participants() {
        let p = Actor {
            identity: "p1".into(),
            name: "P".into(),
            role: Role::Participant,
        };
        let obs = Actor {
            identity: "o".into(),
            name: "O".into(),
            role: Role::Observer,
        };
        let left = EventKind::ParticipantLeft {
            identity: "x".into(),
            reason: LeaveReason::Left,
            left_at: Timestamp(0),
        };
        assert!(!Audience::of(&left, true).includes(&p));
        assert!(Audience::of(&left, true).includes(&obs));
        assert!(Audience::of(&left, false).includes(&p));
        let own = EventKind::HandLowered {
            identity: "p1".into(),
            by: "h".into(),
        };
        assert!(Audience::of(&own, true).includes(&p));
    }
}

/// A random time for the next scheduled check: a rate drawn between the
/// per-hour bounds, and a gap of 50–150 % of its mean.
fn next_check_after(cfg: &crate::protocol::PresenceCheckSettings, from: Timestamp) -> Timestamp {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let r1 = u16::from_le_bytes([b[0], b[1]]) as f64 / u16::MAX as f64;
    let r2 = u16::from_le_bytes([b[2], b[3]]) as f64 / u16::MAX as f64;
    let rate = cfg.per_hour_min + (cfg.per_hour_max - cfg.per_hour_min) * r1;
    let gap_secs = 3600.0 / rate.max(0.01) * (0.5 + r2);
    Timestamp(from.millis() + (gap_secs * 1000.0) as i64)
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    #[test]
    fn scheduled_checks_come_at_the_configured_rate() {
        let cfg = crate::protocol::PresenceCheckSettings {
            per_hour_min: 2.0,
            per_hour_max: 4.0,
            window_secs: None,
        };
        let from = Timestamp(0);
        for _ in 0..200 {
            let gap = next_check_after(&cfg, from).millis() as f64 / 1000.0;
            // Mean gaps of 15–30 minutes, each drawn at 50–150 % of its mean.
            assert!((450.0..=2700.0).contains(&gap), "{gap}");
        }
    }
}
