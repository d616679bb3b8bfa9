// Replay: a host records a Q&A from the browser (fake camera, microphone and
// screen), a chat message is sent and the screen shared for a while; the
// replay page plays the camera, switches to the screen share and back as the
// live class did, shows the message when playback reaches its time, seeks,
// and reports a teacher's watched time.

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

/**
 * Moves the replay to `s` seconds with its position slider.
 * @param {import('playwright-core').Page} page
 * @param {number} s
 */
async function seekTo(page, s) {
  await page.locator('.replay-seek').evaluate((el, v) => {
    const input = /** @type {HTMLInputElement} */ (el);
    input.value = String(v);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }, s);
}

/**
 * The replay's clock, in ms.
 * @param {import('playwright-core').Page} page
 */
async function replayMs(page) {
  return Number(await page.locator('.replay-player').getAttribute('data-ms'));
}

test('record a Q&A with a screen share, then replay it as the class saw it, with chat in step', async () => {
  const s = await createSession('qa', '回放 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { label: 'host' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { label: 'li' });
  // Let the host's tracks reach the server before recording starts.
  await waitFor(() => videoPlaying(li.locator('.tile[data-key="tutor-1"] video')), { what: "the host's video", timeout: 20000 });

  await host.getByRole('button', { name: 'Start recording' }).click();
  await li.locator('.rec', { hasText: 'Recording' }).waitFor();
  await new Promise((r) => setTimeout(r, 2500));
  await li.getByRole('textbox', { name: 'Chat message' }).fill('回放里的消息');
  await li.getByRole('button', { name: 'Send' }).click();
  // A screen share for a few seconds in the middle.
  await new Promise((r) => setTimeout(r, 1000));
  await host.getByRole('button', { name: 'Share screen' }).click();
  await waitFor(() => videoPlaying(li.locator('.stage-main .tile[data-key="tutor-1:screen"] video')), { what: 'the screen share live', timeout: 20000 });
  await new Promise((r) => setTimeout(r, 2500));
  await host.getByRole('button', { name: 'Stop sharing' }).click();
  await waitFor(async () => (await li.locator('.tile[data-key="tutor-1:screen"]').count()) === 0, { what: 'the share gone' });
  await new Promise((r) => setTimeout(r, 2500));
  await host.getByRole('button', { name: 'Stop recording' }).click();
  await li.locator('.rec').waitFor({ state: 'hidden' });

  const list = await waitFor(
    async () => {
      const l = await api('GET', `/sessions/${s.id}/recordings`);
      return l[0]?.finished && l[0].tracks.some((/** @type {any} */ t) => t.source === 'screen') ? l : null;
    },
    { what: 'a finished recording with a screen share' },
  );
  const rec = list[0];
  assert.ok(rec.duration_ms > 8000 && rec.duration_ms < 20000, `${rec.duration_ms} ms`);
  const screen = rec.tracks.find((/** @type {any} */ t) => t.source === 'screen');
  const camera = rec.tracks.find((/** @type {any} */ t) => t.source === 'camera');
  assert.ok(camera && camera.start_ms < 1500, JSON.stringify(rec.tracks));
  assert.ok(screen.start_ms > 2500 && screen.end_ms - screen.start_ms > 1500 && screen.end_ms < rec.duration_ms - 1500, JSON.stringify(screen));

  // The admin page lists it; "Watch" opens the replay.
  const admin = await newPage(browser, { lang: 'en', label: 'admin' });
  await admin.goto(`${BASE}/admin?lang=en`);
  await admin.getByLabel('Admin key').fill(ADMIN_KEY);
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.getByRole('button', { name: '回放 e2e' }).click();
  await admin.getByRole('link', { name: 'Watch' }).click();
  await admin.waitForURL(/\/replay\?/);
  const shown = admin.locator('video.replay-video:not([hidden])');
  await shown.waitFor();
  // The camera first, and nothing said yet.
  assert.equal(await shown.getAttribute('data-source'), 'camera');
  assert.equal(await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).count(), 0);
  const playBtn = admin.locator('.replay-controls .play');
  assert.match(await playBtn.innerText(), /^(Play|播放)$/);
  await playBtn.click();
  await waitFor(() => videoPlaying(shown), { what: 'the replay playing' });
  assert.equal(await admin.locator('.replay-player .notice').isVisible(), false, 'every file loads');
  // The host's microphone plays beside it.
  await waitFor(() => admin.locator('audio[data-owner="tutor-1"]').evaluate((a) => !(/** @type {HTMLAudioElement} */ (a).paused)), { what: 'the host heard' });
  // The message shows once playback passes its time (about 2.5 s in).
  await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).waitFor({ timeout: 10000 });
  const at = await replayMs(admin);
  assert.ok(at >= 2000, `shown at ${at} ms`);
  await shot(admin, 'replay-1280');

  // Into the share: the screen takes the main place and plays; after it the
  // camera is back, as in the live class.
  await seekTo(admin, (screen.start_ms + screen.end_ms) / 2000);
  await waitFor(async () => (await shown.getAttribute('data-source')) === 'screen', { what: 'the screen share in the replay' });
  await waitFor(() => videoPlaying(shown), { what: 'the screen share playing' });
  await shot(admin, 'replay-screen-1280');
  await seekTo(admin, (screen.end_ms + rec.duration_ms) / 2000);
  await waitFor(async () => (await shown.getAttribute('data-source')) === 'camera', { what: 'the camera back after the share' });
  await waitFor(() => videoPlaying(shown), { what: 'the camera playing again' });

  // Seeking back hides the message; seeking past it shows it again.
  assert.match(await playBtn.innerText(), /^(Pause|暂停)$/);
  await playBtn.click();
  await seekTo(admin, 0.5);
  await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).waitFor({ state: 'detached' });
  assert.equal(await shown.getAttribute('data-source'), 'camera');
  await seekTo(admin, 4.5);
  await admin.locator('.replay-chat .msg', { hasText: '回放里的消息' }).waitFor();

  // A teacher's replay link: the watched stretch is reported for grading.
  const link = await api('POST', `/sessions/${s.id}/replay-tokens`, { identity: 't-7', name: '补看的老师' });
  const teacher = await newPage(browser, { label: 'teacher' });
  const url = link.replay_url.startsWith(BASE) ? link.replay_url : `${BASE}/replay?session=${s.id}&token=${link.token}`;
  await teacher.goto(url);
  await teacher.locator('video.replay-video:not([hidden])').waitFor();
  await teacher.getByRole('button', { name: '播放' }).click();
  await new Promise((r) => setTimeout(r, 3000));
  await teacher.getByRole('button', { name: '暂停' }).click();
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
