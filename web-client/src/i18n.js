// Every string of the client, per language: zh-CN first (the default),
// English second. `t(key, vars)` looks a string up; elements made with `tx`
// follow a language switch without being rebuilt.

import { STRINGS } from './strings.js';

/** @typedef {'zh-CN' | 'en'} Lang */

/** @type {Lang[]} */
export const LANGS = ['zh-CN', 'en'];
const KEY = 'lectern.lang';

/** @returns {Lang} */
function initial() {
  const q = new URLSearchParams(location.search).get('lang');
  if (q === 'en' || q === 'zh-CN') return q;
  try {
    const saved = localStorage.getItem(KEY);
    if (saved === 'en' || saved === 'zh-CN') return saved;
  } catch {
    // Storage refused (private mode): fall through to the default.
  }
  return 'zh-CN';
}

let current = initial();
document.documentElement.lang = current;

/** @type {Set<() => void>} */
const listeners = new Set();
/**
 * Elements whose text or attributes follow the language: one binding per
 * element and attribute ('' for the text), the latest one wins.
 * @type {Map<Element, Map<string, { key: string, vars?: Record<string, any> }>>}
 */
const bound = new Map();

export function lang() {
  return current;
}

/**
 * @param {string} key
 * @param {Record<string, string | number>} [vars]
 */
export function t(key, vars) {
  const s = STRINGS[current][key] ?? STRINGS['zh-CN'][key] ?? key;
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

/**
 * Sets an element's text (or an attribute) to a string that follows the
 * language, and returns the element.
 * @template {Element} E
 * @param {E} el
 * @param {string} key
 * @param {{ attr?: string, vars?: Record<string, any> }} [o]
 * @returns {E}
 */
export function tx(el, key, o = {}) {
  let m = bound.get(el);
  if (!m) {
    m = new Map();
    bound.set(el, m);
  }
  const attr = o.attr ?? '';
  m.set(attr, { key, vars: o.vars });
  paint(el, attr, key, o.vars);
  return el;
}

/**
 * @param {Element} el
 * @param {string} attr
 * @param {string} key
 * @param {Record<string, any>} [vars]
 */
function paint(el, attr, key, vars) {
  if (attr) el.setAttribute(attr, t(key, vars));
  else el.textContent = t(key, vars);
}

/**
 * Formats an RFC 3339 time as a local clock time in the page's language,
 * not the browser's: "14:53" in Chinese (24-hour), "2:53 PM" in English.
 * @param {string} at
 * @param {{ seconds?: boolean }} [o]
 */
export function clock(at, o = {}) {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return '';
  /** @type {Intl.DateTimeFormatOptions} */
  const opts = { hour: current === 'en' ? 'numeric' : '2-digit', minute: '2-digit' };
  if (o.seconds) opts.second = '2-digit';
  // zh-CN reads a 24-hour clock; 'h23' keeps midnight as 00:05, not 24:05.
  if (current === 'zh-CN') opts.hourCycle = 'h23';
  return d.toLocaleTimeString(current === 'en' ? 'en-US' : 'zh-CN', opts);
}

/** @param {Lang} l */
export function setLang(l) {
  if (l === current) return;
  current = l;
  document.documentElement.lang = l;
  try {
    localStorage.setItem(KEY, l);
  } catch {
    // Not remembered; the switch still applies to this page.
  }
  sweep();
  for (const [el, m] of bound) for (const [attr, b] of m) paint(el, attr, b.key, b.vars);
  for (const f of listeners) f();
}

/** @param {() => void} f called after every language switch */
export function onLang(f) {
  listeners.add(f);
}

/** Forgets bindings of elements no longer in the page. */
export function sweep() {
  for (const el of bound.keys()) if (!el.isConnected) bound.delete(el);
}
