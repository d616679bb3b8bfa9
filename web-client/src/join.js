// The join page: read the link, greet the member, and for those who may
// publish, a device check (preview, microphone level, device choice, "join
// with audio only") before entering the classroom.

import { h, replace } from './dom.js';
import { t, tx, onLang } from './i18n.js';
import { mediaErrorKey } from './classroom.js';

/**
 * @typedef {{ session: { id: string, title: string, kind: 'qa' | 'seminar', status: string }, identity: string, name: string, role: string, expires_at: string }} TokenInfo
 * @typedef {{ stream: MediaStream | null, audioOnly: boolean }} LocalMedia
 */

/**
 * Reads what the link is for. Resolves with the info, or with an error key.
 * @param {string} token
 * @returns {Promise<{ info?: TokenInfo, error?: string }>}
 */
export async function lookUp(token) {
  try {
    const r = await fetch(`/api/v1/token-info?token=${encodeURIComponent(token)}`);
    if (r.ok) return { info: await r.json() };
    const body = await r.json().catch(() => ({}));
    const code = body?.error?.code;
    return { error: `end.${code === 'unauthorized' || code === 'bad_request' ? 'invalid_link' : code ?? 'invalid_link'}` };
  } catch {
    return { error: 'end.network' };
  }
}

/**
 * Whether this member may send audio and video on entering. Participants
 * in a Q&A publish only once invited to the stage (asked for then).
 * @param {TokenInfo} info
 */
export function mayPublish(info) {
  if (info.role === 'host' || info.role === 'moderator') return true;
  return info.role === 'participant' && info.session.kind === 'seminar';
}

/**
 * Shows the join page and resolves when the member presses "join".
 * @param {HTMLElement} root
 * @param {TokenInfo} info
 * @returns {Promise<LocalMedia>}
 */
export function joinPage(root, info) {
  const publish = mayPublish(info);
  /** @type {MediaStream | null} */
  let stream = null;
  let audioOnly = false;
  /** @type {AudioContext | null} */
  let audioCtx = null;
  let meterFrame = 0;

  const heading = h('h1', { text: info.session.title });
  const who = h('p', { class: 'lead' });
  const kind = tx(h('p', { class: 'hint' }), `kind.${info.session.kind}`);
  const greet = () => {
    who.textContent = t('join.as', { name: info.name, role: t(`role.${info.role}`) });
  };
  greet();
  onLang(greet);
  const problem = h('div', { class: 'problem', role: 'alert', hidden: true });
  const preview = h('video', { autoplay: true, playsinline: true, muted: true, class: 'preview' });
  preview.muted = true;
  tx(preview, 'join.preview', { attr: 'aria-label' });
  const meter = h('meter', { min: 0, max: 1, value: 0, class: 'meter' });
  tx(meter, 'join.mic_level', { attr: 'aria-label' });
  const camSelect = h('select', { class: 'cam-select' });
  const micSelect = h('select', { class: 'mic-select' });
  const camLabel = h('label', {}, [tx(h('span'), 'join.camera'), camSelect]);
  const micLabel = h('label', {}, [tx(h('span'), 'join.microphone'), micSelect]);
  const audioOnlyBox = h('input', { type: 'checkbox', class: 'audio-only' });
  const audioOnlyLabel = h('label', { class: 'check' }, [audioOnlyBox, tx(h('span'), 'join.audio_only')]);
  const joinBtn = tx(h('button', { type: 'button', class: 'primary big join-btn' }), 'join.enter');
  // A small preview beside (wide screens) or above (phones) the choices, so
  // the join button stays in the first screen.
  const check = h('section', { class: 'device-check', hidden: !publish }, [
    tx(h('h2'), 'join.check'),
    preview,
    h('div', { class: 'check-controls' }, [h('div', { class: 'meter-row' }, [tx(h('span'), 'join.mic_level'), meter]), camLabel, micLabel, audioOnlyLabel]),
  ]);
  replace(root, h('main', { class: 'join' }, [heading, kind, who, problem, check, joinBtn]));

  /** @param {string} key */
  function showProblem(key) {
    replace(problem, [h('p', { text: t(key) }), key === 'media.blocked' ? h('p', { class: 'hint', text: t('media.blocked_help') }) : null]);
    problem.hidden = false;
  }

  function stopStream() {
    for (const tr of stream?.getTracks() ?? []) tr.stop();
    stream = null;
    cancelAnimationFrame(meterFrame);
    audioCtx?.close().catch(() => {});
    audioCtx = null;
  }

  async function start() {
    stopStream();
    problem.hidden = true;
    /** @type {MediaStreamConstraints} */
    const want = {
      audio: micSelect.value ? { deviceId: { exact: micSelect.value } } : true,
      video: audioOnly ? false : camSelect.value ? { deviceId: { exact: camSelect.value } } : true,
    };
    try {
      stream = await navigator.mediaDevices.getUserMedia(want);
    } catch (e) {
      showProblem(mediaErrorKey(e));
      // Try the microphone alone, so a broken camera does not keep anyone out.
      if (!audioOnly) {
        try {
          stream = await navigator.mediaDevices.getUserMedia({ audio: true });
          audioOnly = true;
          audioOnlyBox.checked = true;
        } catch {
          stream = null;
        }
      }
    }
    preview.srcObject = stream && stream.getVideoTracks().length ? stream : null;
    preview.hidden = !preview.srcObject;
    if (stream) {
      meterOn(stream);
      await listDevices();
    }
  }

  /** @param {MediaStream} s */
  function meterOn(s) {
    if (!s.getAudioTracks().length) return;
    try {
      audioCtx = new AudioContext();
      const an = audioCtx.createAnalyser();
      an.fftSize = 512;
      audioCtx.createMediaStreamSource(s).connect(an);
      const buf = new Float32Array(an.fftSize);
      const tick = () => {
        an.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const v of buf) sum += v * v;
        meter.value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
        meterFrame = requestAnimationFrame(tick);
      };
      tick();
    } catch {
      // No Web Audio: the meter stays still; joining still works.
    }
  }

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
    /**
     * @param {HTMLSelectElement} sel
     * @param {string} kind
     * @param {MediaStreamTrack | undefined} current
     */
    const fill = (sel, kind, current) => {
      const list = devices.filter((d) => d.kind === kind);
      const now = current?.getSettings().deviceId ?? sel.value;
      replace(
        sel,
        list.map((d, i) => h('option', { value: d.deviceId, text: d.label || `${t(kind === 'videoinput' ? 'join.camera' : 'join.microphone')} ${i + 1}` })),
      );
      if (now) sel.value = now;
    };
    fill(camSelect, 'videoinput', stream?.getVideoTracks()[0]);
    fill(micSelect, 'audioinput', stream?.getAudioTracks()[0]);
    camLabel.hidden = audioOnly;
  }

  camSelect.addEventListener('change', () => start());
  micSelect.addEventListener('change', () => start());
  audioOnlyBox.addEventListener('change', () => {
    audioOnly = audioOnlyBox.checked;
    start();
  });

  if (publish) {
    if (!navigator.mediaDevices?.getUserMedia) showProblem('media.insecure');
    else start();
  }

  return new Promise((resolve) => {
    joinBtn.addEventListener('click', () => {
      cancelAnimationFrame(meterFrame);
      audioCtx?.close().catch(() => {});
      resolve({ stream, audioOnly });
    });
  });
}
