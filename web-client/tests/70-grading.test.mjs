// Participation in the browser: a presence check the participant confirms,
// a quiz created, answered and closed with the right answer shown, and the
// host's participation report.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSession, enter, joinUrl, launch, shot } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('presence check, quiz and report', async () => {
  const s = await createSession('qa', '评分 e2e');
  const host = await enter(browser, await joinUrl(s.id, 'expert-1', '陈教授', 'host'), { label: 'host' });
  const li = await enter(browser, await joinUrl(s.id, 't-1', '李老师', 'participant'), { label: 'li', lang: 'zh-CN' });
  const zhang = await enter(browser, await joinUrl(s.id, 't-2', '张老师', 'participant'), { label: 'zhang' });

  // Only staff have the host tab.
  assert.equal(await li.getByRole('tab', { name: '主持' }).isVisible(), false);
  await host.getByRole('tab', { name: 'Host' }).click();
  await host.getByRole('button', { name: 'Start a presence check (60 s)' }).click();
  // Li sees the prompt (in Chinese) and confirms; Zhang does not.
  await li.getByRole('alertdialog').waitFor();
  await li.getByText('还在听课吗？').waitFor();
  await shot(li, 'presence-check-zh-1280');
  await li.getByRole('button', { name: '我在' }).click();
  await li.getByRole('alertdialog').waitFor({ state: 'hidden' });
  await zhang.getByRole('alertdialog').waitFor();
  await host.getByText('Check running: 1 confirmed').waitFor();

  // A quiz: the second option is right.
  await host.getByRole('tab', { name: 'Polls' }).click();
  await host.getByLabel('Poll question').fill('《草房子》的作者是谁？');
  await host.getByLabel('Options (one per line)').fill('沈石溪\n曹文轩\n杨红樱');
  await host.getByLabel(/Number\(s\) of the correct option/).fill('2');
  await host.getByRole('button', { name: 'Create', exact: true }).click();
  await host.getByRole('button', { name: 'Open poll' }).click();
  await li.getByText('有新的投票').waitFor();
  await li.getByRole('tab', { name: /投票/ }).click();
  await li.getByRole('radio', { name: '曹文轩' }).check();
  await li.getByRole('button', { name: '提交' }).click();
  await li.getByText('已提交').waitFor();
  await zhang.getByRole('tab', { name: /Polls/ }).click();
  await zhang.getByRole('radio', { name: '沈石溪' }).check();
  await zhang.getByRole('button', { name: 'Submit' }).click();
  await zhang.locator('.poll .badge', { hasText: 'answered' }).waitFor();
  await host.getByRole('button', { name: 'Close poll' }).click();
  // Everyone sees the result, with the right answer marked.
  await li.locator('.poll .result.correct', { hasText: '曹文轩' }).waitFor();
  await zhang.locator('.poll .result.chosen', { hasText: '沈石溪' }).waitFor();
  await shot(li, 'poll-result-zh-1280');

  // The host's report: Li passed the check and got the quiz right.
  await host.getByRole('tab', { name: 'Host' }).click();
  await host.getByRole('button', { name: 'Show report' }).click();
  const row = host.locator('table.attendance tr[data-identity="t-1"]');
  await row.waitFor();
  const cells = await row.locator('td').allInnerTexts();
  assert.equal(cells[0], '李老师');
  assert.equal(cells[2], '1/1', 'one check, passed');
  assert.equal(cells[5], '1/1', 'one quiz answer, correct');
  const zhangCells = await host.locator('table.attendance tr[data-identity="t-2"] td').allInnerTexts();
  assert.equal(zhangCells[5], '0/1');
  await shot(host, 'report-en-1280');

  for (const p of [host, li, zhang]) await p.context().close();
});
