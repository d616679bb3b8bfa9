// The replay page: a recording played as the class saw it. The main video
// follows the live stage over time (a screen share while there is one, else
// the camera of whoever spoke last), every microphone is heard while its
// track ran, and the chat and questions scroll in step; seekable, with a
// speed control. Reads with a replay token from the link, or with the admin
// key kept by the admin page in this tab.
//
// Every file of a recording is on the recording's clock (a track published
// ten minutes in starts at 600 s in its file), and browsers keep those
// times, so one clock drives every element: each is set to the same time.

import { h, replace } from './dom.js';
import { t, tx, clock } from './i18n.js';

const KEY_STORE = 'lectern.admin_key';
/** How far an element may drift from the clock before it is set again. */
const DRIFT_S = 0.3;
/** A track stays on a moment past its last frame (frames last ~20–40 ms). */
const TAIL_MS = 500;
/**
 * A video comes on this long before its first frame, which it shows until
 * then: a recording's camera starts at its first keyframe, a few hundred ms
 * after the recording, and the page should not open on a black stage.
 */
const LEAD_MS = 1000;

/**
 * The stretch of the recording a track covers, in ms. Recordings made before
 * `start_ms`/`end_ms` were written cover the whole recording.
 * @param {any} tr
 * @param {number} duration
 * @returns {[number, number]}
 */
function spanOf(tr, duration) {
  const lead = tr.kind === 'video' ? LEAD_MS : 0;
  return [Math.max(0, (tr.start_ms ?? 0) - lead), (tr.end_ms ?? duration) + TAIL_MS];
}

/**
 * The video track on the main stage at `ms`, as the live Q&A stage shows
 * it: the screen share running then (the earliest started); else a camera
 * of the staff (hosts, moderators: the expert), or of anyone when no staff
 * camera runs: of those, the camera of whoever spoke last, else the one
 * that started first.
 * @param {any[]} videos tracks, each with `span`
 * @param {any[]} speaks `speaking: true` events in time order
 * @param {number} ms
 * @returns {any | null}
 */
export function mainAt(videos, speaks, ms) {
  const running = videos.filter((tr) => tr.span[0] <= ms && ms < tr.span[1]);
  const byStart = (/** @type {any} */ a, /** @type {any} */ b) => a.span[0] - b.span[0];
  const screens = running.filter((tr) => tr.source === 'screen').sort(byStart);
  // The first share, as the live stage shows the first one published.
  if (screens.length) return screens[0];
  const all = running.filter((tr) => tr.source !== 'screen').sort(byStart);
  const staff = all.filter((tr) => tr.role === 'host' || tr.role === 'moderator');
  const cams = staff.length ? staff : all;
  let speaker = null;
  for (const e of speaks) {
    if (e.offset_ms > ms) break;
    if (cams.some((c) => c.owner === e.identity)) speaker = e.identity;
  }
  return cams.find((c) => c.owner === speaker) ?? cams[0] ?? null;
}

/** @param {number} s */
function mmss(s) {
  const whole = Math.max(0, Math.floor(s));
  const m = Math.floor(whole / 60);
  return `${m}:${String(whole % 60).padStart(2, '0')}`;
}

/** @param {HTMLElement} root */
export async function replayPage(root) {
  const q = new URLSearchParams(location.search);
  const sid = q.get('session') ?? '';
  // A teacher's replay link carries a token; staff come from the admin page.
  const token = q.get('token');
  let key = '';
  try {
    key = sessionStorage.getItem(KEY_STORE) ?? '';
  } catch {
    key = '';
  }
  const bearer = token || key;
  const auth = { headers: { authorization: `Bearer ${bearer}` } };
  const fail = (/** @type {string} */ k) =>
    replace(root, h('main', { class: 'end' }, [tx(h('h1'), k), token ? null : h('p', {}, h('a', { href: '/admin' }, tx(h('span'), 'replay.to_admin')))]));
  if (!bearer) return fail('replay.need_key');
  const base = `/api/v1/sessions/${encodeURIComponent(sid)}/recordings`;
  const listR = await fetch(base, auth).catch(() => null);
  if (!listR?.ok) return fail(listR?.status === 401 ? 'replay.expired' : 'replay.not_found');
  const all = (await listR.json()).filter((/** @type {any} */ r) => r.finished);
  const rid = q.get('recording') ?? all[0]?.id ?? '';
  const rec = all.find((/** @type {any} */ r) => r.id === rid);
  if (!rec) return fail('replay.not_found');
  const tlR = await fetch(`${base}/${encodeURIComponent(rid)}/timeline`, auth).catch(() => null);
  if (!tlR?.ok) return fail('replay.not_found');
  /** @type {any[]} */
  const timeline = await tlR.json();

  /** @type {any[]} */
  const tracks = rec.tracks ?? [];
  const duration = rec.duration_ms ?? 0;
  for (const tr of tracks) tr.span = spanOf(tr, duration);
  const videos = tracks.filter((x) => x.kind === 'video');
  const audios = tracks.filter((x) => x.kind === 'audio');
  if (!videos.length && !audios.length) return fail('replay.empty');
  const speaks = timeline.filter((e) => e.type === 'speaking' && e.speaking);

  /** @type {Map<any, HTMLVideoElement | HTMLAudioElement>} */
  const els = new Map();
  for (const tr of videos) {
    const v = /** @type {HTMLVideoElement} */ (
      h('video', { playsinline: true, muted: true, preload: 'auto', class: 'replay-video', hidden: true, dataset: { track: tr.track_id, source: tr.source, owner: tr.owner } })
    );
    v.muted = true;
    tx(v, 'replay.video', { attr: 'aria-label' });
    els.set(tr, v);
  }
  for (const tr of audios) els.set(tr, /** @type {HTMLAudioElement} */ (h('audio', { preload: 'auto', dataset: { track: tr.track_id, owner: tr.owner } })));
  // A media element cannot send the credential as a header, so the files
  // take a session token in the URL and stream with range requests. Staff
  // signed in with the admin key (which never goes into a URL) get a
  // replay token for that.
  let mediaToken = token;
  if (!mediaToken) {
    const r = await fetch(`/api/v1/sessions/${encodeURIComponent(sid)}/replay-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: JSON.stringify({ identity: 'admin', name: 'admin', ttl_seconds: 12 * 3600 }),
    }).catch(() => null);
    if (!r?.ok) return fail('replay.not_found');
    mediaToken = (await r.json()).token;
  }
  const broken = h('p', { class: 'notice', role: 'alert', hidden: true });
  tx(broken, 'replay.file_error');
  for (const [tr, el] of els) {
    el.addEventListener('error', () => (broken.hidden = false));
    el.src = `${tr.url}?token=${encodeURIComponent(mediaToken ?? '')}`;
  }
  const noVideo = h('p', { class: 'waiting replay-no-video' });
  tx(noVideo, 'replay.no_video');

  // The clock: `pos` ms at `since` (performance.now()), moving at `rate`
  // while playing.
  let pos = 0;
  let since = performance.now();
  let playing = false;
  let rate = 1;
  const now = () => (playing ? Math.min(duration, pos + (performance.now() - since) * rate) : pos);

  /** Puts every element where the clock is; `jump` after a seek, play or pause. */
  const sync = (jump = false) => {
    const ms = now();
    const main = mainAt(videos, speaks, ms);
    for (const [tr, el] of els) {
      const on = tr.kind === 'video' ? tr === main : tr.span[0] <= ms && ms < tr.span[1];
      if (tr.kind === 'video') el.hidden = !on;
      if (!on) {
        if (!el.paused) el.pause();
        continue;
      }
      if (jump || Math.abs(el.currentTime - ms / 1000) > DRIFT_S * Math.max(1, rate)) el.currentTime = ms / 1000;
      if (el.playbackRate !== rate) el.playbackRate = rate;
      if (playing && el.paused) el.play().catch(() => {});
      if (!playing && !el.paused) el.pause();
    }
    // No video at this moment (or none at all): say so, sound goes on.
    noVideo.hidden = main !== null;
  };

  const playBtn = h('button', { class: 'play', type: 'button', onclick: () => (playing ? pause() : play()) });
  const seek = /** @type {HTMLInputElement} */ (
    h('input', {
      type: 'range',
      class: 'replay-seek',
      min: '0',
      max: String(duration / 1000),
      step: '0.1',
      value: '0',
      oninput: () => {
        dragging = true;
        seekTo(Number(seek.value) * 1000);
      },
      onchange: () => (dragging = false),
    })
  );
  // While the slider is being moved, the clock does not move it back.
  let dragging = false;
  tx(seek, 'replay.position', { attr: 'aria-label' });
  const timeText = h('span', { class: 'replay-time' });
  const speed = /** @type {HTMLSelectElement} */ (
    h(
      'select',
      {
        class: 'speed',
        onchange: () => {
          pos = now();
          since = performance.now();
          rate = Number(speed.value);
          sync(true);
        },
      },
      ['0.75', '1', '1.25', '1.5', '2'].map((v) => h('option', { value: v, text: `${v}×` })),
    )
  );
  speed.value = '1';
  tx(speed, 'replay.speed', { attr: 'aria-label' });
  const player = h('div', { class: 'replay-player', dataset: { ms: '0' } });

  const paintControls = () => {
    const ms = now();
    tx(playBtn, playing ? 'replay.pause' : 'replay.play');
    if (!dragging) seek.value = String(Math.round(ms / 100) / 10);
    timeText.textContent = `${mmss(ms / 1000)} / ${mmss(duration / 1000)}`;
    player.dataset.ms = String(Math.round(ms));
    player.dataset.playing = String(playing);
  };
  function play() {
    if (now() >= duration) pos = 0;
    since = performance.now();
    playing = true;
    last = pos / 1000;
    sync(true);
    paintControls();
  }
  function pause() {
    track(); // the stretch played since the last tick
    pos = now();
    playing = false;
    sync(true);
    paintControls();
    report();
  }
  /** @param {number} ms */
  function seekTo(ms) {
    track(); // the stretch played before the jump counts
    pos = Math.max(0, Math.min(duration, ms));
    since = performance.now();
    last = playing ? pos / 1000 : null;
    sync(true);
    render();
    paintControls();
  }

  const chat = h('ol', { class: 'chat-list replay-chat', 'aria-live': 'polite' });
  tx(chat, 'chat.label', { attr: 'aria-label' });
  let shownKey = '';
  const render = () => {
    const ms = now();
    const past = timeline.filter((e) => e.offset_ms <= ms);
    // A message deleted by then is gone from the replay too.
    const deleted = new Set(past.filter((e) => e.type === 'chat_deleted').map((e) => e.message_id));
    const due = past.filter((e) => (e.type === 'chat_message' && !deleted.has(e.message.id)) || e.type === 'question_asked');
    const k = due.map((e) => e.seq).join(',');
    if (k === shownKey) return;
    shownKey = k;
    replace(
      chat,
      due.map((e) => {
        const m = e.message ?? e.question;
        return h('li', { class: e.type === 'question_asked' ? 'msg question' : 'msg', dataset: { offset: String(e.offset_ms) } }, [
          h('span', { class: 'who', text: m.name }),
          h('time', { datetime: m.sent_at ?? m.asked_at, text: clock(m.sent_at ?? m.asked_at) }),
          h('p', { class: 'text', text: e.type === 'question_asked' ? `${t('replay.question')}${m.text}` : m.text }),
        ]);
      }),
    );
    chat.scrollTop = chat.scrollHeight;
  };

  // Watched time: stretches of the clock actually played (not just
  // opened), reported with the replay token every 15 s, on pause, and when
  // the page hides.
  /** @type {[number, number][]} */
  let pending = [];
  /** @type {number | null} */
  let last = null;
  const track = () => {
    const s = now() / 1000;
    if (playing && last !== null && s > last && s - last < 1.5 * rate) {
      const tail = pending[pending.length - 1];
      if (tail && Math.abs(tail[1] - last) < 0.01) tail[1] = s;
      else pending.push([last, s]);
    }
    last = playing ? s : null;
  };
  const report = () => {
    if (!token) return;
    const ranges = pending.filter(([a, b]) => b - a >= 0.25);
    if (!ranges.reduce((n, [a, b]) => n + b - a, 0)) return;
    pending = [];
    fetch(`${base}/${encodeURIComponent(rid)}/watched`, {
      method: 'POST',
      keepalive: true,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ranges }),
    }).catch(() => {
      pending = ranges.concat(pending);
    });
  };

  setInterval(() => {
    if (playing && now() >= duration) {
      track();
      pause();
    }
    track();
    sync();
    render();
    paintControls();
  }, 250);
  setInterval(report, 15000);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) report();
  });
  window.addEventListener('pagehide', report);

  replace(player, [
    h('div', { class: 'replay-stage' }, [...videos.map((tr) => els.get(tr)), noVideo]),
    h('div', { class: 'replay-controls' }, [playBtn, seek, timeText, h('label', { class: 'check' }, [tx(h('span'), 'replay.speed'), speed])]),
    broken,
    ...audios.map((tr) => els.get(tr)),
  ]);
  replace(
    root,
    h('main', { class: 'replay' }, [
      tx(h('h1'), 'replay.heading'),
      h('p', { class: 'hint', text: `${rid} · ${mmss(duration / 1000)}` }),
      h('div', { class: 'room' }, [h('div', { class: 'room-main' }, [player]), h('aside', { class: 'side' }, [tx(h('h2'), 'tab.chat'), chat])]),
    ]),
  );
  sync(true);
  render();
  paintControls();
}
