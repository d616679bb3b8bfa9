// The classroom's panels and prompts besides the stage, chat and Q&A: the
// raised-hands queue, the people list (with host and moderator tools),
// presence checks, page visibility, polls, the staff's participation report
// and the banner for media that cannot connect. Each builder returns its
// element and a render function the classroom calls when the room changes.

import { h, replace, saveAs, ask } from './dom.js';
import { t, tx, clock } from './i18n.js';

/**
 * @typedef {import('./room.js').Room} Room
 * @typedef {(msg: Record<string, any>) => Promise<any>} Send
 * @typedef {(msg: Record<string, any>) => void} Fire
 */

/**
 * The "still here?" prompt for participants, with a countdown.
 * @param {Room} room
 * @param {Send} send
 */
export function presencePrompt(room, send) {
  const text = h('p', { class: 'presence-text' });
  const count = h('p', { class: 'hint presence-count', 'aria-live': 'off' });
  const btn = tx(h('button', { type: 'button', class: 'primary big presence-btn' }), 'presence.confirm');
  const el = h('div', { class: 'presence', role: 'alertdialog', 'aria-modal': 'false', hidden: true }, [text, count, btn]);
  el.setAttribute('aria-labelledby', 'presence-title');
  text.id = 'presence-title';
  let timer = 0;
  btn.addEventListener('click', () => {
    const c = room.presenceCheck;
    if (c) send({ type: 'presence_confirm', check_id: c.id }).catch(() => {});
  });
  const tick = () => {
    const c = room.presenceCheck;
    if (!c) return;
    const left = Math.max(0, Math.round((Date.parse(c.deadline) - Date.now()) / 1000));
    count.textContent = t('presence.left', { n: left });
  };
  return {
    el,
    render() {
      const show = !!room.presenceCheck && room.can('activity.respond') && !room.presenceConfirmed;
      const was = !el.hidden;
      el.hidden = !show;
      clearInterval(timer);
      if (show) {
        text.textContent = t('presence.ask');
        tick();
        timer = window.setInterval(tick, 1000);
        if (!was) btn.focus();
      }
    },
  };
}

/**
 * Tells the server when the page is hidden or shown (participants only; a
 * signal stored with attendance, never proof on its own).
 * @param {Room} room
 * @param {Send} send
 */
export function reportVisibility(room, send) {
  const tell = () => {
    if (room.can('activity.respond')) send({ type: 'visibility', hidden: document.hidden }).catch(() => {});
  };
  document.addEventListener('visibilitychange', tell);
  return tell;
}

/**
 * The polls panel: staff create, open and close polls; participants answer.
 * @param {Room} room
 * @param {Send} send
 */
export function pollsPanel(room, send) {
  const el = h('div', { class: 'panel polls' });
  // Staff: the form to create a poll, built once so typing survives redraws.
  const question = h('input', { type: 'text', maxlength: 500, class: 'poll-question' });
  const options = h('textarea', { rows: 3, class: 'poll-options' });
  const multiple = h('input', { type: 'checkbox', class: 'poll-multiple' });
  const correct = h('input', { type: 'text', class: 'poll-correct', inputmode: 'numeric' });
  const limit = h('input', { type: 'number', min: 5, max: 3600, class: 'poll-limit' });
  const form = h('form', { class: 'poll-form' }, [
    tx(h('h3'), 'poll.new'),
    h('label', {}, [tx(h('span'), 'poll.question'), question]),
    h('label', {}, [tx(h('span'), 'poll.options'), options]),
    h('label', { class: 'check' }, [multiple, tx(h('span'), 'poll.multiple')]),
    h('label', {}, [tx(h('span'), 'poll.correct'), correct]),
    h('label', {}, [tx(h('span'), 'poll.limit'), limit]),
    tx(h('button', { type: 'submit', class: 'primary' }), 'poll.create'),
  ]);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const opts = options.value.split('\n').map((o) => o.trim()).filter(Boolean);
    const key = correct.value
      .split(/[,，\s]+/)
      .filter(Boolean)
      .map((n) => Number(n) - 1);
    try {
      await send({
        type: 'poll_create',
        question: question.value,
        options: opts,
        multiple: multiple.checked,
        correct: key.length ? key : null,
        time_limit_secs: limit.value ? Number(limit.value) : null,
      });
      question.value = '';
      options.value = '';
      correct.value = '';
      limit.value = '';
    } catch {
      // Shown by `send`; the form keeps what was typed.
    }
  });
  const list = h('ol', { class: 'poll-list' });
  el.append(form, list);

  /** @param {any} p */
  function item(p) {
    const staff = room.can('activity.manage');
    const mine = room.myPollAnswers.get(p.id);
    const closed = p.status === 'closed';
    const total = p.answers ?? 0;
    /** @type {HTMLElement[]} */
    const rows = p.options.map((/** @type {string} */ o, /** @type {number} */ i) => {
      const isCorrect = (p.correct ?? []).includes(i);
      const n = p.counts?.[i] ?? 0;
      const chosen = mine?.includes(i);
      if (closed) {
        const pct = total ? Math.round((n / total) * 100) : 0;
        return h('li', { class: `result${isCorrect ? ' correct' : ''}${chosen ? ' chosen' : ''}` }, [
          h('span', { class: 'opt', text: o }),
          h('span', { class: 'bar', 'aria-hidden': 'true' }, h('span', { class: 'fill', style: false, dataset: { pct: String(pct) } })),
          h('span', { class: 'n', text: t('poll.count', { n, pct }) }),
          isCorrect ? h('span', { class: 'badge live', text: t('poll.right') }) : null,
          chosen ? h('span', { class: 'badge', text: t('poll.your') }) : null,
        ]);
      }
      const answerable = p.status === 'open' && room.can('activity.respond') && !mine;
      const input = h('input', {
        type: p.multiple ? 'checkbox' : 'radio',
        name: `poll-${p.id}`,
        value: String(i),
        disabled: !answerable,
        checked: !!chosen,
      });
      return h('li', {}, h('label', { class: 'check' }, [input, h('span', { text: o }), staff && isCorrect ? h('span', { class: 'badge live', text: t('poll.right') }) : null]));
    });
    const actions = [];
    if (staff && p.status === 'draft') actions.push(h('button', { type: 'button', class: 'primary small', text: t('poll.open'), onclick: () => send({ type: 'poll_open', poll_id: p.id }).catch(() => {}) }));
    if (staff && p.status === 'open') actions.push(h('button', { type: 'button', class: 'small', text: t('poll.close'), onclick: () => send({ type: 'poll_close', poll_id: p.id }).catch(() => {}) }));
    const answerable = p.status === 'open' && room.can('activity.respond') && !mine;
    const li = h('li', { class: `poll status-${p.status}`, dataset: { id: String(p.id) } }, [
      h('p', { class: 'q-text', text: p.question }),
      h('p', { class: 'q-meta' }, [
        h('span', { class: 'badge', text: t(`poll.status_${p.status}`) }),
        p.graded ? h('span', { class: 'badge', text: t('poll.quiz') }) : null,
        p.closes_at && p.status === 'open' ? h('span', { class: 'hint', text: ` ${t('poll.until', { time: clock(p.closes_at, { seconds: true }) })}` }) : null,
        mine && !closed ? h('span', { class: 'badge live', text: t('poll.answered') }) : null,
      ]),
      h('ul', { class: 'poll-options-list' }, rows),
      answerable
        ? h('button', {
            type: 'button',
            class: 'primary small',
            text: t('poll.submit'),
            onclick: () => {
              const chosen = [...li.querySelectorAll('input:checked')].map((x) => Number(/** @type {HTMLInputElement} */ (x).value));
              if (chosen.length) send({ type: 'poll_answer', poll_id: p.id, choices: chosen }).catch(() => {});
            },
          })
        : null,
      ...actions,
    ]);
    for (const f of li.querySelectorAll('.fill')) /** @type {HTMLElement} */ (f).style.width = `${/** @type {HTMLElement} */ (f).dataset.pct}%`;
    return li;
  }

  return {
    el,
    render() {
      form.hidden = !room.can('activity.manage');
      const polls = [...room.polls.values()].sort((a, b) => b.id - a.id);
      replace(list, polls.length ? polls.map(item) : h('li', { class: 'empty', text: t('poll.none') }));
    },
    /** Open polls the member has not answered (for the tab badge). */
    waiting() {
      return [...room.polls.values()].filter((p) => p.status === 'open' && room.can('activity.respond') && !room.myPollAnswers.has(p.id)).length;
    },
  };
}

/**
 * The staff's tools for presence checks and the participation report.
 * @param {Room} room
 * @param {Send} send
 * @param {string} token the member's join token (authorises the report)
 */
export function staffPanel(room, send, token) {
  const status = h('p', { class: 'hint check-status', role: 'status' });
  const start = tx(h('button', { type: 'button', class: 'primary' }), 'presence.start');
  start.addEventListener('click', () => send({ type: 'presence_check_start', window_secs: 60 }).catch(() => {}));
  const load = tx(h('button', { type: 'button' }), 'report.load');
  const csv = tx(h('button', { type: 'button' }), 'report.csv');
  const table = h('div', { class: 'table-wrap report' });
  let confirmed = 0;
  const sid = () => room.session?.id ?? '';
  const fetchReport = (/** @type {string} */ q) =>
    fetch(`/api/v1/sessions/${encodeURIComponent(sid())}/report${q}`, { headers: { authorization: `Bearer ${token}` } });
  load.addEventListener('click', async () => {
    const r = await fetchReport('').catch(() => null);
    if (!r || !r.ok) {
      replace(table, h('p', { class: 'problem', text: t('report.failed') }));
      return;
    }
    const rows = await r.json();
    const cols = ['report.name', 'report.minutes', 'report.checks', 'report.questions', 'report.replies', 'report.polls', 'report.score'];
    replace(
      table,
      h('table', { class: 'attendance' }, [
        h('thead', {}, h('tr', {}, cols.map((k) => h('th', { scope: 'col', text: t(k) })))),
        h(
          'tbody',
          {},
          rows.map((/** @type {any} */ r) =>
            h('tr', { dataset: { identity: r.identity } }, [
              h('td', { text: r.name || r.identity }),
              h('td', { text: String(r.minutes_present) }),
              h('td', { text: `${r.presence_checks_passed}/${r.presence_checks_passed + r.presence_checks_missed}` }),
              h('td', { text: String(r.questions) }),
              h('td', { text: String(r.replies) }),
              h('td', { text: `${r.poll_correct}/${r.poll_answers}` }),
              h('td', { text: r.score ? `${r.score.total} / ${r.score.max}` : '—' }),
            ]),
          ),
        ),
      ]),
    );
  });
  csv.addEventListener('click', async () => {
    const r = await fetchReport('?format=csv').catch(() => null);
    if (r?.ok) await saveAs(r, `report-${sid()}.csv`);
  });
  const el = h('div', { class: 'panel staff' }, [tx(h('h3'), 'presence.heading'), start, status, tx(h('h3'), 'report.heading'), h('div', { class: 'row' }, [load, csv]), table]);
  return {
    el,
    /** @param {any} [f] the frame that changed things */
    render(f) {
      if (f?.type === 'presence_check_started') confirmed = 0;
      if (f?.type === 'presence_confirmed') confirmed++;
      const c = room.presenceCheck;
      start.disabled = !!c;
      if (c) status.textContent = t('presence.running', { n: confirmed });
      else if (f?.type === 'presence_check_ended') status.textContent = t('presence.result', { passed: f.passed, missed: f.missed });
    },
  };
}

// ---- hands and people -----------------------------------------------------

/**
 * The raised hands, oldest first.
 * @param {Room} room
 * @param {Fire} fire
 */
export function handsPanel(room, fire) {
  const el = h('div', { class: 'list hands-list' });
  return {
    el,
    /** @returns {number} how many hands are up */
    render() {
      const staff = room.can('hand.moderate');
      const hands = [...room.hands].sort((a, b) => a.raised_at.localeCompare(b.raised_at));
      const items = hands.map((hd, i) =>
        h('li', { class: 'hand', dataset: { identity: hd.identity } }, [
          h('span', { class: 'pos', text: `${i + 1}.` }),
          h('span', { class: 'who', text: hd.name }),
          h('time', { datetime: hd.raised_at, text: clock(hd.raised_at) }),
          staff && hd.identity !== room.you?.identity
            ? h('button', {
                type: 'button',
                class: 'small primary',
                text: t('people.invite'),
                'aria-label': t('people.invite_of', { name: hd.name }),
                onclick: () => fire({ type: 'stage_invite', identity: hd.identity }),
              })
            : null,
          staff || hd.identity === room.you?.identity
            ? h('button', {
                type: 'button',
                class: 'small',
                text: t('hands.lower'),
                'aria-label': t('hands.lower_of', { name: hd.name }),
                onclick: () => fire({ type: 'hand_lower', identity: hd.identity }),
              })
            : null,
        ]),
      );
      replace(el, [
        hands.length ? h('ol', { class: 'hand-queue' }, items) : h('p', { class: 'empty', text: t('hands.none') }),
        staff && hands.length ? h('button', { type: 'button', text: t('hands.clear'), onclick: () => fire({ type: 'hands_clear' }) }) : null,
      ]);
      return hands.length;
    },
  };
}

/**
 * Everyone present, with badges (role, reconnecting, on stage, media
 * trouble…) and, for staff, the stage, chat and removal tools.
 * @param {Room} room
 * @param {Fire} fire
 */
export function peoplePanel(room, fire) {
  const el = h('div', { class: 'list people-list' });

  /** @param {import('./room.js').Member} m */
  async function kick(m) {
    const yes = await ask({ title: t('confirm.kick', { name: m.name }), confirm: t('people.kick'), danger: true });
    if (yes) fire({ type: 'kick', identity: m.identity });
  }

  function render() {
    if (!room.roster) {
      replace(el, h('p', { class: 'empty', text: t('people.hidden', { n: room.count }) }));
      return;
    }
    const me = room.you?.identity;
    const isHost = room.you?.role === 'host';
    const members = [...room.roster.values()];
    const lockBtn =
      room.session?.kind === 'seminar' && room.can('stage.manage')
        ? h('button', {
            type: 'button',
            'aria-pressed': String(room.stage.locked),
            text: room.stage.locked ? t('stage.unlock') : t('stage.lock'),
            onclick: () => fire({ type: 'stage_lock', locked: !room.stage.locked }),
          })
        : null;
    replace(el, [
      lockBtn,
      h(
        'ul',
        { class: 'people' },
        members.map((m) => {
          const lower = m.identity !== me && (isHost || m.role === 'participant');
          const manage = room.can('stage.manage') && lower && m.role === 'participant';
          const onStage = room.onStage(m.identity);
          const invited = room.invited(m.identity);
          // Our own link is up: we are reading this.
          const away = !m.connected && m.identity !== me;
          const mediaFailed = room.mediaFailed.get(m.identity);
          return h('li', { class: 'person', dataset: { identity: m.identity } }, [
            h('span', { class: room.speaking.has(m.identity) ? 'who speaking' : 'who', text: m.name }),
            h('span', { class: 'badge', text: t(`role.${m.role}`) }),
            away ? h('span', { class: 'badge warn', text: t('people.away') }) : null,
            mediaFailed !== undefined
              ? h('span', {
                  class: 'badge warn media-failed',
                  text: t('people.media_failed'),
                  title: t(`media.reason.${mediaFailed || 'unknown'}`),
                })
              : null,
            onStage ? h('span', { class: 'badge live', text: t('people.on_stage') }) : null,
            invited ? h('span', { class: 'badge', text: t('people.invited') }) : null,
            room.handRaised(m.identity) ? h('span', { class: 'badge', text: t('people.hand') }) : null,
            m.chat_muted ? h('span', { class: 'badge warn', text: t('people.muted') }) : null,
            h('span', { class: 'actions' }, [
              manage && !onStage && !invited
                ? h('button', { type: 'button', class: 'small', text: t('people.invite'), 'aria-label': t('people.invite_of', { name: m.name }), onclick: () => fire({ type: 'stage_invite', identity: m.identity }) })
                : null,
              manage && (onStage || invited)
                ? h('button', { type: 'button', class: 'small', text: t('people.remove'), 'aria-label': t('people.remove_of', { name: m.name }), onclick: () => fire({ type: 'stage_remove', identity: m.identity }) })
                : null,
              room.can('chat.moderate') && lower
                ? h('button', {
                    type: 'button',
                    class: 'small',
                    text: m.chat_muted ? t('people.unmute') : t('people.mute'),
                    'aria-label': t(m.chat_muted ? 'people.unmute_of' : 'people.mute_of', { name: m.name }),
                    onclick: () => fire({ type: 'chat_mute', identity: m.identity, muted: !m.chat_muted }),
                  })
                : null,
              room.can('participant.kick') && lower
                ? h('button', {
                    type: 'button',
                    class: 'small danger',
                    text: t('people.kick'),
                    'aria-label': t('people.kick_of', { name: m.name }),
                    onclick: () => kick(m),
                  })
                : null,
            ]),
          ]);
        }),
      ),
    ]);
  }

  return { el, render };
}

// ---- media that cannot connect --------------------------------------------

/**
 * The banner for audio and video that cannot connect (a dark tile alone
 * explains nothing): what happened in plain words, and what to try —
 * reconnect, audio only, or ask the school's network administrator.
 * @param {{ retry: () => void, audioOnly: () => void, isAudioOnly: () => boolean }} o
 */
export function mediaBanner(o) {
  const retryBtn = tx(h('button', { type: 'button', class: 'primary media-retry' }), 'medianote.retry');
  const audioBtn = tx(h('button', { type: 'button', class: 'media-audio-only' }), 'medianote.audio_only');
  const closeBtn = tx(h('button', { type: 'button', class: 'media-dismiss' }), 'medianote.dismiss');
  const busy = tx(h('p', { class: 'hint media-busy', hidden: true }), 'medianote.retrying');
  const el = h('section', { class: 'media-notice', role: 'alert', hidden: true }, [
    tx(h('h2', { class: 'media-notice-title' }), 'medianote.title'),
    tx(h('p'), 'medianote.what'),
    h('ul', { class: 'media-notice-tips' }, [tx(h('li'), 'medianote.try_retry'), tx(h('li'), 'medianote.try_audio'), tx(h('li'), 'medianote.try_admin')]),
    busy,
    h('div', { class: 'media-notice-actions' }, [retryBtn, audioBtn, closeBtn]),
  ]);
  /** @param {boolean} on */
  const retrying = (on) => {
    busy.hidden = !on;
    retryBtn.disabled = on;
    audioBtn.disabled = on;
  };
  retryBtn.addEventListener('click', () => {
    retrying(true);
    o.retry();
  });
  audioBtn.addEventListener('click', () => {
    retrying(true);
    o.audioOnly();
  });
  // Closed by the teacher: stays closed until media works again (the page
  // retries a failed publishing connection by itself, and would otherwise
  // show it again each time).
  let dismissed = false;
  closeBtn.addEventListener('click', () => {
    dismissed = true;
    el.hidden = true;
  });
  return {
    el,
    show() {
      if (dismissed) return;
      retrying(false);
      audioBtn.hidden = o.isAudioOnly();
      el.hidden = false;
    },
    hide() {
      dismissed = false;
      retrying(false);
      el.hidden = true;
    },
  };
}
