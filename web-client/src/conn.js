// The session's WebSocket: requests matched to replies by req_id, and
// reconnecting with resume (docs/protocol.md §14) whenever the link drops,
// with backoff, until the session ends or the member leaves.

/**
 * @typedef {'connecting' | 'open' | 'reconnecting' | 'closed'} ConnState
 * Why a connection ended for good:
 * @typedef {'left' | 'session_ended' | 'kicked' | 'replaced' | 'token_expired'
 *   | 'invalid_link' | 'not_found' | 'bad_frames'} EndReason
 * @typedef {{ code: string, message: string }} ServerError
 */

/** Backoff steps (ms) between reconnect attempts; the last one repeats. */
const BACKOFF = [300, 1000, 2000, 4000, 8000];
/** An application ping this often; no pong within PONG_WAIT means dead. */
const PING_EVERY = 15000;
const PONG_WAIT = 8000;

/** A refusal with a code, as the server sent it. */
export class RequestError extends Error {
  /** @param {ServerError} e */
  constructor(e) {
    super(e.message);
    this.code = e.code;
  }
}

export class Conn {
  /**
   * @param {string} joinToken
   * @param {(frame: any) => void} onFrame every frame except replies and pongs
   * @param {(state: ConnState, why?: EndReason) => void} onState
   */
  constructor(joinToken, onFrame, onState) {
    this.joinToken = joinToken;
    this.onFrame = onFrame;
    this.onState = onState;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {ConnState} */
    this.state = 'connecting';
    /** @type {string | null} */
    this.resumeToken = null;
    /** Largest seq seen (events, welcome, resumed). */
    this.lastSeq = -1;
    this.nextId = 1;
    /** @type {Map<number, { resolve: (v: any) => void, reject: (e: RequestError) => void }>} */
    this.pending = new Map();
    this.attempt = 0;
    /** Whether a connection of this page has ever opened (a welcome came). */
    this.everOpened = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pingTimer = undefined;
    this.lastPong = 0;
    /** Delay before the next attempt asked by the server (1012). */
    this.retryAfter = 0;
    this.onOnline = () => {
      if (this.state === 'reconnecting') this.connectNow();
    };
    this.onOffline = () => {
      // The browser knows the link is gone: say so now, not at the next ping.
      if (this.ws && this.state === 'open') this.drop();
    };
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  start() {
    this.open();
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const base = `${scheme}://${location.host}/ws?`;
    const q = new URLSearchParams();
    if (this.resumeToken) q.set('resume', this.resumeToken);
    else q.set('token', this.joinToken);
    if (this.lastSeq >= 0) q.set('last_seq', String(this.lastSeq));
    return base + q.toString();
  }

  open() {
    clearTimeout(this.retryTimer);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    let opened = false;
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string') return;
      let f;
      try {
        f = JSON.parse(m.data);
      } catch {
        return;
      }
      if (!opened && (f.type === 'welcome' || f.type === 'resumed')) {
        opened = true;
        this.everOpened = true;
        this.attempt = 0;
        this.lastPong = Date.now();
        this.setState('open');
        this.startPings();
      }
      this.handle(f);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPings();
      this.failPending();
      this.closed(ev.code, ev.reason, opened);
    };
  }

  /** @param {any} f */
  handle(f) {
    if (f.type === 'welcome') this.lastSeq = f.seq;
    else if (typeof f.seq === 'number' && f.seq > this.lastSeq) this.lastSeq = f.seq;
    if (f.resume_token) this.resumeToken = f.resume_token;
    if (f.type === 'ack' || f.type === 'error') {
      const p = typeof f.req_id === 'number' ? this.pending.get(f.req_id) : undefined;
      if (p) {
        this.pending.delete(f.req_id);
        if (f.type === 'ack') p.resolve(f.result ?? null);
        else p.reject(new RequestError(f));
        return;
      }
    }
    if (f.type === 'pong') {
      this.lastPong = Date.now();
      return;
    }
    if (f.type === 'server_shutdown') this.retryAfter = f.retry_after_ms ?? 5000;
    this.onFrame(f);
  }

  /**
   * Sends a request and resolves with its ack's `result` (or null), or
   * rejects with a RequestError (also when the link drops before the reply).
   * @param {Record<string, any>} msg
   * @returns {Promise<any>}
   */
  request(msg) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== 'open') {
        reject(new RequestError({ code: 'offline', message: 'not connected' }));
        return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...msg, req_id: id }));
    });
  }

  /**
   * Gives up on the current socket at once (a dead link may take minutes to
   * report its close) and starts reconnecting.
   */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close(4100, 'link lost');
    } catch {
      // Already closing.
    }
    this.ws = null;
    this.stopPings();
    this.failPending();
    this.closed(1006, '', true);
  }

  failPending() {
    for (const p of this.pending.values()) {
      p.reject(new RequestError({ code: 'offline', message: 'connection lost' }));
    }
    this.pending.clear();
  }

  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastPong > PING_EVERY + PONG_WAIT) {
        // Nothing came back: the link is dead even if the socket says open.
        this.drop();
        return;
      }
      this.ws.send('{"type":"ping"}');
    }, PING_EVERY);
  }

  stopPings() {
    clearInterval(this.pingTimer);
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {boolean} opened whether this attempt got its welcome
   */
  async closed(code, reason, opened) {
    /** @type {Record<number, EndReason>} */
    const final = { 4000: 'session_ended', 4001: 'kicked', 4002: 'replaced', 4009: 'bad_frames' };
    if (code === 1000 && reason === 'left') return this.end('left');
    if (final[code]) return this.end(final[code]);
    if (!opened && !navigator.onLine) return this.retry();
    if (!opened) {
      // Refused before the upgrade: the browser hides the HTTP answer, so
      // ask the server what is wrong with the link.
      const why = await this.diagnose();
      if (why === 'resume_refused') {
        this.resumeToken = null;
      } else if (why) {
        return this.end(why);
      }
    }
    this.retry();
  }

  /**
   * @returns {Promise<EndReason | 'resume_refused' | null>}
   */
  async diagnose() {
    try {
      const r = await fetch(`/api/v1/token-info?token=${encodeURIComponent(this.joinToken)}`);
      if (r.ok) return this.resumeToken ? 'resume_refused' : null;
      const body = await r.json().catch(() => ({}));
      const code = body?.error?.code;
      if (code === 'token_expired') return 'token_expired';
      if (code === 'session_ended') return 'session_ended';
      if (code === 'not_found') return 'not_found';
      if (code === 'unauthorized') return 'invalid_link';
      return null;
    } catch {
      return null;
    }
  }

  retry() {
    this.setState(this.everOpened ? 'reconnecting' : 'connecting');
    const base = this.retryAfter || BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)];
    this.retryAfter = 0;
    this.attempt++;
    const delay = base * (0.7 + Math.random() * 0.6);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  connectNow() {
    if (this.ws) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  /** @param {EndReason} why */
  end(why) {
    this.stopPings();
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.setState('closed', why);
  }

  /**
   * @param {ConnState} s
   * @param {EndReason} [why]
   */
  setState(s, why) {
    if (this.state === s && !why) return;
    this.state = s;
    this.onState(s, why);
  }

  /** Leaves the session on purpose (`leave`), then closes. */
  async leave() {
    try {
      await this.request({ type: 'leave' });
    } catch {
      // Not connected: the grace period will end the attendance interval.
      this.ws?.close(1000);
      this.end('left');
    }
  }
}
