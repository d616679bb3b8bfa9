// Entry point: picks the page from the path (`/join`, `/admin`, `/`) and
// draws the language switch that every page shares.

import { h, replace } from './dom.js';
import { t, tx, lang, setLang, LANGS } from './i18n.js';
import { lookUp, joinPage } from './join.js';
import { classroom } from './classroom.js';
import { adminPage } from './admin.js';
import { replayPage } from './replay.js';

const app = /** @type {HTMLElement} */ (document.getElementById('app'));

function langSwitch() {
  const sel = h(
    'select',
    { class: 'lang', onchange: () => setLang(/** @type {any} */ (sel.value)) },
    LANGS.map((l) => h('option', { value: l, text: l === 'zh-CN' ? '中文' : 'English' })),
  );
  sel.value = lang();
  tx(sel, 'lang.label', { attr: 'aria-label' });
  return h('div', { class: 'topbar' }, [h('span', { class: 'brand', text: 'Lectern' }), sel]);
}

const page = h('div', { class: 'page' });
replace(app, [langSwitch(), page]);

/**
 * A page that explains why the member is out, with what to do next.
 * @param {string} why an `end.*` key suffix
 */
function endPage(why) {
  replace(
    page,
    h('main', { class: 'end' }, [
      tx(h('h1'), `end.${why}`),
      tx(h('p', { class: 'hint' }), `end.${why}.help`),
      why === 'left' || why === 'network' ? h('button', { type: 'button', class: 'primary', onclick: () => location.reload() }, tx(h('span'), 'end.rejoin')) : null,
    ]),
  );
}

async function joinFlow() {
  const token = new URLSearchParams(location.search).get('token');
  if (!token) return endPage('invalid_link');
  replace(page, h('p', { class: 'hint', text: t('join.loading') }));
  const { info, error } = await lookUp(token);
  if (!info) return endPage((error ?? 'end.invalid_link').slice(4));
  const local = await joinPage(page, info);
  classroom(page, { token, local, onEnd: (why) => endPage(why) });
}

function home() {
  replace(
    page,
    h('main', { class: 'home' }, [
      tx(h('h1'), 'home.heading'),
      tx(h('p', { class: 'lead' }), 'home.lead'),
      h('a', { href: '/admin', class: 'button primary' }, tx(h('span'), 'home.admin')),
    ]),
  );
}

const path = location.pathname.replace(/\/+$/, '');
if (path === '/join') joinFlow();
else if (path === '/admin') adminPage(page);
else if (path === '/replay') replayPage(page);
else home();
