// Media that cannot connect is explained, not left as a dark tile: with UDP
// blocked (ICE cannot succeed against Lectern, which has no TCP media), the
// page says so in Chinese with what to try, and reports `media_report`
// failed to the server; when media comes back after "reconnect", the banner
// goes and `media_report` ok is sent, once.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, framesOf, joinUrl, launch, newPage, shot, videoPlaying, waitFor } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;
/**
 * Chromium that may send no UDP except through a proxy (there is none), so
 * it gathers no UDP candidates and ICE cannot start. (Chromium 148 reads
 * `--webrtc-ip-handling-policy`; the older `--force-…` spelling is ignored,
 * and with it ICE connects as usual.)
 * @type {import('playwright-core').Browser}
 */
let noUdp;

before(async () => {
  browser = await launch();
  noUdp = await launch(['--webrtc-ip-handling-policy=disable_non_proxied_udp', '--force-webrtc-ip-handling-policy=disable_non_proxied_udp']);
});

after(async () => {
  await browser?.close();
  await noUdp?.close();
});

/** Records every peer connection the page makes, in `window.__pcs`. */
function recordPcs() {
  const Orig = window.RTCPeerConnection;
  /** @type {RTCPeerConnection[]} */
  const pcs = [];
  /** @type {any} */ (window).__pcs = pcs;
  window.RTCPeerConnection = class extends Orig {
    /** @param {RTCConfiguration} [c] */
    constructor(c) {
      super(c);
      pcs.push(this);
    }
  };
}

/**
 * The `media_report` messages the page sent.
 * @param {import('playwright-core').Page} page
 */
const reportsOf = (page) => framesOf(page, 'framesent', (f) => f.type === 'media_report');

test('UDP blocked: the banner explains it in Chinese, the server is told', async () => {
  const s = await createSession('seminar', '网络拦截 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { lang: 'zh-CN', label: 'host' });
  const url = await joinUrl(s.id, 't-1', '李老师', 'participant');
  const li = await newPage(noUdp, { label: 'li (no UDP)' });
  await li.addInitScript(recordPcs);
  const sent = reportsOf(li);
  await li.goto(url);
  await li.locator('.join-btn').click();
  await li.locator('.status[data-state="open"]').waitFor();

  const banner = li.getByRole('alert').filter({ hasText: '音视频没有连通' });
  await banner.waitFor({ timeout: 40000 });
  await banner.getByText('网络管理员').waitFor();
  await banner.getByRole('button', { name: '重新连接音视频' }).waitFor();
  await banner.getByRole('button', { name: '改用仅音频' }).waitFor();
  await shot(li, 'media-blocked-zh-1280');

  // It really failed: no connection of Li's page ever connected, and the
  // host never sees Li's video.
  const states = await li.evaluate(() => /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__pcs).map((pc) => pc.connectionState));
  assert.ok(states.length > 0, 'the page made peer connections');
  assert.ok(!states.includes('connected'), `no connection connected: ${states.join(', ')}`);
  assert.equal(await videoPlaying(host.locator('.tile[data-key="t-1"] video')).catch(() => false), false);

  // Reported once, with a reason of the list.
  await waitFor(() => sent.length >= 1, { what: 'a media_report sent' });
  await new Promise((r) => setTimeout(r, 2000));
  const failed = sent.filter((m) => m.state === 'failed');
  assert.equal(failed.length, 1, `one failed report: ${JSON.stringify(sent)}`);
  assert.ok(['ice_failed', 'timeout'].includes(failed[0].reason), `reason ${failed[0].reason}`);
  assert.equal(sent.filter((m) => m.state === 'ok').length, 0);

  // Retrying cannot help here: the banner comes back, not a second report.
  await banner.getByRole('button', { name: '重新连接音视频' }).click();
  await li.getByText('正在重新连接音视频').waitFor();
  await waitFor(async () => (await banner.getByRole('button', { name: '重新连接音视频' }).isEnabled()), { what: 'the retry over', timeout: 40000 });
  assert.equal(sent.filter((m) => m.state === 'failed').length, 1, 'still one failed report');

  for (const p of [host, li]) await p.context().close();
});

/**
 * An init script: the page's first two peer connections may only use a
 * relay, and there is none, so they gather no candidates and cannot
 * connect (as behind a firewall that lets no UDP out); later ones are left
 * alone.
 */
function breakFirstTwo() {
  const Orig = window.RTCPeerConnection;
  let made = 0;
  window.RTCPeerConnection = class extends Orig {
    /** @param {RTCConfiguration} [c] */
    constructor(c) {
      super(made++ < 2 ? { ...c, iceTransportPolicy: 'relay' } : c);
    }
  };
}

test('media back after "reconnect": the banner goes, ok is reported once', async () => {
  const s = await createSession('seminar', '重连音视频 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { label: 'host' });
  const li = await newPage(browser, { lang: 'en', label: 'li (first connections broken)' });
  await li.addInitScript(breakFirstTwo);
  const sent = reportsOf(li);
  await li.goto(`${await joinUrl(s.id, 't-1', 'Li', 'participant')}&lang=en`);
  await li.locator('.join-btn').click();
  await li.locator('.status[data-state="open"]').waitFor();
  const banner = li.getByRole('alert').filter({ hasText: 'Audio and video could not connect' });
  await banner.waitFor({ timeout: 40000 });
  await waitFor(() => sent.some((m) => m.state === 'failed'), { what: 'the failed report' });
  assert.equal(sent.find((m) => m.state === 'failed').reason, 'timeout');

  await banner.getByRole('button', { name: 'Reconnect media' }).click();
  await banner.waitFor({ state: 'hidden', timeout: 30000 });
  await waitFor(() => videoPlaying(li.locator('.tile[data-key="tutor-1"] video')), { what: "the host's video at Li", timeout: 20000 });
  await waitFor(() => videoPlaying(host.locator('.tile[data-key="t-1"] video')), { what: "Li's video at the host", timeout: 20000 });
  await waitFor(() => sent.some((m) => m.state === 'ok'), { what: 'the ok report' });
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(sent.map((m) => m.state), ['failed', 'ok']);
  for (const p of [host, li]) await p.context().close();
});

test(
  "the host's people list marks a member whose media failed, until it works",
  async () => {
    const s = await createSession('seminar', '成员音视频标记 e2e');
    const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { lang: 'zh-CN', label: 'host' });
    const li = await newPage(browser, { label: 'li (first connections broken)' });
    await li.addInitScript(breakFirstTwo);
    await li.goto(await joinUrl(s.id, 't-1', '李老师', 'participant'));
    await li.locator('.join-btn').click();
    await li.locator('.status[data-state="open"]').waitFor();
    await host.getByRole('tab', { name: '成员' }).click();
    const mark = host.locator('.person[data-identity="t-1"] .media-failed', { hasText: '音视频未连通' });
    await mark.waitFor({ timeout: 40000 });
    await li.getByRole('button', { name: '重新连接音视频' }).click();
    await mark.waitFor({ state: 'detached', timeout: 30000 });
    for (const p of [host, li]) await p.context().close();
  },
);
