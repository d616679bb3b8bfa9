// zh-CN (the default) and English, at phone (360 px) and desktop (1280 px)
// widths: the pages render in the right language without sideways
// scrolling, every control has an accessible name, and the language can be
// switched in the classroom without a reload. Screenshots are saved.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, joinUrl, launch, newPage, shot } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/**
 * Controls without an accessible name (visible ones only).
 * @param {import('playwright-core').Page} page
 */
function unnamed(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('button, input, select, textarea, a[href], [role="tab"]')]
      .filter((el) => /** @type {HTMLElement} */ (el).offsetParent !== null)
      .filter((el) => {
        const e = /** @type {HTMLInputElement} */ (el);
        const name =
          e.getAttribute('aria-label') ||
          [...(e.labels ?? [])].map((l) => l.textContent).join('') ||
          (e.tagName === 'INPUT' ? '' : e.textContent) ||
          e.getAttribute('title') ||
          '';
        return !name.trim();
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

/** @param {import('playwright-core').Page} page */
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

const EXPECT = {
  'zh-CN': { join: '进入课堂', send: '发送', hand: '举手' },
  en: { join: 'Join the class', send: 'Send', hand: 'Raise hand' },
};

for (const lang of /** @type {const} */ (['zh-CN', 'en'])) {
  for (const width of [360, 1280]) {
    test(`${lang} at ${width} px: join page and classroom`, async () => {
      const s = await createSession('seminar', lang === 'en' ? 'Reading seminar' : '四年级阅读教学研讨');
      const url = await joinUrl(s.id, `t-${lang}-${width}`, lang === 'en' ? 'Ms Li' : '李老师', 'participant');
      const page = await newPage(browser, { lang, width, height: width < 500 ? 740 : 800, label: `${lang}-${width}` });
      // The language comes from the saved choice or the default, not the URL.
      await page.goto(lang === 'en' ? `${url}&lang=en` : url);
      await page.getByRole('button', { name: EXPECT[lang].join }).waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
      await page.locator('.preview').evaluate((v) => new Promise((r) => (/** @type {HTMLVideoElement} */ (v).videoWidth ? r(0) : v.addEventListener('loadeddata', r))));
      await shot(page, `join-${lang}-${width}`);
      assert.ok((await overflow(page)) <= 0, 'no sideways scrolling on the join page');
      assert.deepEqual(await unnamed(page), []);

      await page.getByRole('button', { name: EXPECT[lang].join }).click();
      await page.locator('.status[data-state="open"]').waitFor();
      await page.getByRole('button', { name: EXPECT[lang].send }).waitFor();
      await page.getByRole('button', { name: EXPECT[lang].hand }).waitFor();
      await page.locator('.tile.self video').waitFor();
      await shot(page, `classroom-${lang}-${width}`);
      assert.ok((await overflow(page)) <= 0, 'no sideways scrolling in the classroom');
      assert.deepEqual(await unnamed(page), []);

      // Keyboard: the tabs move with the arrow keys.
      await page.getByRole('tab').first().focus();
      await page.keyboard.press('ArrowRight');
      assert.equal(await page.getByRole('tab').nth(1).getAttribute('aria-selected'), 'true');

      // Switch language in place: the page is not reloaded.
      await page.evaluate(() => (/** @type {any} */ (window).__same = 1));
      const other = lang === 'en' ? 'zh-CN' : 'en';
      await page.getByRole('combobox', { name: lang === 'en' ? 'Language' : '语言' }).selectOption(other);
      await page.getByRole('button', { name: EXPECT[other].hand }).waitFor();
      assert.equal(await page.evaluate(() => /** @type {any} */ (window).__same), 1);
      await page.context().close();
    });
  }
}
