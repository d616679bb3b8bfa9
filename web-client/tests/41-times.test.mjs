// Times follow the page's language, not the browser's: a Chinese page in an
// en-US browser shows "14:53", an English page in a zh-CN browser "2:53 PM"
// — for chat and raised hands alike.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, joinUrl, launch } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/**
 * Each `<time>` in `selector`: its text, and the clock time it stands for
 * (hours 0-23 and minutes, in the page's time zone).
 * @param {import('playwright-core').Page} page
 * @param {string} selector
 */
function times(page, selector) {
  return page.locator(selector).evaluateAll((els) =>
    els.map((e) => {
      const d = new Date(e.getAttribute('datetime') || '');
      return { text: (e.textContent || '').trim(), h: d.getHours(), m: d.getMinutes() };
    }),
  );
}

const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
/** zh-CN: 24-hour, two digits. */
const zh = (/** @type {number} */ h, /** @type {number} */ m) => `${pad(h)}:${pad(m)}`;
/** English: 12-hour with AM/PM (the space before it may be a narrow one). */
const en = (/** @type {number} */ h, /** @type {number} */ m) => `${h % 12 || 12}:${pad(m)} ${h < 12 ? 'AM' : 'PM'}`;

for (const [pageLang, browserLocale] of /** @type {const} */ ([['zh-CN', 'en-US'], ['en', 'zh-CN']])) {
  test(`times: a ${pageLang} page in a ${browserLocale} browser`, async () => {
    const s = await createSession('seminar', 'times e2e');
    const page = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { lang: pageLang, locale: browserLocale, label: `${pageLang} in ${browserLocale}` });
    const chat = pageLang === 'en' ? 'Chat message' : '聊天内容';
    await page.getByRole('textbox', { name: chat }).fill('几点了？');
    await page.getByRole('textbox', { name: chat }).press('Enter');
    await page.locator('.chat-list .msg', { hasText: '几点了？' }).waitFor();
    await page.getByRole('button', { name: pageLang === 'en' ? 'Raise hand' : '举手', exact: true }).click();
    await page.getByRole('tab').nth(2).click(); // the raised hands
    await page.locator('.hand-queue .hand time').waitFor();

    const all = [...(await times(page, '.chat-list .msg time')), ...(await times(page, '.hand-queue .hand time'))];
    assert.equal(all.length, 2);
    for (const x of all) {
      const want = pageLang === 'en' ? en(x.h, x.m) : zh(x.h, x.m);
      assert.equal(x.text.replace(/\s+/g, ' '), want, `a time on the ${pageLang} page`);
    }
    await page.context().close();
  });
}
