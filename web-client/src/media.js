// WebRTC with Lectern's SFU (docs/protocol.md §17): one connection to send
// (we offer, `media_publish`), one to receive (the server offers,
// `media_offer` / `media_answer`). Both are negotiated over the session
// WebSocket; the server's SDP always carries all of its candidates.

/** @typedef {import('./conn.js').Conn} Conn */

/** How long to wait for our ICE candidates before sending an SDP anyway. */
const GATHER_WAIT_MS = 1500;

/**
 * Waits until ICE gathering completes (or a short time passes), so the SDP
 * sent to the server carries our candidates without trickling.
 * @param {RTCPeerConnection} pc
 */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener('icegatheringstatechange', check);
      clearTimeout(timer);
      resolve(undefined);
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, GATHER_WAIT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/**
 * Sends candidates found after the SDP went out (`media_ice`).
 * @param {RTCPeerConnection} pc
 * @param {Conn} conn
 * @param {'publisher' | 'subscriber'} target
 * @param {() => boolean} described whether the description was sent
 */
function trickleLate(pc, conn, target, described) {
  pc.addEventListener('icecandidate', (e) => {
    if (!e.candidate || !e.candidate.candidate || !described()) return;
    conn.request({ type: 'media_ice', target, candidate: e.candidate.toJSON() }).catch(() => {});
  });
}

/** Our own audio and video going to the server. */
export class Publisher {
  /** @param {Conn} conn @param {RTCIceServer[]} iceServers */
  constructor(conn, iceServers) {
    this.conn = conn;
    this.pc = new RTCPeerConnection({ iceServers });
    this.sent = false;
    trickleLate(this.pc, conn, 'publisher', () => this.sent);
    /** Track id → source, told to the server with every offer. @type {Record<string, string>} */
    this.sources = {};
    /** @type {Map<string, RTCRtpSender>} */
    this.senders = new Map();
    this.closed = false;
  }

  /**
   * @param {MediaStreamTrack} track
   * @param {MediaStream} stream
   * @param {'microphone' | 'camera' | 'screen'} source
   */
  add(track, stream, source) {
    const t = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this.senders.set(track.id, t.sender);
    this.sources[track.id] = source;
  }

  /** @param {MediaStreamTrack} track */
  remove(track) {
    const s = this.senders.get(track.id);
    if (s) {
      this.pc.removeTrack(s);
      this.senders.delete(track.id);
    }
  }

  /**
   * Offers our tracks: the first time with `reset` (a new connection), then
   * as renegotiations of the same connection.
   * @param {boolean} reset
   */
  async negotiate(reset) {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await gathered(this.pc);
    const sdp = this.pc.localDescription?.sdp ?? offer.sdp;
    this.sent = true;
    const res = await this.conn.request({ type: 'media_publish', sdp, sources: this.sources, reset });
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp: res.sdp });
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}

/**
 * Receives everyone else's tracks. Each received track is reported with the
 * server's track id, read from the `a=msid` of its m-section (§17.2).
 */
export class Subscriber {
  /**
   * @param {Conn} conn
   * @param {RTCIceServer[]} iceServers
   * @param {(trackId: string, track: MediaStreamTrack) => void} onTrack
   * @param {(pc: RTCPeerConnection) => void} [onPc] told of each new connection
   */
  constructor(conn, iceServers, onTrack, onPc) {
    this.conn = conn;
    this.iceServers = iceServers;
    this.onTrack = onTrack;
    this.onPc = onPc;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    this.answered = false;
    /** Offers are applied one at a time, in order. */
    this.chain = Promise.resolve();
    /** mid → server track id, from the latest offer. @type {Map<string, string>} */
    this.mids = new Map();
  }

  newPc() {
    this.pc?.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this.answered = false;
    this.onPc?.(pc);
    trickleLate(pc, this.conn, 'subscriber', () => this.answered && this.pc === pc);
    pc.addEventListener('track', (e) => {
      const mid = e.transceiver.mid;
      const id = mid !== null ? this.mids.get(mid) : undefined;
      if (id) this.onTrack(id, e.track);
    });
  }

  /**
   * Asks the server for media: all video, some, or none.
   * @param {{ audioOnly: boolean, reset: boolean }} o
   */
  async subscribe(o) {
    if (o.reset) {
      this.pc?.close();
      this.pc = null;
    }
    await this.conn.request({ type: 'media_subscribe', audio_only: o.audioOnly, reset: o.reset });
  }

  /** @param {string} sdp */
  offer(sdp) {
    this.chain = this.chain.then(() => this.apply(sdp)).catch((e) => console.warn('media offer failed', e));
    return this.chain;
  }

  /** @param {string} sdp */
  async apply(sdp) {
    if (!this.pc) this.newPc();
    const pc = /** @type {RTCPeerConnection} */ (this.pc);
    this.mids = midsOf(sdp);
    await pc.setRemoteDescription({ type: 'offer', sdp });
    // Tracks that were already there keep their transceivers: report them
    // again in case their ids moved (a renegotiation never reuses ids).
    for (const t of pc.getTransceivers()) {
      const id = t.mid !== null ? this.mids.get(t.mid) : undefined;
      if (id && t.receiver.track && t.currentDirection !== 'inactive') this.onTrack(id, t.receiver.track);
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await gathered(pc);
    this.answered = true;
    await this.conn.request({ type: 'media_answer', sdp: pc.localDescription?.sdp ?? answer.sdp });
  }

  close() {
    this.pc?.close();
    this.pc = null;
  }
}

/**
 * Maps each m-section's mid to the track id of its `a=msid` line.
 * @param {string} sdp
 * @returns {Map<string, string>}
 */
export function midsOf(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /^a=mid:(\S+)/m.exec(section)?.[1];
    const msid = /^a=msid:\S+ (\S+)/m.exec(section)?.[1];
    const inactive = /^a=(inactive|recvonly)/m.test(section);
    if (mid && msid && !inactive) out.set(mid, msid);
  }
  return out;
}

/** How long a peer connection may take to connect before we call it failed. */
export const CONNECT_WAIT_MS = 15000;

/**
 * Watches our peer connections and reports to the server when media cannot
 * connect, and again once it does (the client message `media_report`), at
 * most once per change of state:
 *   {"type": "media_report", "state": "failed", "reason": R}
 *   {"type": "media_report", "state": "ok"}
 * Reasons (R):
 * - `ice_failed`: a peer connection went to `failed`: ICE found no path to
 *   the server (UDP blocked by a firewall, and no TURN server that gets
 *   through).
 * - `timeout`: a peer connection with media to carry did not reach
 *   `connected` within CONNECT_WAIT_MS (firewalls that drop packets
 *   silently leave ICE trying for a long time).
 * - `no_devices`: the member may publish but no camera or microphone could
 *   be opened (none found, blocked or in use).
 * - `server_refused`: the server answered a media request with
 *   `media_failed` (for example, no UDP port free).
 * The page is told too (`onFail`, `onOk`), to explain it to the teacher.
 */
export class MediaWatch {
  /**
   * @param {{
   *   request: (msg: Record<string, any>) => Promise<any>,
   *   online: () => boolean,
   *   onFail: (reason: string) => void,
   *   onOk: () => void,
   * }} o `online`: whether the session link is up (reports go over it)
   */
  constructor(o) {
    this.o = o;
    /** Watched connections, and which side each is. @type {Map<RTCPeerConnection, 'publisher' | 'subscriber'>} */
    this.pcs = new Map();
    /** Why media is failing, while it is. @type {string | null} */
    this.failure = null;
    /** The state the server should know. @type {{ state: 'failed', reason: string } | { state: 'ok' } | null} */
    this.want = null;
    /** The state the server was last told. @type {'failed' | 'ok' | null} */
    this.told = null;
  }

  /**
   * Starts watching a new peer connection.
   * @param {RTCPeerConnection} pc
   * @param {'publisher' | 'subscriber'} side
   */
  watch(pc, side) {
    for (const old of this.pcs.keys()) if (!live(old)) this.pcs.delete(old);
    this.pcs.set(pc, side);
    pc.addEventListener('connectionstatechange', () => {
      if (!this.pcs.has(pc)) return;
      if (pc.connectionState === 'connected') this.check();
      else if (pc.connectionState === 'failed') this.fail('ice_failed');
    });
    const waited = () => {
      if (!this.pcs.has(pc) || !live(pc)) {
        this.pcs.delete(pc);
        return;
      }
      if (pc.connectionState === 'connected' || pc.connectionState === 'failed') return;
      // Nothing to carry yet, or the session link is down: wait on.
      if (!pc.getTransceivers().length || !this.o.online()) setTimeout(waited, CONNECT_WAIT_MS);
      else this.fail('timeout');
    };
    setTimeout(waited, CONNECT_WAIT_MS);
  }

  /** No camera or microphone could be opened for publishing. */
  noDevices() {
    this.fail('no_devices');
  }

  /** @param {string} reason */
  fail(reason) {
    // While the session link is down, the resume restarts media anyway.
    if (!this.o.online()) return;
    if (this.failure === null || this.failure === 'no_devices') this.failure = reason;
    if (this.want?.state !== 'failed') this.want = { state: 'failed', reason };
    this.o.onFail(reason);
    this.flush();
  }

  /** Media is fine again when every live connection carrying media is connected. */
  check() {
    if (this.failure === null) return;
    const watched = [...this.pcs].filter(([pc]) => live(pc) && pc.getTransceivers().length);
    if (!watched.length || watched.some(([pc]) => pc.connectionState !== 'connected')) return;
    // Without devices, only a working publishing connection clears it.
    if (this.failure === 'no_devices' && !watched.some(([, side]) => side === 'publisher')) return;
    this.failure = null;
    this.want = { state: 'ok' };
    this.o.onOk();
    this.flush();
  }

  /** Sends what the server should know, if it was not told yet (call when the session link is up again). */
  flush() {
    const want = this.want;
    if (!want || want.state === this.told || !this.o.online()) return;
    // "ok" means something only after a "failed".
    if (want.state === 'ok' && this.told !== 'failed') {
      this.want = null;
      return;
    }
    const before = this.told;
    this.told = want.state;
    const msg = want.state === 'failed' ? { type: 'media_report', state: 'failed', reason: want.reason } : { type: 'media_report', state: 'ok' };
    this.o.request(msg).catch((e) => {
      // Answered with an error (a server without `media_report` says
      // bad_request): it was heard, do not repeat it. Lost on the way (the
      // link dropped, `offline`): tell it again once the link is back.
      const heard = e && typeof e === 'object' && 'code' in e && e.code !== 'offline';
      if (!heard && this.told === want.state) this.told = before;
    });
  }

  /** The page is closing: stop watching. */
  stop() {
    this.pcs.clear();
  }
}

/** @param {RTCPeerConnection} pc */
function live(pc) {
  return pc.connectionState !== 'closed' && pc.signalingState !== 'closed';
}
