// Shared helpers for the end-to-end tests (node:test + Playwright driving
// Debian's headless Chromium). The Rust test `tests/web/main.rs` starts a
// server and runs these files with:
//   LECTERN_URL        the server's base URL, e.g. http://127.0.0.1:PORT
//   LECTERN_ADMIN_KEY  its admin key
//   LECTERN_ARTIFACTS  where screenshots go (default: ../target/web-artifacts)
//   LECTERN_CHROMIUM   the Chromium binary (default: /usr/bin/chromium)

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

/** The server under test, without a trailing slash. */
export const BASE = (process.env.LECTERN_URL || '').replace(/\/+$/, '');
export const ADMIN_KEY = process.env.LECTERN_ADMIN_KEY || '';
export const ARTIFACTS = process.env.LECTERN_ARTIFACTS
  || resolve(here, '../../target/web-artifacts');
export const CHROMIUM = process.env.LECTERN_CHROMIUM || '/usr/bin/chromium';

if (!BASE) {
  throw new Error('LECTERN_URL is not set: run these tests through `cargo test --test web`, '
    + 'or start a server and set LECTERN_URL and LECTERN_ADMIN_KEY');
}

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  // getDisplayMedia picks the (fake) screen without a chooser.
  '--auto-select-desktop-capture-source=Entire screen',
];

/**
 * Launches headless Chromium with fake camera and microphone.
 * @param {string[]} [extraArgs] more command-line switches
 * @returns {Promise<import('playwright-core').Browser>}
 */
export function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/**
 * A new context (own cookies and storage) and a page in it. The page's
 * console errors and uncaught errors go to stderr, prefixed with `label`.
 * `locale` is the browser's language (default: `lang`), which the page
 * does not follow: it takes `?lang=` or zh-CN.
 * @param {import('playwright-core').Browser} browser
 * @param {{ lang?: string, locale?: string, width?: number, height?: number, label?: string }} [opts]
 * @returns {Promise<import('playwright-core').Page>}
 */
export async function newPage(browser, { lang = 'zh-CN', locale, width = 1280, height = 800, label } = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    locale: locale ?? lang,
    permissions: ['camera', 'microphone'],
  });
  const page = await context.newPage();
  const tag = `[${label || `page ${lang} ${width}x${height}`}]`;
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location()?.url || '';
    // Chromium asks every page for /favicon.ico: the server serves one, and
    // an error for it (a 404 in every console, once) fails the run.
    if (where.endsWith('/favicon.ico')) {
      process.stderr.write(`${tag} the icon was not served: ${msg.text()}\n`);
      process.exitCode = 1;
      return;
    }
    // Expected in tests that provoke them: refused links and requests (the
    // client shows its own message) and connection attempts while offline.
    if (/status of (401|404|410)|ERR_INTERNET_DISCONNECTED/.test(msg.text())) return;
    process.stderr.write(`${tag} console.error: ${msg.text()}${where ? ` (${where})` : ''}\n`);
  });
  page.on('pageerror', (err) => {
    // An uncaught exception is a client bug: fail the run.
    process.stderr.write(`${tag} page error: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  });
  return page;
}

/**
 * Calls the admin REST API: `${LECTERN_URL}/api/v1${path}`, JSON in and out.
 * Throws, with the status and body, on a non-2xx answer.
 * @param {string} method
 * @param {string} path  e.g. `/sessions`
 * @param {any} [body]
 */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${ADMIN_KEY}`, Accept: 'application/json' };
  /** @type {RequestInit} */
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`${BASE}/api/v1${path}`, init);
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`${method} /api/v1${path} answered ${res.status}: ${text}`);
  }
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Creates a session; returns the session JSON (with `id`).
 * @param {'qa' | 'seminar'} kind
 * @param {string} title
 * @param {Record<string, any>} [settings]
 */
export function createSession(kind, title, settings = {}) {
  return api('POST', '/sessions', { title, kind, settings });
}

/**
 * Signs a join link for `identity` and returns its URL on the server under test.
 * @param {string} sessionId
 * @param {string} identity
 * @param {string} name
 * @param {'host' | 'moderator' | 'participant' | 'observer'} role
 * @returns {Promise<string>}
 */
export async function joinUrl(sessionId, identity, name, role) {
  const t = await api('POST', `/sessions/${encodeURIComponent(sessionId)}/tokens`, { identity, name, role });
  if (typeof t.join_url === 'string' && t.join_url.startsWith(`${BASE}/`)) return t.join_url;
  return `${BASE}/join?token=${encodeURIComponent(t.token)}`;
}

/**
 * Saves a full-page screenshot as `${LECTERN_ARTIFACTS}/${name}.png`.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 * @returns {Promise<string>} the file's path
 */
export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Polls `fn` until it returns a truthy value, which it returns. Errors thrown
 * by `fn` count as "not yet"; the last one is in the timeout message.
 * @template T
 * @param {() => T | Promise<T>} fn
 * @param {{ timeout?: number, interval?: number, what?: string }} [opts]
 * @returns {Promise<T>}
 */
export async function waitFor(fn, { timeout = 15000, interval = 100, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const why = lastErr ? `; last error: ${lastErr && lastErr.message ? lastErr.message : lastErr}`
        : `; last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * Whether a `<video>` is really playing: it has a size, and over one second
 * both its `currentTime` and its decoded frame count advance.
 * @param {import('playwright-core').Locator} locator  one `<video>` element
 * @returns {Promise<boolean>}
 */
export async function videoPlaying(locator) {
  return locator.evaluate(async (el) => {
    const v = /** @type {HTMLVideoElement} */ (el);
    const frames = () => {
      if (typeof v.getVideoPlaybackQuality === 'function') {
        return v.getVideoPlaybackQuality().totalVideoFrames;
      }
      return /** @type {any} */ (v).webkitDecodedFrameCount || 0;
    };
    const t0 = v.currentTime;
    const f0 = frames();
    await new Promise((r) => setTimeout(r, 1000));
    return v.videoWidth > 0 && v.currentTime > t0 && frames() > f0;
  });
}

/**
 * Opens a join link in a new page and enters the classroom, waiting until
 * the connection is up. `init` runs in the page before its own scripts
 * (to take away or wrap browser APIs).
 * @param {import('playwright-core').Browser} browser
 * @param {string} url a join link
 * @param {{ lang?: string, locale?: string, label?: string, width?: number, height?: number, audioOnly?: boolean, init?: () => void }} [o]
 */
export async function enter(browser, url, { lang = 'en', locale, label, width, height, audioOnly = false, init } = {}) {
  const page = await newPage(browser, { lang, locale, label, width, height });
  if (init) await page.addInitScript(init);
  await page.goto(`${url}&lang=${lang}`);
  if (audioOnly) await page.locator('.audio-only').check();
  await page.locator('.join-btn').click();
  await page.locator('.status[data-state="open"]').waitFor();
  return page;
}

/**
 * Whether the page hears sound from `owner`: the `<audio>` element of that
 * member's track carries a signal (RMS above silence over half a second).
 * @param {import('playwright-core').Page} page
 * @param {string} owner
 */
export async function heard(page, owner) {
  return page.evaluate(async (who) => {
    const el = /** @type {HTMLAudioElement | null} */ (document.querySelector(`.audios audio[data-owner="${who}"]`));
    const stream = el && /** @type {MediaStream | null} */ (el.srcObject);
    if (!stream || !stream.getAudioTracks().length) return false;
    const ctx = new AudioContext();
    try {
      const an = ctx.createAnalyser();
      ctx.createMediaStreamSource(stream).connect(an);
      const buf = new Float32Array(an.fftSize);
      let peak = 0;
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 50));
        an.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const v of buf) sum += v * v;
        peak = Math.max(peak, Math.sqrt(sum / buf.length));
      }
      return peak > 0.001;
    } finally {
      await ctx.close();
    }
  }, owner);
}

/**
 * Whether an element matching `selector` shows up within `ms`, however
 * briefly (a speaking highlight lasts a few hundred milliseconds; polling
 * can miss it, a MutationObserver does not).
 * @param {import('playwright-core').Page} page
 * @param {string} selector
 * @param {number} ms
 */
export function appears(page, selector, ms) {
  return page.evaluate(
    ([sel, wait]) =>
      new Promise((resolve) => {
        if (document.querySelector(sel)) return resolve(true);
        const mo = new MutationObserver(() => {
          if (document.querySelector(sel)) {
            mo.disconnect();
            resolve(true);
          }
        });
        mo.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['class'] });
        setTimeout(() => {
          mo.disconnect();
          resolve(false);
        }, wait);
      }),
    /** @type {[string, number]} */ ([selector, ms]),
  );
}

/**
 * Reloads a classroom page and enters again (a new welcome, as after
 * closing and reopening the link).
 * @param {import('playwright-core').Page} page
 */
export async function reenter(page) {
  await page.reload();
  await page.locator('.join-btn').click();
  await page.locator('.status[data-state="open"]').waitFor();
}

/**
 * The `data-key`s of the video tiles, in page order.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<string[]>}
 */
export function tileKeys(page) {
  return page.locator('.stage .tile').evaluateAll((els) => els.map((e) => /** @type {HTMLElement} */ (e).dataset.key || ''));
}

/**
 * The JSON frames a page sends or receives on its WebSockets, as they go,
 * kept when `keep` says so.
 * @param {import('playwright-core').Page} page
 * @param {'framesent' | 'framereceived'} direction
 * @param {(frame: any) => boolean} keep
 * @returns {any[]}
 */
export function framesOf(page, direction, keep) {
  /** @type {any[]} */
  const out = [];
  page.on('websocket', (ws) => {
    ws.on(direction, (f) => {
      if (typeof f.payload !== 'string') return;
      try {
        const v = JSON.parse(f.payload);
        if (keep(v)) out.push(v);
      } catch {
        // Not JSON: not a protocol frame.
      }
    });
  });
  return out;
}
