// The replay page: a recording's main video (the screen share while there
// is one, else the camera) with the chat and questions scrolling in step,
// seekable, with a speed control. Reads with the admin key kept by the
// admin page in this tab.

import { h, replace, clock } from './dom.js';
import { t, tx } from './i18n.js';

const KEY_STORE = 'lectern.admin_key';

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
  const timeline = await tlR.json();

  /** @type {any[]} */
  const tracks = rec.tracks ?? [];
  const videoTrack = tracks.find((x) => x.source === 'screen') ?? tracks.find((x) => x.kind === 'video');
  const main = h('video', { controls: true, playsinline: true, preload: 'metadata', class: 'replay-video' });
  tx(main, 'replay.video', { attr: 'aria-label' });
  // The main element carries a video if there is one, else the first audio.
  const lead = videoTrack ?? tracks.find((x) => x.kind === 'audio');
  if (!lead) return fail('replay.empty');
  const others = tracks.filter((x) => x !== lead && x.kind === 'audio');
  /** @type {HTMLAudioElement[]} */
  const followers = others.map(() => h('audio', { preload: 'auto' }));
  // A media element cannot send the admin key with its requests, so each
  // file is fetched with it and played from memory. (Players that can send
  // the key use the same URLs with range requests.)
  const load = async (/** @type {HTMLMediaElement} */ el, /** @type {string} */ url) => {
    const r = await fetch(url, auth);
    el.src = URL.createObjectURL(await r.blob());
  };
  await Promise.all([load(main, lead.url), ...followers.map((a, i) => load(a, others[i].url))]);
  const sync = () => {
    for (const a of followers) {
      if (Math.abs(a.currentTime - main.currentTime) > 0.3) a.currentTime = main.currentTime;
      a.playbackRate = main.playbackRate;
      if (main.paused) a.pause();
      else a.play().catch(() => {});
    }
  };
  for (const ev of ['play', 'pause', 'seeked', 'ratechange']) main.addEventListener(ev, sync);

  const speed = h(
    'select',
    { class: 'speed', onchange: () => (main.playbackRate = Number(speed.value)) },
    ['0.75', '1', '1.25', '1.5', '2'].map((v) => h('option', { value: v, text: `${v}×` })),
  );
  speed.value = '1';
  tx(speed, 'replay.speed', { attr: 'aria-label' });
  const chat = h('ol', { class: 'chat-list replay-chat', 'aria-live': 'polite' });
  tx(chat, 'chat.label', { attr: 'aria-label' });
  const shown = new Set();
  let shownKey = '';
  const render = () => {
    const now = main.currentTime * 1000;
    const past = timeline.filter((/** @type {any} */ e) => e.offset_ms <= now);
    // A message deleted by then is gone from the replay too.
    const deleted = new Set(past.filter((/** @type {any} */ e) => e.type === 'chat_deleted').map((/** @type {any} */ e) => e.message_id));
    const due = past.filter((/** @type {any} */ e) => (e.type === 'chat_message' && !deleted.has(e.message.id)) || e.type === 'question_asked');
    const key = due.map((/** @type {any} */ e) => e.seq).join(',');
    if (key === shownKey) return;
    shownKey = key;
    shown.clear();
    replace(
      chat,
      due.map((/** @type {any} */ e) => {
        shown.add(e.seq);
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
  main.addEventListener('timeupdate', render);
  main.addEventListener('seeked', render);

  // Watched time: stretches actually played (not just opened), reported
  // with the replay token every 15 s, on pause, and when the page hides.
  /** @type {[number, number][]} */
  let pending = [];
  /** @type {number | null} */
  let last = null;
  main.addEventListener('timeupdate', () => {
    const now = main.currentTime;
    if (!main.paused && last !== null && now > last && now - last < 1.5 * main.playbackRate) {
      const tail = pending[pending.length - 1];
      if (tail && Math.abs(tail[1] - last) < 0.01) tail[1] = now;
      else pending.push([last, now]);
    }
    last = main.paused ? null : now;
  });
  main.addEventListener('seeking', () => (last = null));
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
  setInterval(report, 15000);
  main.addEventListener('pause', report);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) report();
  });
  window.addEventListener('pagehide', report);
  replace(
    root,
    h('main', { class: 'replay' }, [
      tx(h('h1'), 'replay.heading'),
      h('p', { class: 'hint', text: `${rid} · ${Math.round((rec.duration_ms ?? 0) / 1000)} s` }),
      h('div', { class: 'room' }, [
        h('div', { class: 'room-main' }, [main, h('label', { class: 'check' }, [tx(h('span'), 'replay.speed'), speed]), ...followers]),
        h('aside', { class: 'side' }, [tx(h('h2'), 'tab.chat'), chat]),
      ]),
    ]),
  );
  render();
}
