// A tiny element builder: no framework, no virtual DOM. Pages build their
// elements once and update the parts that change. And small DOM helpers:
// copying, saving, and `ask`, an in-page confirmation dialog.

import { t } from './i18n.js';

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {Record<string, any>} Props
 */

/**
 * Creates an element. Props: `class`, `text`, `on<event>` handlers,
 * `dataset`, `aria-*` and any other attribute; `false`/`null` values are
 * left out, `true` becomes an empty attribute.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {Child[] | Child} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) /** @type {HTMLInputElement} */ (el).value = String(v);
    else if (k === 'checked' && 'checked' in el) /** @type {HTMLInputElement} */ (el).checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {Child[] | Child} children
 */
export function append(el, children) {
  for (const c of Array.isArray(children) ? children : [children]) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'object' ? c : String(c));
  }
}

/**
 * Replaces an element's children.
 * @param {Element} el
 * @param {Child[] | Child} children
 */
export function replace(el, children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Copies text to the clipboard, falling back to a selected field where the
 * Clipboard API is refused (plain http on a LAN address).
 * @param {string} text
 * @returns {Promise<boolean>}
 */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h('textarea', { value: text, 'aria-hidden': 'true', class: 'offscreen' });
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

/**
 * Saves a fetched response as a file (for downloads that need an
 * Authorization header, which a plain link cannot send).
 * @param {Response} r
 * @param {string} name
 */
export async function saveAs(r, name) {
  const a = h('a', { href: URL.createObjectURL(await r.blob()), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// `ask` is an in-page confirmation in the page's language, instead of the
// browser's `confirm()` (which speaks the browser's language, looks like an
// error, and some embedded browsers suppress). Cancel is the default: it
// has the focus, and Escape or a click outside the box choose it.

/**
 * Asks a yes/no question; resolves `true` only when the confirm button is
 * pressed.
 * @param {{ title: string, text?: string, confirm: string, danger?: boolean }} o
 * @returns {Promise<boolean>}
 */
export function ask(o) {
  const title = h('h2', { class: 'dialog-title', text: o.title });
  title.id = `dialog-title-${Date.now()}`;
  const cancelBtn = h('button', { type: 'button', class: 'dialog-cancel', text: t('dialog.cancel') });
  const okBtn = h('button', { type: 'button', class: o.danger ? 'danger-solid dialog-ok' : 'primary dialog-ok', text: o.confirm });
  // The box is an inner element, so a click on the dialog element itself is
  // a click on the backdrop.
  const dlg = h('dialog', { class: 'confirm-dialog', 'aria-labelledby': title.id }, [
    h('div', { class: 'dialog-box' }, [
      title,
      o.text ? h('p', { class: 'dialog-text', text: o.text }) : null,
      h('div', { class: 'dialog-actions' }, [cancelBtn, okBtn]),
    ]),
  ]);
  document.body.append(dlg);
  return new Promise((resolve) => {
    let answer = false;
    cancelBtn.addEventListener('click', () => dlg.close());
    okBtn.addEventListener('click', () => {
      answer = true;
      dlg.close();
    });
    dlg.addEventListener('click', (e) => {
      if (e.target === dlg) dlg.close();
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(answer);
    });
    dlg.showModal();
    cancelBtn.focus();
  });
}
