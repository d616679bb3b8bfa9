// What a teacher sees without hunting for it: the join button within the
// first screen on a laptop and on a phone, no empty gap above the chat box
// on a phone, no text a teacher must read below 14 px, and one visible name
// per action.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, joinUrl, launch, newPage, shot, waitFor } from './helpers.mjs';

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

/**
 * Visible elements with their own text whose computed font size is under
 * 14 px, as "tag.class "text" size".
 * @param {import('playwright-core').Page} page
 */
function smallText(page) {
  return page.evaluate(() => {
    /** @type {string[]} */
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && (n.textContent || '').trim());
      if (!own || !el.getClientRects().length) continue;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden') continue;
      const size = parseFloat(st.fontSize);
      if (size < 14) out.push(`${el.tagName.toLowerCase()}.${el.className} "${(el.textContent || '').trim().slice(0, 20)}" ${size}px`);
    }
    return out;
  });
}

/**
 * Visible controls that share their visible label with another control and
 * are not told apart by an accessible name of their own (per-row buttons
 * like "Invite" carry "Invite 李老师 to the stage").
 * @param {import('playwright-core').Page} page
 */
function sameLabels(page) {
  return page.evaluate(() => {
    /** @type {Map<string, { name: string, html: string }[]>} */
    const byLabel = new Map();
    for (const el of document.querySelectorAll('button, [role="tab"], a[href]')) {
      if (!el.getClientRects().length) continue;
      // The visible label, without a count like " (2)".
      const label = (/** @type {HTMLElement} */ (el).innerText || '').replace(/\s*\(\d+\)$/, '').trim();
      if (!label) continue;
      const list = byLabel.get(label) ?? [];
      list.push({ name: el.getAttribute('aria-label') || label, html: el.outerHTML.slice(0, 100) });
      byLabel.set(label, list);
    }
    return [...byLabel.entries()]
      .filter(([, l]) => l.length > 1 && new Set(l.map((x) => x.name)).size < l.length)
      .map(([label, l]) => `${label}: ${l.map((x) => x.html).join(' / ')}`);
  });
}

for (const [width, height] of SIZES) {
  test(`classroom at ${width}x${height}: text at least 14 px, one label per action`, async () => {
    const s = await createSession('seminar', '字号检查');
    const host = await enter(browser, await joinUrl(s.id, 'tutor-1', '王老师', 'host'), { lang: 'zh-CN', width, height, label: 'host' });
    const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { lang: 'zh-CN', width, height, label: 'li' });
    // Before any hand is up, the participant's "raise hand" button and
    // tabs are all there at once.
    await li.getByRole('button', { name: '举手', exact: true }).waitFor();
    for (const [page, who] of /** @type {const} */ ([[host, 'host'], [li, 'li']])) {
      assert.deepEqual(await sameLabels(page), [], `controls with the same label for ${who} on entering`);
    }
    await li.getByRole('textbox', { name: '聊天内容' }).fill('老师好');
    await li.getByRole('button', { name: '发送' }).click();
    await li.getByRole('button', { name: '举手', exact: true }).click();
    await host.locator('.chat-list .msg time').waitFor();
    await host.locator('.tile[data-key="t-1"] .tile-name').waitFor();

    for (const [page, who] of /** @type {const} */ ([[host, 'host'], [li, 'li']])) {
      const tabs = await page.getByRole('tab').evaluateAll((els) => els.filter((e) => e.getClientRects().length).map((e) => e.id));
      for (const id of tabs) {
        await page.locator(`#${id}`).click();
        if (id === 'tab-2') await page.locator('.hand-queue .hand time').waitFor();
        if (id === 'tab-3') await waitFor(async () => (await page.locator('.people .person').count()) === 2, { what: 'two people' });
        assert.deepEqual(await smallText(page), [], `text under 14 px for ${who}, tab ${id}`);
        assert.deepEqual(await sameLabels(page), [], `controls with the same label for ${who}, tab ${id}`);
      }
      if (width === 1280) await shot(page, `fonts-${who}-${width}`);
    }
    for (const p of [host, li]) await p.context().close();
  });
}
