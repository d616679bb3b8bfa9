// A host and two participants in a seminar: each sees the others' video
// playing, chat goes round, raised hands reach the host's queue in order.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { appears, createSession, enter as enterPage, heard, joinUrl, launch, shot, videoPlaying, waitFor } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/**
 * @param {string} url
 * @param {string} label
 */
const enter = (url, label) => enterPage(browser, url, { label });

test('seminar: video both ways, chat, hand queue in order', async () => {
  const s = await createSession('seminar', '四年级阅读研讨 e2e');
  const host = await enter(await joinUrl(s.id, 'tutor-1', '王老师', 'host'), 'host');
  const li = await enter(await joinUrl(s.id, 't-1', '李老师', 'participant'), 'li');
  const zhang = await enter(await joinUrl(s.id, 't-2', '张老师', 'participant'), 'zhang');

  // Everyone sees the two others' cameras playing.
  for (const [page, others] of [
    [host, ['t-1', 't-2']],
    [li, ['tutor-1', 't-2']],
    [zhang, ['tutor-1', 't-1']],
  ]) {
    for (const o of others) {
      const video = page.locator(`.tile[data-key="${o}"] video`);
      await waitFor(() => videoPlaying(video), { what: `${o}'s video playing`, timeout: 20000 });
    }
  }

  // And hears the host; once the host mutes, Li hears silence.
  await waitFor(() => heard(li, 'tutor-1'), { what: "Li hearing the host's microphone" });
  await host.getByRole('button', { name: 'Mute microphone' }).click();
  await waitFor(async () => !(await heard(li, 'tutor-1')), { what: 'silence after the host muted' });
  await host.getByRole('button', { name: 'Unmute microphone' }).click();
  await waitFor(() => heard(li, 'tutor-1'), { what: 'the host again after unmuting' });

  // Chat round trip.
  await li.getByRole('textbox', { name: 'Chat message' }).fill('第三页的例子很有用');
  await li.getByRole('button', { name: 'Send' }).click();
  for (const page of [host, zhang, li]) {
    await page.locator('.chat-list .msg', { hasText: '第三页的例子很有用' }).waitFor();
  }
  await zhang.getByRole('textbox', { name: 'Chat message' }).fill('agreed');
  await zhang.getByRole('textbox', { name: 'Chat message' }).press('Enter');
  await host.locator('.chat-list .msg', { hasText: 'agreed' }).waitFor();

  // Hands: Zhang first, then Li; the host's queue keeps that order.
  await zhang.getByRole('button', { name: 'Raise hand' }).click();
  await zhang.getByRole('button', { name: 'Lower hand' }).waitFor();
  await li.getByRole('button', { name: 'Raise hand' }).click();
  await host.getByRole('tab', { name: /Raised hands/ }).click();
  await waitFor(async () => (await host.locator('.hand-queue .hand').count()) === 2, { what: 'two hands in the host queue' });
  const order = await host.locator('.hand-queue .hand .who').allInnerTexts();
  assert.deepEqual(order, ['张老师', '李老师']);
  await shot(host, 'seminar-host-1280');

  // The host lowers Zhang's hand; Li is now first.
  await host.getByRole('button', { name: "Lower 张老师's hand" }).click();
  await waitFor(async () => (await host.locator('.hand-queue .hand .who').allInnerTexts()).join() === '李老师', { what: 'only Li left in the queue' });
  await zhang.getByRole('button', { name: 'Raise hand' }).waitFor();

  // The fake microphone beeps loud enough to count as speaking.
  assert.ok(await appears(li, '.tile.speaking[data-key="tutor-1"]', 20000), "the host's tile lit up as speaking");

  // Li switches to audio only: no video either way, sound still flows.
  await li.getByRole('button', { name: 'Audio only' }).click();
  await li.getByRole('button', { name: 'Show video again' }).waitFor();
  await li.locator('.tile.no-video[data-key="tutor-1"]').waitFor();
  await host.locator('.tile.no-video[data-key="t-1"]').waitFor({ timeout: 15000 });
  await waitFor(() => heard(host, 't-1'), { what: "the host hearing Li in audio-only mode" });
  await waitFor(() => heard(li, 'tutor-1'), { what: 'Li hearing the host in audio-only mode' });
  await li.getByRole('button', { name: 'Show video again' }).click();
  await waitFor(() => videoPlaying(host.locator('.tile[data-key="t-1"] video')), { what: "Li's video back at the host", timeout: 20000 });

  for (const p of [host, li, zhang]) await p.context().close();
});
