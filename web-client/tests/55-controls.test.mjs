// Controls that must not mislead: screen sharing only where the browser can
// do it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, joinUrl, launch } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('screen sharing is offered only where getDisplayMedia exists', async () => {
  const s = await createSession('seminar', 'screen share offer');
  // Desktop Chromium, allowed to publish: offered.
  const desk = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { lang: 'zh-CN', label: 'desktop' });
  await desk.getByRole('button', { name: '关闭麦克风' }).waitFor();
  await desk.getByRole('button', { name: '共享屏幕' }).waitFor();

  // A phone browser has no getDisplayMedia (nor, in some web views, one
  // that is a function): not offered.
  const phones = [
    () => {
      delete (/** @type {any} */ (MediaDevices.prototype).getDisplayMedia);
    },
    () => {
      Object.defineProperty(MediaDevices.prototype, 'getDisplayMedia', { value: undefined, configurable: true });
    },
  ];
  for (const [i, init] of phones.entries()) {
    const phone = await enter(browser, await joinUrl(s.id, `t-${i}`, `手机${i}`, 'participant'), { lang: 'zh-CN', width: 360, height: 740, label: `phone ${i}`, init });
    assert.equal(await phone.evaluate(() => typeof navigator.mediaDevices.getDisplayMedia), 'undefined');
    // Publishing is up (the microphone button shows), and still no share.
    await phone.getByRole('button', { name: '关闭麦克风' }).waitFor();
    assert.equal(await phone.getByRole('button', { name: '共享屏幕' }).count(), 0, `variant ${i}: no share button`);
    await phone.context().close();
  }
  await desk.context().close();
});
