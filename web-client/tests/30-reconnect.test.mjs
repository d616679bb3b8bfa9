// A weak link: ten seconds offline show "reconnecting…", then the page
// resumes without a reload, with the chat sent meanwhile and the text the
// teacher had typed still in the box.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, joinUrl, launch, shot, videoPlaying, waitFor } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('offline for 10 s: reconnecting, then resumed with missed chat and the draft kept', async () => {
  const s = await createSession('seminar', '断网重连 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { label: 'host' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { label: 'li', lang: 'zh-CN' });
  await waitFor(() => videoPlaying(li.locator('.tile[data-key="tutor-1"] video')), { what: "the host's video", timeout: 20000 });
  const marker = await li.evaluate(() => {
    // Survives only if the page is never reloaded.
    /** @type {any} */ (window).__noReload = 42;
    return 42;
  });

  const draft = '我正在输入的问题，还没发送';
  await li.getByRole('textbox', { name: '聊天内容' }).fill(draft);
  await li.context().setOffline(true);
  await li.locator('.status', { hasText: '正在重新连接' }).waitFor({ timeout: 10000 });
  await shot(li, 'reconnecting-zh-1280');

  await host.getByRole('textbox', { name: 'Chat message' }).fill('断网期间发的消息');
  await host.getByRole('button', { name: 'Send' }).click();
  await new Promise((r) => setTimeout(r, 10000));
  assert.equal(await li.locator('.status').getAttribute('data-state'), 'reconnecting');

  await li.context().setOffline(false);
  await li.locator('.status[data-state="open"]').waitFor({ timeout: 20000 });
  await li.locator('.chat-list .msg', { hasText: '断网期间发的消息' }).waitFor();
  assert.equal(await li.getByRole('textbox', { name: '聊天内容' }).inputValue(), draft);
  assert.equal(await li.evaluate(() => /** @type {any} */ (window).__noReload), marker);
  // Still present all along: one attendance interval, and media is back.
  await waitFor(() => videoPlaying(li.locator('.tile[data-key="tutor-1"] video')), { what: "the host's video after the resume", timeout: 20000 });
  await waitFor(() => videoPlaying(host.locator('.tile[data-key="t-1"] video')), { what: "Li's video at the host after the resume", timeout: 20000 });

  // The draft can now be sent.
  await li.getByRole('button', { name: '发送' }).click();
  await host.locator('.chat-list .msg', { hasText: draft }).waitFor();

  for (const p of [host, li]) await p.context().close();
});
