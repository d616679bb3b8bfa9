// The people list and the video tiles as members come and go: nobody who is
// connected reads as "reconnecting" (least of all oneself), and the tiles
// keep one order on every page and every load — the host first, then stage
// members, then by join time.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, framesOf, joinUrl, launch, newPage, reenter, tileKeys, waitFor } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/**
 * The people tab's entries, as "identity: text".
 * @param {import('playwright-core').Page} page
 */
async function people(page) {
  await page.getByRole('tab', { name: '成员' }).click();
  return page.locator('.people .person').evaluateAll((els) =>
    els.map((e) => `${/** @type {HTMLElement} */ (e).dataset.identity}: ${/** @type {HTMLElement} */ (e).innerText.replace(/\s+/g, ' ')}`),
  );
}

test('people: a host and a participant, neither shown as reconnecting', async () => {
  const s = await createSession('seminar', '成员状态 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { label: 'host', lang: 'zh-CN' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { label: 'li', lang: 'zh-CN' });

  for (const [page, who] of /** @type {const} */ ([[host, 'host'], [li, 'li']])) {
    const list = await waitFor(async () => {
      const p = await people(page);
      return p.length === 2 ? p : null;
    }, { what: `two people in ${who}'s list` });
    assert.ok(list.every((x) => !x.includes('重连中')), `${who}'s people tab: ${list.join(' | ')}`);
  }

  // A fresh welcome (the page reopened) says the same.
  await reenter(li);
  const list = await waitFor(async () => {
    const p = await people(li);
    return p.length === 2 ? p : null;
  }, { what: "two people in Li's list after reopening" });
  assert.ok(list.every((x) => !x.includes('重连中')), `Li's people tab after reopening: ${list.join(' | ')}`);
  const hostList = await people(host);
  assert.ok(hostList.every((x) => !x.includes('重连中')), `host's people tab after Li reopened: ${hostList.join(' | ')}`);

  for (const p of [host, li]) await p.context().close();
});

test('people: a member whose link drops reads as reconnecting, and not once back', async () => {
  const s = await createSession('seminar', '掉线重连状态 e2e');
  const host = await newPage(browser, { label: 'host', lang: 'zh-CN' });
  const seen = framesOf(host, 'framereceived', (f) => typeof f.seq === 'number');
  await host.goto(await joinUrl(s.id, 'tutor-1', '王老师', 'host'));
  await host.locator('.join-btn').click();
  await host.locator('.status[data-state="open"]').waitFor();
  const liUrl = await joinUrl(s.id, 't-1', '李老师', 'participant');
  const li = await newPage(browser, { label: 'li', lang: 'zh-CN' });
  // Keeps the page's sockets, so the test can cut the link under it.
  await li.addInitScript(() => {
    const Orig = window.WebSocket;
    /** @type {any} */ (window).__sockets = [];
    window.WebSocket = class extends Orig {
      /** @param {string | URL} url @param {string | string[]} [p] */
      constructor(url, p) {
        super(url, p);
        /** @type {any} */ (window).__sockets.push(this);
      }
    };
  });
  await li.goto(liUrl);
  await li.locator('.join-btn').click();
  await li.locator('.status[data-state="open"]').waitFor();
  await waitFor(async () => (await people(host)).length === 2, { what: "Li in the host's list" });

  // The link drops and the page resumes by itself, inside the grace period:
  // the host is told both, and ends with Li connected.
  await li.evaluate(() => /** @type {any} */ (window).__sockets.at(-1).close());
  await waitFor(() => seen.some((e) => e.type === 'participant_connection' && e.identity === 't-1' && e.connected), {
    what: "Li's return told to the host",
  });
  const drops = seen.filter((e) => e.type === 'participant_connection' && e.identity === 't-1');
  assert.deepEqual(drops.map((e) => e.connected), [false, true]);
  const back = await people(host);
  assert.ok(back.every((x) => !x.includes('重连中')), `host's list after Li came back: ${back.join(' | ')}`);

  // The page goes away for good: reconnecting until the grace period ends,
  // then gone from the list.
  await li.context().close();
  await waitFor(async () => (await people(host)).some((x) => x.startsWith('t-1:') && x.includes('重连中')), {
    what: 'Li shown as reconnecting',
  });
  await waitFor(async () => (await people(host)).length === 1, { what: 'Li gone after the grace period', timeout: 15000 });
  await host.context().close();
});

test('tiles: the host first, then by join time, on every page and every load', async () => {
  const s = await createSession('seminar', '画面顺序 e2e');
  // Li comes first, the host second, Zhang last.
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { label: 'li' });
  const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { label: 'host' });
  const zhang = await enter(browser, await joinUrl(s.id, 't-2', '张老师', 'participant'), { label: 'zhang' });
  const want = ['tutor-1', 't-1', 't-2'];
  for (const [page, who] of /** @type {const} */ ([[li, 'li'], [host, 'host'], [zhang, 'zhang']])) {
    await waitFor(async () => (await tileKeys(page)).length === 3, { what: `three tiles for ${who}` });
    assert.deepEqual(await tileKeys(page), want, `tile order for ${who}`);
  }
  // Reloading does not reshuffle them, nor does someone reloading.
  await reenter(li);
  await waitFor(async () => (await tileKeys(li)).length === 3, { what: 'three tiles for Li after reopening' });
  assert.deepEqual(await tileKeys(li), want, 'tile order for Li after reopening');
  await reenter(host);
  await waitFor(async () => (await tileKeys(host)).length === 3, { what: 'three tiles for the host after reopening' });
  assert.deepEqual(await tileKeys(host), want, 'tile order for the host after reopening');
  assert.deepEqual(await tileKeys(zhang), want, 'tile order for Zhang after the others reopened');

  for (const p of [host, li, zhang]) await p.context().close();
});
