// The room as the client sees it: the welcome snapshot, then every event and
// frame folded in (docs/protocol.md §4, §6, §7, §10). No DOM here.

/**
 * @typedef {{ identity: string, name: string, role: string, joined_at: string, connected: boolean, chat_muted: boolean }} Member
 * @typedef {{ identity: string, name: string, raised_at: string }} Hand
 * @typedef {{ id: number, identity: string, name: string, text: string, sent_at: string }} ChatMsg
 * @typedef {{ id: number, identity: string, name: string, text: string, sent_at: string }} Reply
 * @typedef {{ id: number, identity: string, name: string, text: string, asked_at: string, status: string, upvotes: number, replies: Reply[] }} Question
 * @typedef {{ id: string, owner: string, name?: string, kind: 'audio' | 'video', source: string, codec: string }} Track
 * @typedef {{ identity: string, name: string, role: string, permissions: string[], can_publish: boolean, chat_muted: boolean }} You
 * @typedef {{ id: string, title: string, kind: 'qa' | 'seminar', status: string, settings: Record<string, any> }} Session
 */

/** Chat messages kept in memory (older ones scroll away). */
const CHAT_KEEP = 300;

export class Room {
  constructor() {
    /** @type {Session | null} */
    this.session = null;
    /** @type {You | null} */
    this.you = null;
    /** Present members, or null when this member may not see the roster. @type {Map<string, Member> | null} */
    this.roster = null;
    this.count = 0;
    /** @type {Hand[]} */
    this.hands = [];
    /** @type {{ members: { identity: string, name: string }[], invited: { identity: string, name: string }[], locked: boolean }} */
    this.stage = { members: [], invited: [], locked: false };
    /** @type {Map<number, Question>} */
    this.questions = new Map();
    /** @type {Set<number>} */
    this.myVotes = new Set();
    /** @type {number | null} */
    this.pinned = null;
    /** @type {Track[]} */
    this.tracks = [];
    /** @type {Set<string>} */
    this.speaking = new Set();
    /** @type {ChatMsg[]} */
    this.chat = [];
    this.chatLocked = false;
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    /** Names by identity, from everything seen (for hands and tracks in audience mode). @type {Map<string, string>} */
    this.names = new Map();
    this.ended = false;
    /** The running presence check. @type {{ id: number, started_at: string, deadline: string, by: string } | null} */
    this.presenceCheck = null;
    this.presenceConfirmed = false;
    /** @type {Map<number, any>} */
    this.polls = new Map();
    /** Your answers by poll id. @type {Map<number, number[]>} */
    this.myPollAnswers = new Map();
    /** Participants whose page is hidden (staff see it). @type {Set<string>} */
    this.hidden = new Set();
    /** The recording in progress. @type {{ id: string, paused: boolean } | null} */
    this.recording = null;
    /**
     * Members whose media could not connect, by their last `media_report`
     * (sent to hosts and moderators only): identity → reason.
     * @type {Map<string, string>}
     */
    this.mediaFailed = new Map();
  }

  /** @param {string} perm */
  can(perm) {
    return !!this.you && this.you.permissions.includes(perm);
  }

  isStaff() {
    return this.can('roster.view');
  }

  /** @param {string} identity */
  nameOf(identity) {
    return this.roster?.get(identity)?.name ?? this.names.get(identity) ?? identity;
  }

  /** @param {string} identity */
  onStage(identity) {
    return this.stage.members.some((m) => m.identity === identity);
  }

  /** @param {string} identity */
  invited(identity) {
    return this.stage.invited.some((m) => m.identity === identity);
  }

  /** @param {string} identity */
  handRaised(identity) {
    return this.hands.some((h) => h.identity === identity);
  }

  /** @param {{ identity: string, name: string }} p */
  learn(p) {
    this.names.set(p.identity, p.name);
  }

  /**
   * Marks a roster member as connected: they just did something only a
   * member with a live link can do (sent chat, raised a hand, published…).
   * A member whose link dropped is `connected: false` only in a welcome
   * snapshot; no event says they are back (docs/protocol.md §14.3), so
   * what they do is the evidence.
   * @param {string | undefined} identity
   * @returns {string[]} `['roster']` if that changed the roster, else `[]`
   */
  seen(identity) {
    const m = identity ? this.roster?.get(identity) : undefined;
    if (!m || m.connected) return [];
    m.connected = true;
    return ['roster'];
  }

  /**
   * Folds one server frame in. Returns what changed, for redrawing.
   * @param {any} f
   * @returns {string[]} the parts that changed
   */
  apply(f) {
    switch (f.type) {
      case 'welcome':
        this.session = f.session;
        this.you = f.you;
        this.roster = f.roster ? new Map(f.roster.map((m) => [m.identity, m])) : null;
        for (const m of f.roster ?? []) this.learn(m);
        // We are reading this welcome, so our own link is up, whatever the
        // snapshot says.
        this.seen(f.you?.identity);
        this.count = f.participant_count;
        this.hands = f.hands;
        this.stage = f.stage;
        this.questions = new Map(f.questions.map((q) => [q.id, q]));
        this.myVotes = new Set(f.my_votes);
        this.pinned = f.pinned_question;
        this.tracks = f.tracks;
        this.speaking = new Set(f.speaking);
        this.chat = f.chat;
        this.chatLocked = f.chat_locked;
        this.iceServers = f.ice_servers ?? [];
        this.ended = f.session.status === 'ended';
        this.presenceCheck = f.presence_check ?? null;
        this.presenceConfirmed = !!f.presence_confirmed;
        this.polls = new Map((f.polls ?? []).map((p) => [p.id, p]));
        this.myPollAnswers = new Map((f.my_poll_answers ?? []).map((a) => [a.poll_id, a.choices]));
        this.recording = f.recording ?? null;
        for (const x of [...f.hands, ...f.stage.members, ...f.stage.invited, ...f.chat, ...f.questions]) this.learn(x);
        for (const tr of f.tracks) if (tr.name) this.names.set(tr.owner, tr.name);
        return ['all'];
      case 'resumed':
        this.you = f.you;
        this.count = f.participant_count;
        return ['you', 'count', ...this.seen(f.you?.identity)];
      case 'you_updated':
        this.you = f.you;
        return ['you'];
      case 'participant_count':
        this.count = f.count;
        return ['count'];
      case 'question_votes':
        for (const v of f.votes) {
          const q = this.questions.get(v.question_id);
          if (q) q.upvotes = v.upvotes;
        }
        return ['questions'];
      case 'session_started':
        if (this.session) this.session.status = 'live';
        return ['session'];
      case 'session_updated':
        this.session = f.session;
        return ['session'];
      case 'session_ended':
        this.ended = true;
        if (this.session) this.session.status = 'ended';
        return ['session'];
      case 'participant_joined':
        this.learn(f.participant);
        // A join is made by a live link (docs/protocol.md §6).
        this.roster?.set(f.participant.identity, { ...f.participant, connected: true });
        return ['roster'];
      case 'participant_connection': {
        // A drop within the grace period, or the return (docs/protocol.md §6).
        const m = this.roster?.get(f.identity);
        if (!m) return [];
        m.connected = f.connected;
        return ['roster'];
      }
      case 'participant_left': {
        const id = f.identity;
        this.roster?.delete(id);
        this.hands = this.hands.filter((h) => h.identity !== id);
        this.stage.members = this.stage.members.filter((m) => m.identity !== id);
        this.stage.invited = this.stage.invited.filter((m) => m.identity !== id);
        this.speaking.delete(id);
        this.tracks = this.tracks.filter((t) => t.owner !== id);
        this.mediaFailed.delete(id);
        return ['roster', 'hands', 'stage', 'tracks'];
      }
      case 'chat_message':
        this.learn(f.message);
        this.chat.push(f.message);
        if (this.chat.length > CHAT_KEEP) this.chat.splice(0, this.chat.length - CHAT_KEEP);
        return ['chat', ...this.seen(f.message.identity)];
      case 'chat_deleted':
        this.chat = this.chat.filter((m) => m.id !== f.message_id);
        return ['chat'];
      case 'chat_muted': {
        const m = this.roster?.get(f.identity);
        if (m) m.chat_muted = f.muted;
        return ['roster'];
      }
      case 'chat_locked':
        this.chatLocked = f.locked;
        return ['chat_lock'];
      case 'hand_raised':
        this.learn(f.hand);
        if (!this.handRaised(f.hand.identity)) this.hands.push(f.hand);
        return ['hands', ...this.seen(f.hand.identity)];
      case 'hand_lowered':
        this.hands = this.hands.filter((h) => h.identity !== f.identity);
        return ['hands'];
      case 'hands_cleared':
        this.hands = [];
        return ['hands'];
      case 'question_asked':
        this.learn(f.question);
        this.questions.set(f.question.id, f.question);
        return ['questions', ...this.seen(f.question.identity)];
      case 'question_upvoted': {
        const q = this.questions.get(f.question_id);
        if (q) q.upvotes = f.upvotes;
        if (this.you && f.by === this.you.identity) this.myVotes.add(f.question_id);
        return ['questions', ...this.seen(f.by)];
      }
      case 'question_replied': {
        const q = this.questions.get(f.question_id);
        if (q) q.replies.push(f.reply);
        return ['questions', ...this.seen(f.reply?.identity)];
      }
      case 'question_status_changed': {
        const q = this.questions.get(f.question_id);
        if (q) q.status = f.status;
        if (f.status === 'dismissed') this.questions.delete(f.question_id);
        if (this.pinned === f.question_id) this.pinned = null;
        return ['questions'];
      }
      case 'question_pinned':
        this.pinned = f.question_id;
        return ['questions'];
      case 'stage_invited':
        this.learn(f.member);
        this.hands = this.hands.filter((h) => h.identity !== f.member.identity);
        if (!this.invited(f.member.identity)) this.stage.invited.push(f.member);
        return ['stage', 'hands'];
      case 'stage_declined':
        this.stage.invited = this.stage.invited.filter((m) => m.identity !== f.identity);
        return ['stage'];
      case 'stage_joined':
        this.learn(f.member);
        this.stage.invited = this.stage.invited.filter((m) => m.identity !== f.member.identity);
        this.hands = this.hands.filter((h) => h.identity !== f.member.identity);
        if (!this.onStage(f.member.identity)) this.stage.members.push(f.member);
        return ['stage', 'hands', ...this.seen(f.member.identity)];
      case 'stage_left':
        this.stage.members = this.stage.members.filter((m) => m.identity !== f.identity);
        this.stage.invited = this.stage.invited.filter((m) => m.identity !== f.identity);
        return ['stage'];
      case 'stage_locked':
        this.stage.locked = f.locked;
        return ['stage'];
      case 'track_published':
        if (f.track.name) this.names.set(f.track.owner, f.track.name);
        if (!this.tracks.some((t) => t.id === f.track.id)) this.tracks.push(f.track);
        return ['tracks', ...this.seen(f.track.owner)];
      case 'track_unpublished':
        this.tracks = this.tracks.filter((t) => t.id !== f.track_id);
        if (!this.tracks.some((t) => t.owner === f.owner && t.kind === 'audio')) this.speaking.delete(f.owner);
        return ['tracks'];
      case 'speaking':
        if (f.speaking) this.speaking.add(f.identity);
        else this.speaking.delete(f.identity);
        return ['speaking'];
      case 'recording_started':
        this.recording = { id: f.recording_id, paused: false };
        return ['recording'];
      case 'recording_paused':
      case 'recording_resumed':
        if (this.recording) this.recording.paused = f.type === 'recording_paused';
        return ['recording'];
      case 'recording_stopped':
        this.recording = null;
        return ['recording'];
      case 'presence_check_started':
        this.presenceCheck = f.check;
        this.presenceConfirmed = false;
        return ['presence'];
      case 'presence_confirmed':
        if (this.you && f.identity === this.you.identity) this.presenceConfirmed = true;
        return ['presence', ...this.seen(f.identity)];
      case 'presence_check_ended':
        this.presenceCheck = null;
        return ['presence'];
      case 'visibility_changed':
        this.seen(f.identity);
        if (f.hidden) this.hidden.add(f.identity);
        else this.hidden.delete(f.identity);
        return ['roster'];
      case 'poll_created':
      case 'poll_opened':
      case 'poll_closed': {
        const old = this.polls.get(f.poll.id);
        // Staff keep the correct answers they saw in the draft.
        this.polls.set(f.poll.id, { ...f.poll, correct: f.poll.correct ?? old?.correct });
        return ['polls'];
      }
      case 'poll_answered':
        if (this.you && f.identity === this.you.identity) this.myPollAnswers.set(f.poll_id, f.choices);
        return ['polls'];
      case 'media_reported':
        if (f.state === 'failed') this.mediaFailed.set(f.identity, f.reason ?? '');
        else this.mediaFailed.delete(f.identity);
        return ['roster', ...this.seen(f.identity)];
      default:
        return [];
    }
  }

  /**
   * Sorts identities into the order of the video tiles, the same on every
   * page and every load: the host first, then stage members, then by join
   * time, ties by identity. Without a roster (audience mode) join times and
   * roles are unknown: the stage, then identity, decide.
   * @param {string[]} ids
   * @returns {string[]}
   */
  tileOrder(ids) {
    const role = (/** @type {string} */ id) => this.roster?.get(id)?.role ?? (id === this.you?.identity ? this.you.role : '');
    const rank = (/** @type {string} */ id) => (role(id) === 'host' ? 0 : this.onStage(id) ? 1 : 2);
    const joined = (/** @type {string} */ id) => {
      const at = Date.parse(this.roster?.get(id)?.joined_at ?? '');
      return Number.isNaN(at) ? Infinity : at;
    };
    return [...ids].sort((a, b) => rank(a) - rank(b) || joined(a) - joined(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Questions in display order: pinned first, then open by votes, then answered. */
  orderedQuestions() {
    const qs = [...this.questions.values()];
    const rank = (/** @type {Question} */ q) => (q.id === this.pinned ? 0 : q.status === 'open' ? 1 : 2);
    return qs.sort((a, b) => rank(a) - rank(b) || b.upvotes - a.upvotes || a.id - b.id);
  }
}
