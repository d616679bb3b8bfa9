// An expert Q&A: a participant asks, another upvotes, the host pins it and
// everyone sees it; the host invites a participant on stage, and everyone
// sees and hears them.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, heard, joinUrl, launch, shot, videoPlaying, waitFor } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('qa: ask, upvote, pin; invite on stage, seen and heard', async () => {
  const s = await createSession('qa', '专家答疑 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'expert-1', '陈教授', 'host'), { label: 'host' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { label: 'li' });
  const zhang = await enter(browser, await joinUrl(s.id, 't-2', '张老师', 'participant'), { label: 'zhang' });

  // The audience sees the expert on the stage.
  for (const page of [li, zhang]) {
    await waitFor(() => videoPlaying(page.locator('.tile[data-key="expert-1"] video')), { what: "the expert's video", timeout: 20000 });
  }
  // Without a roster (audience mode) the stage is still labelled by name.
  await li.locator('.tile[data-key="expert-1"] .tile-name', { hasText: '陈教授' }).waitFor();
  // Participants in a Q&A do not publish, so they have no microphone button.
  assert.equal(await li.getByRole('button', { name: 'Mute microphone' }).count(), 0);

  // Li asks; Zhang upvotes; the host sees one vote and pins it.
  const text = '整本书阅读怎么安排课时？';
  for (const page of [li, zhang, host]) await page.getByRole('tab', { name: 'Q&A' }).click();
  await li.getByRole('textbox', { name: 'Your question' }).fill(text);
  await li.getByRole('button', { name: 'Ask', exact: true }).click();
  const q = (/** @type {import('playwright-core').Page} */ p) => p.locator('.questions .question', { hasText: text });
  await q(zhang).waitFor();
  await q(zhang).getByRole('button', { name: /^Upvote/ }).click();
  await q(zhang).getByRole('button', { name: /^Upvoted|Upvote/, disabled: true }).waitFor();
  await q(host).locator('.votes', { hasText: '1 votes' }).waitFor();
  await q(host).getByRole('button', { name: 'Pin' }).click();
  for (const page of [host, li, zhang]) {
    await page.locator('.pinned', { hasText: text }).waitFor();
  }
  // Participants see the vote total too (coalesced once a second).
  await q(li).locator('.votes', { hasText: '1 votes' }).waitFor();
  await shot(li, 'qa-participant-1280');

  // Zhang raises a hand; the host invites Zhang on stage from the queue.
  await zhang.getByRole('button', { name: 'Raise hand' }).click();
  await host.getByRole('tab', { name: /Raised hands/ }).click();
  await host.getByRole('button', { name: 'Invite 张老师 to the stage' }).click();
  await zhang.getByRole('button', { name: 'Go on stage' }).click();
  await zhang.getByRole('button', { name: 'Mute microphone' }).waitFor();

  // Everyone sees and hears Zhang.
  for (const [page, who] of [
    [host, 'host'],
    [li, 'li'],
  ]) {
    await waitFor(() => videoPlaying(page.locator('.tile[data-key="t-2"] video')), { what: `${who} seeing Zhang`, timeout: 20000 });
    await waitFor(() => heard(page, 't-2'), { what: `${who} hearing Zhang`, timeout: 20000 });
  }
  await shot(host, 'qa-host-stage-1280');

  // The host shares a screen: it takes the large place for everyone; when
  // the share stops, the expert's camera is back.
  await host.getByRole('button', { name: 'Share screen' }).click();
  for (const page of [li, zhang]) {
    await waitFor(() => videoPlaying(page.locator('.stage-main .tile[data-key="expert-1:screen"] video')), { what: 'the screen share on the main stage', timeout: 20000 });
  }
  await shot(li, 'qa-screen-share-1280');
  await host.getByRole('button', { name: 'Stop sharing' }).click();
  await waitFor(async () => (await li.locator('.tile[data-key="expert-1:screen"]').count()) === 0, { what: 'the share gone' });
  await waitFor(() => videoPlaying(li.locator('.stage-main .tile[data-key="expert-1"] video')), { what: "the expert's camera back on the main stage" });

  // The host removes Zhang from the stage; Zhang's tracks go away for Li.
  await host.getByRole('tab', { name: 'People' }).click();
  await host.getByRole('button', { name: 'Remove 张老师 from the stage' }).click();
  await waitFor(async () => (await li.locator('.tile[data-key="t-2"]').count()) === 0, { what: "Zhang's tile gone for Li" });
  await zhang.getByRole('button', { name: 'Raise hand' }).waitFor();

  for (const p of [host, li, zhang]) await p.context().close();
});
