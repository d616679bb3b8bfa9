// Smoke test: Playwright drives the machine's Chromium, reaches the server,
// and the fake camera and microphone work.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BASE, launch, newPage } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('Chromium opens /healthz', async () => {
  const page = await newPage(browser, { label: 'healthz' });
  const res = await page.goto(`${BASE}/healthz`);
  assert.equal(res?.status(), 200);
  const body = await page.locator('body').innerText();
  assert.match(body, /ok/);
  await page.context().close();
});

test('fake camera and microphone give one video and one audio track', async () => {
  const page = await newPage(browser, { label: 'media' });
  await page.goto(`${BASE}/healthz`);
  const tracks = await page.evaluate(async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const kinds = stream.getTracks().map((t) => `${t.kind}:${t.readyState}`);
    stream.getTracks().forEach((t) => t.stop());
    return { secure: window.isSecureContext, kinds };
  });
  assert.equal(tracks.secure, true);
  assert.deepEqual(tracks.kinds.sort(), ['audio:live', 'video:live']);
  await page.context().close();
});
