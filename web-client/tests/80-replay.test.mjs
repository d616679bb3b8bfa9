// Replay: a host records from the browser (fake camera and microphone), a
// chat message is sent while recording, and the replay page plays the video
// with the message appearing when playback reaches its time; seeking works.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN_KEY, BASE, api, createSession, enter, joinUrl, launch, newPage, shot, videoPlaying, waitFor } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('record in the browser, then replay with chat in step', async () => {
  const s = await createSession('seminar', '回放 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { label: 'host' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { label: 'li' });
  // Let the host's tracks reach the server before recording starts.
  await waitFor(() => videoPlaying(li.locator('.tile[data-key="tutor-1"] video')), { what: "the host's video", timeout: 20000 });

  await host.getByRole('button', { name: 'Start recording' }).click();
  await li.locator('.rec', { hasText: 'Recording' }).waitFor();
  await new Promise((r) => setTimeout(r, 2500));
  await li.getByRole('textbox', { name: 'Chat message' }).fill('回放里的消息');
  await li.getByRole('button', { name: 'Send' }).click();
  await new Promise((r) => setTimeout(r, 3000));
  await host.getByRole('button', { name: 'Stop recording' }).click();
  await li.locator('.rec').waitFor({ state: 'hidden' });

  const list = await waitFor(
    async () => {
      const l = await api('GET', `/sessions/${s.id}/recordings`);
      return l[0]?.finished && l[0].tracks.some((/** @type {any} */ t) => t.kind === 'video') ? l : null;
    },
    { what: 'a finished recording with video' },
  );
  const rec = list[0];
  assert.ok(rec.duration_ms > 4500 && rec.duration_ms < 7000, `${rec.duration_ms} ms`);

  // The admin page lists it; "Watch" opens the replay.
  const admin = await newPage(browser, { lang: 'en', label: 'admin' });
  await admin.goto(`${BASE}/admin?lang=en`);
  await admin.getByLabel('Admin key').fill(ADMIN_KEY);
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.getByRole('button', { name: '回放 e2e' }).click();
  await admin.getByRole('link', { name: 'Watch' }).click();
  await admin.waitForURL(/\/replay\?/);
  const video = admin.locator('video.replay-video');
  await video.waitFor();
  // Nothing said yet at the start.
  assert.equal(await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).count(), 0);
  await video.evaluate((v) => /** @type {HTMLVideoElement} */ (v).play());
  await waitFor(() => videoPlaying(video), { what: 'the replay playing' });
  // The message shows once playback passes its time (about 2.5 s in).
  await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).waitFor({ timeout: 10000 });
  const at = await video.evaluate((v) => /** @type {HTMLVideoElement} */ (v).currentTime);
  assert.ok(at >= 2, `shown at ${at} s`);
  await shot(admin, 'replay-1280');
  // Seeking back hides it; seeking past it shows it again.
  await video.evaluate((v) => {
    const el = /** @type {HTMLVideoElement} */ (v);
    el.pause();
    el.currentTime = 0.5;
  });
  await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).waitFor({ state: 'detached' });
  await video.evaluate((v) => {
    /** @type {HTMLVideoElement} */ (v).currentTime = 4.5;
  });
  await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).waitFor();

  // A teacher's replay link: the watched stretch is reported for grading.
  const link = await api('POST', `/sessions/${s.id}/replay-tokens`, { identity: 't-7', name: '补看的老师' });
  const teacher = await newPage(browser, { label: 'teacher' });
  const url = link.replay_url.startsWith(BASE) ? link.replay_url : `${BASE}/replay?session=${s.id}&token=${link.token}`;
  await teacher.goto(url);
  const tv = teacher.locator('video.replay-video');
  await tv.waitFor();
  await tv.evaluate((v) => /** @type {HTMLVideoElement} */ (v).play());
  await new Promise((r) => setTimeout(r, 3000));
  await tv.evaluate((v) => /** @type {HTMLVideoElement} */ (v).pause());
  const row = await waitFor(
    async () => {
      const rows = await api('GET', `/sessions/${s.id}/report`);
      return rows.find((/** @type {any} */ r) => r.identity === 't-7' && r.replay_seconds >= 2);
    },
    { what: "the teacher's watched time in the report" },
  );
  assert.ok(row.replay_seconds <= 4, `${row.replay_seconds} s`);

  for (const p of [host, li, admin, teacher]) await p.context().close();
});
