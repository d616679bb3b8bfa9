// Errors a person can act on: an expired link, an ended session, a broken
// link, and a session ended while inside it.

import { after, before, test } from 'node:test';
import { api, createSession, enter, joinUrl, launch, newPage, BASE } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('an expired link says so', async () => {
  const s = await createSession('seminar', 'expiry');
  const r = await api('POST', `/sessions/${s.id}/tokens`, { identity: 't-9', name: 'Late', role: 'participant', ttl_seconds: 1 });
  await new Promise((res) => setTimeout(res, 2100));
  const page = await newPage(browser, { lang: 'en', label: 'expired' });
  await page.goto(`${BASE}/join?token=${r.token}&lang=en`);
  await page.getByRole('heading', { name: 'Your link has expired' }).waitFor();
  await page.getByText('Ask your organiser for a new link.').waitFor();
  await page.context().close();
});

test('a broken link and an ended session say so, in Chinese by default', async () => {
  const page = await newPage(browser, { label: 'broken' });
  await page.goto(`${BASE}/join?token=not-a-token`);
  await page.getByRole('heading', { name: '链接无效' }).waitFor();
  const s = await createSession('qa', 'ended');
  const url = await joinUrl(s.id, 't-8', '赵老师', 'participant');
  await api('POST', `/sessions/${s.id}/end`);
  await page.goto(url);
  await page.getByRole('heading', { name: '课堂已结束' }).waitFor();
  await page.context().close();
});

test('members inside a session see the end when the host ends it', async () => {
  const s = await createSession('seminar', 'end inside');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', 'Host', 'host'), { label: 'host' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', 'Li', 'participant'), { label: 'li' });
  await host.getByRole('button', { name: 'End session' }).click();
  await host.getByRole('dialog').getByRole('button', { name: 'End for everyone' }).click();
  for (const p of [host, li]) await p.getByRole('heading', { name: 'The session has ended' }).waitFor();
  for (const p of [host, li]) await p.context().close();
});

test('a blocked camera says how to allow it, and joining still works', async () => {
  const s = await createSession('seminar', 'blocked camera');
  const url = await joinUrl(s.id, 't-7', '孙老师', 'participant');
  const page = await newPage(browser, { label: 'blocked' });
  // What a browser does when the person (or a policy) refused the camera.
  await page.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await page.goto(url);
  await page.getByText('摄像头或麦克风被浏览器禁止了。').waitFor();
  await page.getByText(/锁形图标/).waitFor();
  await page.getByRole('button', { name: '进入课堂' }).click();
  await page.locator('.status[data-state="open"]').waitFor();
  // Without media the member still takes part: chat works.
  await page.getByRole('textbox', { name: '聊天内容' }).fill('我没有摄像头');
  await page.getByRole('button', { name: '发送' }).click();
  await page.locator('.chat-list .msg', { hasText: '我没有摄像头' }).waitFor();
  await page.context().close();
});
