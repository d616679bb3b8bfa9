// What a teacher sees without hunting for it: the join button within the
// first screen on a laptop and on a phone, and no empty gap above the chat
// box on a phone.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, joinUrl, launch, newPage, shot } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

const SIZES = /** @type {const} */ ([
  [1280, 800],
  [360, 740],
]);

for (const [width, height] of SIZES) {
  test(`join page at ${width}x${height}: the join button is in the first screen`, async () => {
    const s = await createSession('seminar', '四年级阅读教学研讨：整本书阅读的课时安排');
    const url = await joinUrl(s.id, `t-${width}`, '李老师', 'participant');
    const page = await newPage(browser, { width, height, label: `join ${width}` });
    await page.goto(url);
    const btn = page.getByRole('button', { name: '进入课堂' });
    await btn.waitFor();
    // The preview has its size once the camera is on.
    await page.locator('.preview').evaluate((v) => new Promise((r) => (/** @type {HTMLVideoElement} */ (v).videoWidth ? r(0) : v.addEventListener('loadeddata', r))));
    await page.locator('.cam-select option').first().waitFor({ state: 'attached' });
    await shot(page, `join-fold-${width}`);
    const box = await btn.boundingBox();
    assert.ok(box, 'the button has a box');
    assert.equal(await page.evaluate(() => window.scrollY), 0, 'not scrolled');
    assert.ok(box.y >= 0 && box.y + box.height <= height, `the button (${box.y}..${box.y + box.height}) within 0..${height}`);
    assert.ok(box.x >= 0 && box.x + box.width <= width, `the button (${box.x}..${box.x + box.width}) within 0..${width}`);
    // The device check is still there and usable.
    assert.ok(await page.locator('.preview').isVisible());
    assert.ok(await page.getByRole('checkbox').isVisible());
    await page.context().close();
  });
}

test('classroom at 360x740: no empty gap above the chat box', async () => {
  const s = await createSession('seminar', 'chat gap');
  const page = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { lang: 'zh-CN', width: 360, height: 740, label: 'phone' });
  await page.getByRole('button', { name: '发送' }).waitFor();
  /** From the bottom of what is above the chat box (the tabs, or the last message) to the box. */
  const gap = () =>
    page.evaluate(() => {
      const form = /** @type {HTMLElement} */ (document.querySelector('.chat-form'));
      const msgs = document.querySelectorAll('.chat-list .msg');
      const above = msgs.length ? msgs[msgs.length - 1] : document.querySelector('.tabs');
      return form.getBoundingClientRect().top - /** @type {Element} */ (above).getBoundingClientRect().bottom;
    });
  await shot(page, 'chat-gap-empty-360');
  const empty = await gap();
  assert.ok(empty <= 80, `an empty chat: ${empty} px from the tabs to the box`);
  await page.getByRole('textbox', { name: '聊天内容' }).fill('第一条消息');
  await page.getByRole('button', { name: '发送' }).click();
  await page.locator('.chat-list .msg').waitFor();
  const one = await gap();
  await shot(page, 'chat-gap-one-360');
  assert.ok(one <= 24, `one message: ${one} px from it to the box`);
  await page.context().close();
});
