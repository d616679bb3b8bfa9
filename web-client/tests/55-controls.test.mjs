// Controls that must not mislead: screen sharing only where the browser can
// do it, and ending the class for everyone looks unlike leaving, stands
// apart, and asks first (in the page's language, with a way back).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, joinUrl, launch, shot } from './helpers.mjs';

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

test('ending the class: apart from leaving, asks first, cancel keeps it going', async () => {
  const s = await createSession('seminar', '结束课堂确认');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { lang: 'zh-CN', label: 'host' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { lang: 'zh-CN', label: 'li' });
  let browserDialogs = 0;
  host.on('dialog', (d) => {
    browserDialogs++;
    d.dismiss().catch(() => {});
  });

  const end = host.getByRole('button', { name: '为全体结束课堂' });
  const leave = host.getByRole('button', { name: '离开课堂' });
  await end.waitFor();
  // Not the same look, and not side by side.
  const look = (/** @type {import('playwright-core').Locator} */ l) => l.evaluate((e) => {
    const st = getComputedStyle(e);
    return `${st.backgroundColor} ${st.color}`;
  });
  assert.notEqual(await look(end), await look(leave), 'end and leave look different');
  const [eb, lb] = [await end.boundingBox(), await leave.boundingBox()];
  assert.ok(eb && lb);
  assert.ok(eb.x - (lb.x + lb.width) >= 24 || eb.y >= lb.y + lb.height, `end (${eb.x}) is set apart from leave (${lb.x + lb.width})`);

  // Cancel: nothing happens.
  await end.click();
  const dialog = host.getByRole('dialog', { name: '要为所有人结束本次课堂吗？' });
  await dialog.waitFor();
  await dialog.getByText('所有成员都会离开课堂').waitFor();
  await shot(host, 'end-confirm-zh-1280');
  await dialog.getByRole('button', { name: '取消' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await new Promise((r) => setTimeout(r, 1500));
  for (const p of [host, li]) assert.equal(await p.locator('.status').getAttribute('data-state'), 'open');
  assert.equal(await li.getByRole('heading', { name: '课堂已结束' }).count(), 0);

  // Escape cancels too.
  await end.click();
  await dialog.waitFor();
  await host.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await host.locator('.status').getAttribute('data-state'), 'open');

  // Confirm: the class ends for everyone.
  await end.click();
  await dialog.getByRole('button', { name: '结束课堂' }).click();
  for (const p of [host, li]) await p.getByRole('heading', { name: '课堂已结束' }).waitFor();
  assert.equal(browserDialogs, 0, 'no browser confirm() was used');
  for (const p of [host, li]) await p.context().close();
});
