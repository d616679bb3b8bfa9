// The admin page: with the admin key, create sessions, make join links for
// each role, see who is present, read attendance and download it as CSV.

import { h, replace, copyText, saveAs } from './dom.js';
import { t, tx, onLang, clock } from './i18n.js';

const KEY_STORE = 'lectern.admin_key';

/** @param {HTMLElement} root */
export function adminPage(root) {
  let key = '';
  try {
    key = sessionStorage.getItem(KEY_STORE) ?? '';
  } catch {
    key = '';
  }
  /** @type {any[]} */
  let sessions = [];
  /** @type {string | null} */
  let openId = null;
  /** Links made on this page, by session, kept across refreshes. @type {Map<string, { role: string, name: string, url: string }[]>} */
  const made = new Map();

  const notice = h('div', { class: 'notice', role: 'alert', hidden: true });
  const keyInput = h('input', { type: 'password', autocomplete: 'off', class: 'key-input', value: key });
  tx(keyInput, 'admin.key', { attr: 'aria-label' });
  const keyForm = h('form', { class: 'row' }, [
    h('label', {}, [tx(h('span'), 'admin.key'), keyInput]),
    tx(h('button', { type: 'submit', class: 'primary' }), 'admin.sign_in'),
  ]);
  keyForm.addEventListener('submit', (e) => {
    e.preventDefault();
    key = keyInput.value.trim();
    try {
      sessionStorage.setItem(KEY_STORE, key);
    } catch {
      // Not kept across reloads; fine.
    }
    load();
  });

  const titleInput = h('input', { type: 'text', required: true, maxlength: 200, class: 'title-input' });
  const kindSelect = h('select', { class: 'kind-select' }, [h('option', { value: 'seminar' }), h('option', { value: 'qa' })]);
  tx(kindSelect.options[0], 'kind.seminar');
  tx(kindSelect.options[1], 'kind.qa');
  const startInput = h('input', { type: 'datetime-local', class: 'start-input' });
  const endInput = h('input', { type: 'datetime-local', class: 'end-input' });
  const createForm = h('form', { class: 'create' }, [
    tx(h('h2'), 'admin.new'),
    h('label', {}, [tx(h('span'), 'admin.title'), titleInput]),
    h('label', {}, [tx(h('span'), 'admin.kind'), kindSelect]),
    h('label', {}, [tx(h('span'), 'admin.start'), startInput]),
    h('label', {}, [tx(h('span'), 'admin.end'), endInput]),
    tx(h('button', { type: 'submit', class: 'primary' }), 'admin.create'),
  ]);
  createForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    /** @type {Record<string, any>} */
    const body = { title: titleInput.value.trim(), kind: kindSelect.value };
    if (startInput.value) body.scheduled_start = new Date(startInput.value).toISOString();
    if (endInput.value) body.scheduled_end = new Date(endInput.value).toISOString();
    const s = await call('POST', '/sessions', body);
    if (s) {
      titleInput.value = '';
      openId = s.id;
      await load();
    }
  });

  const list = h('div', { class: 'sessions' });
  const detail = h('section', { class: 'detail', hidden: true });
  replace(root, h('main', { class: 'admin' }, [tx(h('h1'), 'admin.heading'), notice, keyForm, createForm, list, detail]));
  onLang(() => {
    renderList();
    if (openId) openSession(openId);
  });

  /** @param {string} text */
  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  /**
   * Calls the REST API with the key; shows errors and returns null on failure.
   * @param {string} method
   * @param {string} path
   * @param {any} [body]
   * @param {boolean} [raw] return the Response (for CSV)
   */
  async function call(method, path, body, raw = false) {
    say('');
    try {
      const r = await fetch(`/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!r.ok) {
        const e = await r.json().catch(() => ({}));
        const code = e?.error?.code ?? 'internal';
        say(code === 'unauthorized' ? t('admin.bad_key') : `${t('admin.failed')} ${e?.error?.message ?? r.status}`);
        return null;
      }
      return raw ? r : r.json();
    } catch {
      say(t('end.network'));
      return null;
    }
  }

  async function load() {
    if (!key) return;
    const s = await call('GET', '/sessions');
    if (!s) return;
    sessions = s;
    renderList();
    if (openId) openSession(openId);
  }

  function renderList() {
    const rows = [...sessions].sort((a, b) => b.created_at.localeCompare(a.created_at));
    replace(list, [
      tx(h('h2'), 'admin.sessions'),
      rows.length
        ? h(
            'ul',
            { class: 'session-list' },
            rows.map((s) =>
              h('li', { dataset: { id: s.id } }, [
                h('button', { type: 'button', class: 'link', text: s.title, onclick: () => openSession(s.id) }),
                h('span', { class: 'badge', text: t(`kind.${s.kind}`) }),
                h('span', { class: `badge status-${s.status}`, text: t(`status.${s.status}`) }),
              ]),
            ),
          )
        : h('p', { class: 'empty', text: t('admin.no_sessions') }),
    ]);
  }

  /** @param {string} id */
  async function openSession(id) {
    openId = id;
    const s = sessions.find((x) => x.id === id) ?? (await call('GET', `/sessions/${id}`));
    if (!s) return;
    const [present, attendance, recordings] = await Promise.all([
      call('GET', `/sessions/${id}/participants`),
      call('GET', `/sessions/${id}/attendance`),
      call('GET', `/sessions/${id}/recordings`),
    ]);
    const live = s.status !== 'ended';

    const identity = h('input', { type: 'text', required: true, maxlength: 128, class: 'identity-input' });
    const name = h('input', { type: 'text', required: true, maxlength: 64, class: 'name-input' });
    const role = h('select', { class: 'role-select' }, ['host', 'moderator', 'participant', 'observer'].map((r) => h('option', { value: r, text: t(`role.${r}`) })));
    role.value = 'participant';
    const links = h('ul', { class: 'links' });
    const linkForm = h('form', { class: 'link-form' }, [
      h('label', {}, [tx(h('span'), 'admin.identity'), identity]),
      h('label', {}, [tx(h('span'), 'admin.name'), name]),
      h('label', {}, [tx(h('span'), 'admin.role'), role]),
      tx(h('button', { type: 'submit', class: 'primary' }), 'admin.make_link'),
    ]);
    linkForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const r = await call('POST', `/sessions/${id}/tokens`, { identity: identity.value.trim(), name: name.value.trim(), role: role.value });
      if (!r) return;
      const list = made.get(id) ?? [];
      list.unshift({ role: role.value, name: name.value.trim(), url: r.join_url });
      made.set(id, list);
      links.prepend(linkItem(list[0]));
      identity.value = '';
      name.value = '';
    });

    for (const l of made.get(id) ?? []) links.append(linkItem(l));

    const csv = h('button', {
      type: 'button',
      text: t('admin.csv'),
      onclick: async () => {
        const r = await call('GET', `/sessions/${id}/attendance?format=csv`, undefined, true);
        if (r) await saveAs(r, `attendance-${id}.csv`);
      },
    });
    const reportCsv = h('button', {
      type: 'button',
      text: t('admin.report_csv'),
      onclick: async () => {
        const r = await call('GET', `/sessions/${id}/report?format=csv`, undefined, true);
        if (r) await saveAs(r, `report-${id}.csv`);
      },
    });
    const minutes = (/** @type {number} */ sec) => (sec / 60).toFixed(1);
    replace(detail, [
      h('h2', { text: s.title }),
      h('p', { class: 'hint', text: `${t(`kind.${s.kind}`)} · ${t(`status.${s.status}`)} · ${s.id}` }),
      live ? h('div', {}, [tx(h('h3'), 'admin.links'), linkForm, links]) : null,
      tx(h('h3'), 'admin.present'),
      present && present.some((/** @type {any} */ p) => p.present)
        ? h(
            'ul',
            { class: 'present' },
            present.filter((/** @type {any} */ p) => p.present).map((/** @type {any} */ p) => h('li', {}, [h('span', { text: p.name }), ' ', h('span', { class: 'badge', text: t(`role.${p.role}`) })])),
          )
        : h('p', { class: 'empty', text: t('admin.nobody') }),
      h('div', { class: 'row' }, [tx(h('h3'), 'admin.attendance'), csv, reportCsv, h('button', { type: 'button', text: t('admin.refresh'), onclick: () => load() })]),
      attendance && attendance.length
        ? h('div', { class: 'table-wrap' }, [
            h('table', { class: 'attendance' }, [
              h('thead', {}, h('tr', {}, ['admin.col_name', 'admin.col_identity', 'admin.col_role', 'admin.col_first', 'admin.col_minutes', 'admin.col_late', 'admin.col_present'].map((k) => h('th', { scope: 'col', text: t(k) })))),
              h(
                'tbody',
                {},
                attendance.map((/** @type {any} */ r) =>
                  h('tr', {}, [
                    h('td', { text: r.name }),
                    h('td', { text: r.identity }),
                    h('td', { text: t(`role.${r.role}`) }),
                    h('td', { text: clock(r.first_joined_at) }),
                    h('td', { text: minutes(r.total_seconds) }),
                    h('td', { text: r.late_seconds === null ? '—' : minutes(r.late_seconds) }),
                    h('td', { text: r.present ? t('admin.yes') : t('admin.no') }),
                  ]),
                ),
              ),
            ]),
          ])
        : h('p', { class: 'empty', text: t('admin.no_attendance') }),
      tx(h('h3'), 'admin.replays'),
      recordings && recordings.length
        ? h(
            'ul',
            { class: 'replays' },
            recordings.map((/** @type {any} */ r) =>
              h('li', {}, [
                h('a', { href: `/replay?session=${encodeURIComponent(id)}&recording=${encodeURIComponent(r.id)}`, text: t('admin.watch') }),
                ` ${r.id} · ${Math.round((r.duration_ms ?? 0) / 1000)} s`,
              ]),
            ),
          )
        : h('p', { class: 'empty', text: t('admin.no_replays') }),
      live
        ? h('button', {
            type: 'button',
            class: 'danger',
            text: t('ctl.end'),
            onclick: async () => {
              if (!confirm(t('confirm.end'))) return;
              if (await call('POST', `/sessions/${id}/end`)) await load();
            },
          })
        : null,
    ]);
    detail.hidden = false;
  }

  /** @param {{ role: string, name: string, url: string }} l */
  function linkItem(l) {
    const copied = h('span', { class: 'hint', role: 'status' });
    return h('li', {}, [
      h('span', { class: 'badge', text: t(`role.${l.role}`) }),
      h('span', { text: l.name }),
      h('input', { type: 'text', readonly: true, value: l.url, class: 'link-url', 'aria-label': t('admin.link_for', { name: l.name }) }),
      h('button', {
        type: 'button',
        text: t('admin.copy'),
        onclick: async () => {
          copied.textContent = (await copyText(l.url)) ? t('admin.copied') : t('admin.copy_failed');
        },
      }),
      copied,
    ]);
  }

  if (key) load();
}
