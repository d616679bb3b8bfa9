// The classroom page: stage or grid of video, controls, and the chat, Q&A,
// hands and people panels, with host and moderator tools. The page is built
// once; frames update the parts they change, so what a teacher is typing
// survives reconnects and redraws.

import { h, replace, ask } from './dom.js';
import { t, tx, onLang, sweep, clock } from './i18n.js';
import { Conn, RequestError } from './conn.js';
import { Room } from './room.js';
import { Publisher, Subscriber, MediaWatch } from './media.js';
import { presencePrompt, reportVisibility, pollsPanel, staffPanel, handsPanel, peoplePanel, mediaBanner } from './activities.js';

/**
 * @typedef {import('./room.js').Question} Question
 * @typedef {import('./room.js').Track} Track
 * @typedef {{ stream: MediaStream | null, audioOnly: boolean }} LocalMedia
 */

/**
 * @param {HTMLElement} root
 * @param {{ token: string, local: LocalMedia, onEnd: (why: string) => void }} opts
 */
export function classroom(root, opts) {
  const room = new Room();
  const local = opts.local;
  /** Received tracks by server track id. @type {Map<string, MediaStreamTrack>} */
  const received = new Map();
  /** @type {Publisher | null} */
  let publisher = null;
  /** @type {Subscriber | null} */
  let subscriber = null;
  /** @type {MediaStream | null} */
  let screen = null;
  let micOn = true;
  let camOn = true;
  let audioOnly = local.audioOnly;
  let welcomed = false;

  // ---- layout -----------------------------------------------------------
  const title = h('h1', { class: 'title' });
  const status = h('span', { class: 'status', role: 'status', 'data-state': 'connecting' });
  const count = h('span', { class: 'count' });
  const recBadge = h('span', { class: 'rec', role: 'status', hidden: true });
  const header = h('header', { class: 'room-head' }, [
    title,
    h('div', { class: 'head-meta' }, [recBadge, status, count]),
  ]);
  const notice = h('div', { class: 'notice', role: 'alert' });
  const mediaBox = mediaBanner({ retry: () => retryMedia(), audioOnly: () => audioOnlyAndRetry().catch(warn), isAudioOnly: () => audioOnly });
  // Media that cannot connect: the banner for network trouble; missing
  // devices are already explained in the notice.
  const mediaTrouble = new MediaWatch({
    request: (msg) => conn.request(msg),
    online: () => conn.state === 'open',
    onFail: (reason) => reason !== 'no_devices' && mediaBox.show(),
    onOk: () => mediaBox.hide(),
  });
  const invite = h('div', { class: 'invite', hidden: true });
  const stage = h('section', { class: 'stage', 'aria-label': t('stage.label') });
  tx(stage, 'stage.label', { attr: 'aria-label' });
  const audios = h('div', { class: 'audios', hidden: true });

  const btn = (/** @type {string} */ key, /** @type {() => void} */ fn, cls = '') =>
    tx(h('button', { type: 'button', class: cls, onclick: fn }), key);
  const micBtn = btn('ctl.mic_off', () => toggleMic());
  const camBtn = btn('ctl.cam_off', () => toggleCam());
  const screenBtn = btn('ctl.screen', () => toggleScreen());
  const audioOnlyBtn = btn('ctl.audio_only', () => toggleAudioOnly());
  const handBtn = btn('ctl.raise', () => toggleHand());
  const leaveBtn = btn('ctl.leave', () => leave(), 'leave-btn');
  // Ending the class for everyone looks unlike leaving, stands apart at the
  // end of the row, and asks first.
  const endBtn = btn('ctl.end', () => endSession(), 'danger-solid end-btn');
  const recBtn = btn('rec.start', () => fire({ type: room.recording ? 'record_stop' : 'record_start' }));
  const recPauseBtn = btn('rec.pause', () => fire({ type: room.recording?.paused ? 'record_resume' : 'record_pause' }));
  const controls = h('nav', { class: 'controls' }, [micBtn, camBtn, screenBtn, audioOnlyBtn, handBtn, recBtn, recPauseBtn, leaveBtn, endBtn]);
  tx(controls, 'ctl.label', { attr: 'aria-label' });

  // Panels behind tabs, so a phone shows one at a time.
  const chatPanel = buildChat();
  const qaPanel = buildQa();
  const hands = handsPanel(room, fire);
  const people = peoplePanel(room, fire);
  const presence = presencePrompt(room, send);
  const polls = pollsPanel(room, send);
  const staff = staffPanel(room, send, opts.token);
  const tellVisibility = reportVisibility(room, send);
  const tabs = [
    { key: 'tab.chat', panel: chatPanel.el },
    { key: 'tab.qa', panel: qaPanel.el },
    { key: 'tab.hands', panel: hands.el },
    { key: 'tab.people', panel: people.el },
    { key: 'tab.polls', panel: polls.el },
    { key: 'tab.staff', panel: staff.el },
  ];
  const tablist = h('div', { role: 'tablist', class: 'tabs' });
  const tabButtons = tabs.map((tab, i) => {
    const id = `tab-${i}`;
    tab.panel.id = `panel-${i}`;
    tab.panel.setAttribute('role', 'tabpanel');
    tab.panel.setAttribute('aria-labelledby', id);
    const b = tx(
      h('button', {
        type: 'button',
        role: 'tab',
        id,
        'aria-controls': tab.panel.id,
        onclick: () => selectTab(i),
        onkeydown: (/** @type {KeyboardEvent} */ e) => {
          if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
            const n = (i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length;
            selectTab(n);
            tabButtons[n].focus();
          }
        },
      }),
      tab.key,
    );
    tablist.append(b);
    return b;
  });
  const side = h('aside', { class: 'side' }, [tablist, ...tabs.map((x) => x.panel)]);
  /** @param {number} i */
  function selectTab(i) {
    tabs.forEach((tab, j) => {
      tab.panel.hidden = i !== j;
      tabButtons[j].setAttribute('aria-selected', String(i === j));
      tabButtons[j].tabIndex = i === j ? 0 : -1;
    });
  }

  const main = h('main', { class: 'room' }, [h('div', { class: 'room-main' }, [stage, controls, audios]), side]);
  replace(root, [header, notice, mediaBox.el, presence.el, invite, main]);

  // ---- connection ---------------------------------------------------------
  /** @type {Set<string>} */
  const dirty = new Set();
  let flushTimer = 0;
  /** @param {string[]} parts */
  function changed(parts) {
    for (const p of parts) dirty.add(p);
    if (!flushTimer) flushTimer = window.setTimeout(flush, 30);
  }
  function flush() {
    flushTimer = 0;
    const all = dirty.has('all');
    const d = (/** @type {string} */ p) => all || dirty.has(p);
    if (d('session')) renderSession();
    if (d('count') || d('roster')) renderCount();
    if (d('chat') || d('chat_lock') || d('you') || d('roster')) chatPanel.render(all);
    if (d('questions') || d('you')) qaPanel.render();
    if (d('hands') || d('you') || d('stage')) {
      const n = hands.render();
      tabButtons[2].textContent = n ? `${t('tab.hands')} (${n})` : t('tab.hands');
    }
    if (d('roster') || d('stage') || d('you') || d('speaking') || d('hands')) people.render();
    if (d('tracks') || d('stage') || d('speaking') || d('roster') || d('you')) renderStage();
    if (d('you') || d('stage') || d('hands') || d('tracks')) renderControls();
    if (d('presence') || d('you')) presence.render();
    if (d('recording') || d('you')) renderRecording();
    if (d('polls') || d('you')) {
      polls.render();
      const n = polls.waiting();
      tabButtons[4].textContent = n ? `${t('tab.polls')} (${n})` : t('tab.polls');
    }
    if (d('you')) tabButtons[5].hidden = !room.can('activity.manage');
    dirty.clear();
    sweep();
  }
  onLang(() => changed(['all']));

  const conn = new Conn(opts.token, onFrame, onState);

  /** @param {any} f */
  function onFrame(f) {
    if (f.type === 'media_offer') {
      subscriber?.offer(f.sdp);
      return;
    }
    if (f.type === 'server_shutdown') {
      say(t('note.server_restart'));
      return;
    }
    const before = room.you?.can_publish ?? false;
    const parts = room.apply(f);
    if (parts.length) changed(parts);
    if (f.type.startsWith('presence_')) staff.render(f);
    if (f.type === 'poll_opened' && room.can('activity.respond')) say(t('poll.opened_note'));
    // The server stopped the recording by itself: tell the hosts why.
    if (f.type === 'recording_stopped' && f.by === 'server' && room.can('recording.manage')) {
      if (f.reason === 'disk_full' || f.reason === 'write_failed') say(t(`rec.stopped_${f.reason}`));
    }
    if ((f.type === 'poll_answered' && f.identity === room.you?.identity) || f.type === 'poll_closed') {
      if (notice.textContent === t('poll.opened_note')) say('');
    }
    if ((f.type === 'welcome' || f.type === 'resumed') && document.hidden) tellVisibility();
    if (f.type === 'welcome' || f.type === 'resumed') mediaTrouble.flush();
    if (f.type === 'welcome') {
      const first = !welcomed;
      welcomed = true;
      if (room.ended) return;
      resyncMedia(first, true);
    } else if (f.type === 'resumed') {
      resyncMedia(false, false);
    } else if (f.type === 'you_updated' && before !== (room.you?.can_publish ?? false)) {
      publishRightChanged();
    }
    if (f.type === 'stage_invited' && f.member.identity === room.you?.identity) {
      say(t('note.invited'));
    }
  }

  /**
   * @param {import('./conn.js').ConnState} s
   * @param {string} [why]
   */
  function onState(s, why) {
    status.dataset.state = s;
    tx(status, `conn.${s}`);
    if (s === 'open') say('');
    if (s === 'closed') {
      stopPublishing();
      subscriber?.close();
      mediaTrouble.stop();
      for (const tr of local.stream?.getTracks() ?? []) tr.stop();
      opts.onEnd(why ?? 'left');
    }
  }

  // ---- media --------------------------------------------------------------
  /**
   * After a welcome or resume: receive again from scratch (a `media_offer`
   * sent while we were away is lost), and publish again if the server no
   * longer has our tracks.
   * @param {boolean} first
   * @param {boolean} fresh a welcome (not a resume)
   */
  function resyncMedia(first, fresh) {
    if (!subscriber) subscriber = new Subscriber(conn, room.iceServers, gotTrack, (pc) => mediaTrouble.watch(pc, 'subscriber'));
    subscriber.subscribe({ audioOnly, reset: true }).catch(mediaWarn);
    if (!room.you?.can_publish) {
      stopPublishing();
      return;
    }
    const mine = room.tracks.some((tr) => tr.owner === room.you?.identity);
    const pcDown = publisher && ['failed', 'closed'].includes(publisher.pc.connectionState);
    if (first || !publisher || pcDown || (fresh && !mine)) startPublishing().catch(mediaWarn);
  }

  /** Starts media over: the "reconnect" of the media notice. */
  function retryMedia() {
    subscriber?.subscribe({ audioOnly, reset: true }).catch(mediaWarn);
    const up = publisher?.pc.connectionState === 'connected';
    if (room.you?.can_publish && !up) startPublishing().catch(mediaWarn);
  }

  /** The notice's "audio only": less to carry, then start media over. */
  async function audioOnlyAndRetry() {
    if (!audioOnly) await toggleAudioOnly();
    retryMedia();
  }

  function publishRightChanged() {
    if (room.you?.can_publish) startPublishing().catch(mediaWarn);
    else {
      stopPublishing();
      for (const tr of local.stream?.getTracks() ?? []) tr.stop();
      local.stream = null;
    }
  }

  async function startPublishing() {
    stopPublishing();
    if (!local.stream || local.stream.getTracks().every((tr) => tr.readyState === 'ended')) {
      local.stream = await capture(audioOnly);
    }
    if (!local.stream) {
      mediaTrouble.noDevices();
      return;
    }
    const p = new Publisher(conn, room.iceServers);
    publisher = p;
    mediaTrouble.watch(p.pc, 'publisher');
    for (const tr of local.stream.getAudioTracks()) {
      tr.enabled = micOn;
      p.add(tr, local.stream, 'microphone');
    }
    if (!audioOnly) {
      for (const tr of local.stream.getVideoTracks()) {
        tr.enabled = camOn;
        p.add(tr, local.stream, 'camera');
      }
    }
    if (screen) for (const tr of screen.getVideoTracks()) p.add(tr, screen, 'screen');
    p.pc.addEventListener('connectionstatechange', () => {
      if (p === publisher && p.pc.connectionState === 'failed' && conn.state === 'open') {
        startPublishing().catch(mediaWarn);
      }
    });
    await p.negotiate(true);
    changed(['tracks']);
  }

  function stopPublishing() {
    if (!publisher) return;
    publisher.close();
    publisher = null;
    if (conn.state === 'open') conn.request({ type: 'media_unpublish' }).catch(() => {});
  }

  /**
   * Asks for camera and microphone (or the microphone alone).
   * @param {boolean} audioOnlyNow
   * @returns {Promise<MediaStream | null>}
   */
  async function capture(audioOnlyNow) {
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: !audioOnlyNow });
    } catch (e) {
      say(t(mediaErrorKey(e)));
      return null;
    }
  }

  /**
   * @param {string} id
   * @param {MediaStreamTrack} track
   */
  function gotTrack(id, track) {
    received.set(id, track);
    track.addEventListener('ended', () => {
      if (received.get(id) === track) received.delete(id);
    });
    changed(['tracks']);
  }

  // ---- stage / grid -------------------------------------------------------
  /** Tiles by key (owner, or owner:screen). @type {Map<string, { el: HTMLElement, video: HTMLVideoElement, label: HTMLElement, trackId: string | null }>} */
  const tiles = new Map();
  /** @type {Map<string, HTMLAudioElement>} */
  const audioEls = new Map();

  /**
   * @param {string} key
   * @param {string} name
   * @returns {{ el: HTMLElement, video: HTMLVideoElement, label: HTMLElement, trackId: string | null }}
   */
  function tile(key, name) {
    let x = tiles.get(key);
    if (!x) {
      const video = h('video', { autoplay: true, playsinline: true, muted: true });
      video.muted = true;
      const label = h('span', { class: 'tile-name' });
      const el = h('figure', { class: 'tile', dataset: { key } }, [video, h('figcaption', {}, label)]);
      x = { el, video, label, trackId: null };
      tiles.set(key, x);
    }
    x.label.textContent = name;
    return x;
  }

  /**
   * @param {{ el: HTMLElement, video: HTMLVideoElement, trackId: string | null }} x
   * @param {string | null} trackId
   * @param {MediaStream | null} stream
   */
  function show(x, trackId, stream) {
    if (x.trackId === trackId && x.video.srcObject === stream) return;
    x.trackId = trackId;
    x.video.srcObject = stream;
    x.el.classList.toggle('no-video', !stream);
    if (stream) x.video.play().catch(() => {});
  }

  /** @type {Map<string, MediaStream>} */
  const streams = new Map();
  /** @param {string} id */
  function streamFor(id) {
    const tr = received.get(id);
    if (!tr) return null;
    let s = streams.get(id);
    if (!s || s.getTracks()[0] !== tr) {
      s = new MediaStream([tr]);
      streams.set(id, s);
    }
    return s;
  }

  function renderStage() {
    const me = room.you?.identity;
    const others = room.tracks.filter((tr) => tr.owner !== me);
    // Audio: one element per track, whatever the layout.
    for (const tr of others.filter((x) => x.kind === 'audio')) {
      const s = streamFor(tr.id);
      let a = audioEls.get(tr.id);
      if (!a && s) {
        a = h('audio', { autoplay: true, dataset: { owner: tr.owner } });
        audioEls.set(tr.id, a);
        audios.append(a);
      }
      if (a && s && a.srcObject !== s) {
        a.srcObject = s;
        a.play().catch(() => {});
      }
    }
    for (const [id, a] of audioEls) {
      if (!others.some((tr) => tr.id === id)) {
        a.remove();
        audioEls.delete(id);
      }
    }

    const videoOf = (/** @type {string} */ owner, /** @type {string} */ source) =>
      others.find((tr) => tr.owner === owner && tr.kind === 'video' && tr.source === source);
    /** @type {string[]} */
    const keys = [];
    /** @param {string} owner */
    const personTile = (owner) => {
      if (owner === me) {
        const x = tile(owner, `${room.nameOf(owner)} (${t('you')})`);
        const cam = publisher && !audioOnly && local.stream?.getVideoTracks().length ? local.stream : null;
        show(x, 'local', cam);
        x.el.classList.add('self');
        return x;
      }
      const v = audioOnly ? undefined : videoOf(owner, 'camera');
      const x = tile(owner, room.nameOf(owner));
      show(x, v?.id ?? null, v ? streamFor(v.id) : null);
      return x;
    };

    const kind = room.session?.kind;
    stage.dataset.layout = kind ?? '';
    /** @type {HTMLElement[]} */
    const main = [];
    /** @type {HTMLElement[]} */
    const beside = [];
    if (kind === 'seminar') {
      // Everyone present, with video or a name card; then anyone publishing
      // whom the roster does not show.
      const owners = new Set(room.roster ? [...room.roster.keys()] : []);
      for (const tr of room.tracks) owners.add(tr.owner);
      if (me && room.you?.role !== 'observer') owners.add(me);
      for (const owner of room.tileOrder([...owners])) {
        main.push(personTile(owner).el);
        keys.push(owner);
      }
    } else {
      // Q&A: the screen share large when there is one, else the expert's
      // camera; stage members beside it.
      const share = others.find((tr) => tr.kind === 'video' && tr.source === 'screen');
      const stageIds = new Set(room.stage.members.map((m) => m.identity));
      const speakers = [...new Set(room.tracks.map((tr) => tr.owner))].filter((o) => !stageIds.has(o));
      if (publisher && me && !stageIds.has(me) && !speakers.includes(me)) speakers.push(me);
      if (share) {
        const key = `${share.owner}:screen`;
        const x = tile(key, t('tile.screen', { name: room.nameOf(share.owner) }));
        show(x, share.id, audioOnly ? null : streamFor(share.id));
        main.push(x.el);
        keys.push(key);
      }
      for (const o of room.tileOrder(speakers)) {
        (share ? beside : main).push(personTile(o).el);
        keys.push(o);
      }
      for (const id of room.tileOrder([...stageIds])) {
        beside.push(personTile(id).el);
        keys.push(id);
      }
      if (!main.length) main.push(h('p', { class: 'waiting', text: t('stage.waiting') }));
    }
    for (const [k, x] of tiles) {
      const owner = k.split(':')[0];
      x.el.classList.toggle('speaking', room.speaking.has(owner));
      if (!keys.includes(k)) {
        x.video.srcObject = null;
        tiles.delete(k);
      }
    }
    if (kind === 'seminar') {
      replace(stage, h('div', { class: 'grid', dataset: { n: String(main.length) } }, main));
    } else {
      replace(stage, [h('div', { class: 'stage-main' }, main), beside.length ? h('div', { class: 'stage-side' }, beside) : null]);
    }
  }

  // ---- header, notices, controls -------------------------------------------
  function renderSession() {
    if (!room.session) return;
    title.textContent = room.session.title;
    document.title = `${room.session.title} · Lectern`;
  }

  function renderCount() {
    count.textContent = t('count', { n: room.count });
  }

  /** @param {string} text */
  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  /**
   * A media request refused with `media_failed` (no UDP port free, say) is
   * media that cannot connect: explained and reported like a failed ICE.
   * @param {unknown} e
   */
  function mediaWarn(e) {
    if (e instanceof RequestError && e.code === 'media_failed') mediaTrouble.fail('server_refused');
    warn(e);
  }

  /** @param {unknown} e */
  function warn(e) {
    if (e instanceof RequestError) say(t(`err.${e.code}`) === `err.${e.code}` ? e.message : t(`err.${e.code}`));
    else {
      console.warn(e);
      say(t('err.media'));
    }
  }

  /**
   * Sends a request; a refusal is shown in the notice area.
   * @param {Record<string, any>} msg
   * @returns {Promise<any>}
   */
  async function send(msg) {
    try {
      return await conn.request(msg);
    } catch (e) {
      warn(e);
      throw e;
    }
  }
  /** Sends a request whose answer nobody waits for. @param {Record<string, any>} msg */
  function fire(msg) {
    send(msg).catch(() => {});
  }

  function renderControls() {
    const you = room.you;
    const pub = !!you?.can_publish;
    micBtn.hidden = !pub || !publisher;
    camBtn.hidden = !pub || !publisher || audioOnly;
    tx(micBtn, micOn ? 'ctl.mic_off' : 'ctl.mic_on');
    micBtn.setAttribute('aria-pressed', String(!micOn));
    tx(camBtn, camOn ? 'ctl.cam_off' : 'ctl.cam_on');
    camBtn.setAttribute('aria-pressed', String(!camOn));
    screenBtn.hidden = !pub || !publisher || !canShareScreen();
    tx(screenBtn, screen ? 'ctl.screen_stop' : 'ctl.screen');
    screenBtn.setAttribute('aria-pressed', String(!!screen));
    audioOnlyBtn.setAttribute('aria-pressed', String(audioOnly));
    tx(audioOnlyBtn, audioOnly ? 'ctl.video_back' : 'ctl.audio_only');
    const me = you?.identity ?? '';
    const raised = room.handRaised(me);
    handBtn.hidden = !room.can('hand.raise') || room.onStage(me) || room.invited(me);
    tx(handBtn, raised ? 'ctl.lower' : 'ctl.raise');
    handBtn.setAttribute('aria-pressed', String(raised));
    endBtn.hidden = !room.can('session.end');

    // A pending stage invitation: accept or decline.
    if (room.invited(me)) {
      replace(invite, [
        h('p', { text: t('invite.text') }),
        h('button', { type: 'button', class: 'primary', text: t('invite.accept'), onclick: () => fire({ type: 'stage_accept' }) }),
        h('button', { type: 'button', text: t('invite.decline'), onclick: () => fire({ type: 'stage_decline' }) }),
      ]);
      invite.hidden = false;
    } else if (room.onStage(me)) {
      replace(invite, [
        h('p', { text: t('invite.on_stage') }),
        h('button', { type: 'button', text: t('invite.leave'), onclick: () => fire({ type: 'stage_leave' }) }),
      ]);
      invite.hidden = false;
    } else {
      invite.hidden = true;
    }
  }

  function renderRecording() {
    const r = room.recording;
    recBadge.hidden = !r;
    if (r) tx(recBadge, r.paused ? 'rec.paused' : 'rec.on');
    recBadge.classList.toggle('paused', !!r?.paused);
    const may = room.can('recording.manage');
    recBtn.hidden = !may;
    recPauseBtn.hidden = !may || !r;
    tx(recBtn, r ? 'rec.stop' : 'rec.start');
    tx(recPauseBtn, r?.paused ? 'rec.resume' : 'rec.pause');
  }

  function toggleMic() {
    micOn = !micOn;
    for (const tr of local.stream?.getAudioTracks() ?? []) tr.enabled = micOn;
    changed(['you']);
  }

  function toggleCam() {
    camOn = !camOn;
    for (const tr of local.stream?.getVideoTracks() ?? []) tr.enabled = camOn;
    changed(['you']);
  }

  async function toggleScreen() {
    if (!publisher) return;
    if (screen) {
      for (const tr of screen.getTracks()) {
        publisher.remove(tr);
        tr.stop();
      }
      screen = null;
      await publisher.negotiate(false).catch(warn);
    } else {
      try {
        screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      } catch {
        return;
      }
      const s = screen;
      for (const tr of s.getVideoTracks()) {
        publisher.add(tr, s, 'screen');
        tr.addEventListener('ended', () => {
          if (screen === s) toggleScreen();
        });
      }
      await publisher.negotiate(false).catch(warn);
    }
    changed(['you', 'tracks']);
  }

  async function toggleAudioOnly() {
    audioOnly = !audioOnly;
    if (subscriber) subscriber.subscribe({ audioOnly, reset: false }).catch(warn);
    if (publisher) {
      if (audioOnly) {
        for (const tr of local.stream?.getVideoTracks() ?? []) {
          tr.stop();
          local.stream?.removeTrack(tr);
        }
        await startPublishing().catch(mediaWarn);
      } else {
        const cam = await capture(false);
        if (cam) {
          for (const tr of local.stream?.getTracks() ?? []) tr.stop();
          local.stream = cam;
          await startPublishing().catch(mediaWarn);
        }
      }
    }
    changed(['you', 'tracks']);
  }

  function toggleHand() {
    const me = room.you?.identity ?? '';
    fire({ type: room.handRaised(me) ? 'hand_lower' : 'hand_raise' });
  }

  async function leave() {
    stopPublishing();
    await conn.leave();
  }

  async function endSession() {
    const yes = await ask({ title: t('confirm.end'), text: t('confirm.end_help'), confirm: t('confirm.end_yes'), danger: true });
    if (yes) fire({ type: 'session_end' });
  }

  // ---- chat -----------------------------------------------------------------
  function buildChat() {
    const list = h('ol', { class: 'chat-list', role: 'log', 'aria-live': 'polite' });
    tx(list, 'chat.label', { attr: 'aria-label' });
    const input = h('textarea', { rows: 2, maxlength: 2000, class: 'chat-input' });
    tx(input, 'chat.placeholder', { attr: 'placeholder' });
    tx(input, 'chat.input', { attr: 'aria-label' });
    const sendBtn = tx(h('button', { type: 'submit', class: 'primary' }), 'chat.send');
    const state = h('p', { class: 'hint' });
    const lockBtn = h('button', { type: 'button', onclick: () => fire({ type: 'chat_lock', locked: !room.chatLocked }) });
    const form = h('form', { class: 'chat-form' }, [input, sendBtn]);
    const submit = async () => {
      const text = input.value.trim();
      if (!text) return;
      try {
        await send({ type: 'chat_send', text });
        input.value = '';
      } catch {
        // Kept in the box: nothing typed is lost.
      }
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      submit();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      }
    });
    /** @type {Map<number, HTMLElement>} */
    const items = new Map();
    const none = tx(h('p', { class: 'empty' }), 'chat.none');
    const el = h('div', { class: 'panel chat' }, [none, list, state, form, lockBtn]);
    return {
      el,
      /** @param {boolean} redraw */
      render(redraw) {
        if (redraw) {
          items.clear();
          list.replaceChildren();
        }
        const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
        const ids = new Set(room.chat.map((m) => m.id));
        for (const [id, li] of items) {
          if (!ids.has(id)) {
            li.remove();
            items.delete(id);
          }
        }
        const staff = room.can('chat.moderate');
        for (const m of room.chat) {
          if (items.has(m.id)) continue;
          const mine = m.identity === room.you?.identity;
          const li = h('li', { class: mine ? 'msg mine' : 'msg', dataset: { id: String(m.id) } }, [
            h('span', { class: 'who', text: m.name }),
            h('time', { datetime: m.sent_at, text: clock(m.sent_at) }),
            h('p', { class: 'text', text: m.text }),
            staff
              ? h('button', {
                  type: 'button',
                  class: 'small',
                  text: t('chat.delete'),
                  'aria-label': t('chat.delete_of', { name: m.name }),
                  onclick: () => fire({ type: 'chat_delete', message_id: m.id }),
                })
              : null,
          ]);
          items.set(m.id, li);
          list.append(li);
        }
        if (nearBottom || redraw) list.scrollTop = list.scrollHeight;
        none.hidden = room.chat.length > 0;
        const you = room.you;
        const blocked = you?.chat_muted ? 'chat.muted' : room.chatLocked && !staff ? 'chat.locked' : !room.can('chat.post') ? 'chat.observer' : '';
        state.textContent = blocked ? t(blocked) : room.chatLocked ? t('chat.locked_staff') : '';
        state.hidden = !state.textContent;
        input.disabled = !!blocked;
        sendBtn.disabled = !!blocked;
        lockBtn.hidden = !staff;
        lockBtn.textContent = t(room.chatLocked ? 'chat.unlock' : 'chat.lock');
        lockBtn.setAttribute('aria-pressed', String(room.chatLocked));
      },
    };
  }

  // ---- Q&A --------------------------------------------------------------------
  function buildQa() {
    const input = h('textarea', { rows: 2, maxlength: 2000, class: 'qa-input' });
    tx(input, 'qa.placeholder', { attr: 'placeholder' });
    tx(input, 'qa.input', { attr: 'aria-label' });
    const askBtn = tx(h('button', { type: 'submit', class: 'primary' }), 'qa.ask');
    const form = h('form', { class: 'qa-form' }, [input, askBtn]);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      try {
        await send({ type: 'question_ask', text });
        input.value = '';
      } catch {
        // Kept in the box.
      }
    });
    const pinned = h('div', { class: 'pinned', 'aria-live': 'polite' });
    const open = h('ol', { class: 'questions' });
    const answeredHead = tx(h('h3', { class: 'sub' }), 'qa.answered');
    const answered = h('ol', { class: 'questions answered' });
    /** Items by question id, kept so a reply being typed survives updates. @type {Map<number, { li: HTMLElement, body: HTMLElement, reply: HTMLInputElement }>} */
    const items = new Map();
    const el = h('div', { class: 'panel qa' }, [form, pinned, open, answeredHead, answered]);

    /** @param {Question} q */
    function item(q) {
      let x = items.get(q.id);
      if (!x) {
        const body = h('div', { class: 'q-body' });
        const reply = h('input', { type: 'text', maxlength: 2000, class: 'reply-input' });
        const replyForm = h('form', { class: 'reply-form' }, [reply, h('button', { type: 'submit', text: t('qa.reply') })]);
        replyForm.addEventListener('submit', async (e) => {
          e.preventDefault();
          const text = reply.value.trim();
          if (!text) return;
          try {
            await send({ type: 'question_reply', question_id: q.id, text });
            reply.value = '';
          } catch {
            // Kept.
          }
        });
        const li = h('li', { class: 'question', dataset: { id: String(q.id) } }, [body, replyForm]);
        x = { li, body, reply };
        items.set(q.id, x);
      }
      const staff = room.can('question.moderate');
      const voted = room.myVotes.has(q.id);
      x.reply.setAttribute('aria-label', t('qa.reply_to', { name: q.name }));
      x.reply.placeholder = t('qa.reply_placeholder');
      /** @type {HTMLFormElement} */ (x.reply.form).hidden = !room.can('question.reply') || q.status === 'dismissed';
      const submitBtn = x.reply.form?.querySelector('button');
      if (submitBtn) submitBtn.textContent = t('qa.reply');
      replace(x.body, [
        h('p', { class: 'q-text', text: q.text }),
        h('p', { class: 'q-meta' }, [
          h('span', { class: 'who', text: q.name }),
          ' · ',
          h('span', { class: 'votes', text: t('qa.votes', { n: q.upvotes }) }),
          q.id === room.pinned ? h('strong', { class: 'badge live', text: t('qa.now') }) : null,
          q.status === 'answered' ? h('span', { class: 'badge', text: t('qa.done') }) : null,
        ]),
        h('div', { class: 'q-actions' }, [
          room.can('question.upvote') && q.status === 'open'
            ? h('button', {
                type: 'button',
                class: 'small',
                disabled: voted,
                'aria-pressed': String(voted),
                'aria-label': t('qa.upvote_of', { text: q.text.slice(0, 40) }),
                text: voted ? t('qa.upvoted') : t('qa.upvote'),
                onclick: () => fire({ type: 'question_upvote', question_id: q.id }),
              })
            : null,
          staff && q.status === 'open'
            ? h('button', {
                type: 'button',
                class: 'small',
                text: q.id === room.pinned ? t('qa.unpin') : t('qa.pin'),
                onclick: () => fire({ type: 'question_pin', question_id: q.id === room.pinned ? null : q.id }),
              })
            : null,
          staff && q.status !== 'answered'
            ? h('button', { type: 'button', class: 'small', text: t('qa.answer'), onclick: () => fire({ type: 'question_answer', question_id: q.id }) })
            : null,
          staff ? h('button', { type: 'button', class: 'small', text: t('qa.dismiss'), onclick: () => fire({ type: 'question_dismiss', question_id: q.id }) }) : null,
        ]),
        q.replies.length
          ? h(
              'ul',
              { class: 'replies' },
              q.replies.map((r) => h('li', {}, [h('span', { class: 'who', text: r.name }), ' ', h('span', { text: r.text })])),
            )
          : null,
      ]);
      return x;
    }

    return {
      el,
      render() {
        form.hidden = !room.can('question.ask');
        const qs = room.orderedQuestions();
        const ids = new Set(qs.map((q) => q.id));
        for (const [id, x] of items) {
          if (!ids.has(id)) {
            x.li.remove();
            items.delete(id);
          }
        }
        const p = room.pinned !== null ? room.questions.get(room.pinned) : undefined;
        replace(pinned, p ? [h('span', { class: 'badge live', text: t('qa.now') }), h('p', { text: p.text })] : []);
        pinned.hidden = !p;
        /** @type {HTMLElement[]} */
        const openEls = [];
        /** @type {HTMLElement[]} */
        const doneEls = [];
        for (const q of qs) (q.status === 'answered' ? doneEls : openEls).push(item(q).li);
        reorder(open, openEls);
        reorder(answered, doneEls);
        answeredHead.hidden = !doneEls.length;
        if (!openEls.length) open.append(h('li', { class: 'empty', text: t('qa.none') }));
      },
    };
  }

  // ---- start ------------------------------------------------------------
  // Staff start on the people tab in a seminar, everyone else on chat; a
  // Q&A audience starts on questions.
  selectTab(0);
  conn.start();
  window.addEventListener('pagehide', () => {
    // A closed tab is a dropped link, not a leave: the grace period decides.
    publisher?.pc.close();
    subscriber?.close();
  });
  return {
    room,
    conn,
    /** @param {number} i */
    selectTab,
  };
}

/**
 * Puts `els` into `list` in order, moving only what is out of place (a
 * moved element would lose focus).
 * @param {HTMLElement} list
 * @param {HTMLElement[]} els
 */
function reorder(list, els) {
  for (const c of [...list.children]) if (!els.includes(/** @type {HTMLElement} */ (c))) c.remove();
  els.forEach((el, i) => {
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] ?? null);
  });
}

/**
 * Whether this browser can share a screen. Phone browsers have no
 * `getDisplayMedia` (or, in some WebViews, a placeholder that is not a
 * function): they are not offered the button.
 */
export function canShareScreen() {
  return typeof navigator.mediaDevices?.getDisplayMedia === 'function';
}

/**
 * The message to show for a getUserMedia failure.
 * @param {unknown} e
 */
export function mediaErrorKey(e) {
  const name = e instanceof DOMException ? e.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'media.blocked';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'media.none';
  if (name === 'NotReadableError') return 'media.busy';
  return 'media.failed';
}
