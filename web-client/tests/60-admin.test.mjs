// The admin page: sign in with the key, create a session, make links for
// each role, see who is present, read attendance and download the CSV.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { ADMIN_KEY, BASE, launch, newPage, shot } from './helpers.mjs';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('admin: wrong key refused; create, links, present, attendance, CSV', async () => {
  const admin = await newPage(browser, { lang: 'en', label: 'admin' });
  await admin.goto(`${BASE}/admin?lang=en`);
  await admin.getByLabel('Admin key').fill('wrong-key');
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.getByText('Wrong admin key.').waitFor();

  await admin.getByLabel('Admin key').fill(ADMIN_KEY);
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.getByRole('heading', { name: 'Sessions' }).waitFor();
  await admin.getByLabel('Title').fill('管理页创建的研讨课');
  await admin.getByLabel('Type').selectOption('seminar');
  await admin.getByRole('button', { name: 'Create' }).click();
  await admin.getByRole('heading', { name: '管理页创建的研讨课' }).waitFor();

  // A link per role; the participant's is used below.
  const links = {};
  for (const [identity, name, role] of [
    ['tutor-5', '周老师', 'host'],
    ['mod-5', '吴老师', 'moderator'],
    ['t-55', '郑老师', 'participant'],
    ['obs-5', '督导', 'observer'],
  ]) {
    await admin.getByLabel('Identity (teacher id)').fill(identity);
    await admin.getByLabel('Display name').fill(name);
    await admin.getByLabel('Role').selectOption(role);
    await admin.getByRole('button', { name: 'Make link' }).click();
    const field = admin.getByRole('textbox', { name: `Join link for ${name}` });
    await field.waitFor();
    links[role] = await field.inputValue();
    assert.match(links[role], /\/join\?token=/);
  }
  await admin.getByRole('button', { name: 'Copy' }).first().click();
  await admin.getByText(/Copied|Copy failed/).first().waitFor();

  // The participant joins; the admin sees them present and in attendance.
  const teacher = await newPage(browser, { lang: 'en', label: 'teacher' });
  await teacher.goto(`${links.participant}&lang=en`);
  await teacher.getByRole('button', { name: 'Join the class' }).click();
  await teacher.locator('.status[data-state="open"]').waitFor();
  await admin.getByRole('button', { name: 'Refresh' }).click();
  await admin.locator('.present li', { hasText: '郑老师' }).waitFor();
  await admin.locator('table.attendance tbody tr', { hasText: 't-55' }).waitFor();
  // Links made earlier stay after a refresh; the list shows the session live.
  assert.equal(await admin.getByRole('textbox', { name: 'Join link for 郑老师' }).count(), 1);
  await admin.locator('.session-list li', { hasText: '管理页创建的研讨课' }).getByText('Live').waitFor();
  await shot(admin, 'admin-en-1280');

  const [download] = await Promise.all([admin.waitForEvent('download'), admin.getByRole('button', { name: 'Download CSV' }).click()]);
  const csv = await readFile(await download.path(), 'utf8');
  assert.ok(csv.startsWith('\uFEFF'), 'the CSV starts with a BOM so Excel reads Chinese names');
  assert.match(csv, /t-55/);
  assert.match(csv, /郑老师/);
  const [report] = await Promise.all([admin.waitForEvent('download'), admin.getByRole('button', { name: 'Download participation report (CSV)' }).click()]);
  const rcsv = await readFile(await report.path(), 'utf8');
  assert.match(rcsv, /^\uFEFFidentity,name,role,minutes_present/);
  assert.match(rcsv, /t-55,郑老师,participant/);
  for (const p of [admin, teacher]) await p.context().close();
});
