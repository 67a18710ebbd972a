// Browser test of the Backups page (system administrators): the status with the passphrase configured
// (given to the server in ENCLAVE_BACKUP_PASSPHRASE), "Back up now", the new manual backup in the table,
// Verify on it (the system database and a tenant's), and its Download link; the settings form (a refused
// schedule shown at its field and nothing saved; valid settings saved and in effect at once); the restore
// drill run from the page, passing on the backup, and failing on a second server that has no backup yet.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { apiAs, bootstrapPassword, chooseNewPassword, launchBrowser, openPageIn, screenshots, signInAs, startServer } from './helpers.mjs';

const ADMIN_PASSWORD = 'backups test admin passphrase';
const PASSPHRASE = 'backups test passphrase 42';
const shot = screenshots();
let server;
let browser;
let context;
let signedIn = false;

before(async () => {
  server = await startServer({ env: { ENCLAVE_BACKUP_PASSPHRASE: PASSPHRASE } });
  browser = await launchBrowser();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Signs the first administrator in on `srv` (choosing a password) in the page's context. */
async function signInFirstAdmin(page, srv) {
  await signInAs(page, srv.base, 'admin', bootstrapPassword(srv.dataDir));
  await chooseNewPassword(page, bootstrapPassword(srv.dataDir), ADMIN_PASSWORD);
  await page.getByTestId('version').waitFor();
}

/** A page of the shared context on the Backups page, signed in (the first call signs in). */
async function openBackups(expectedStatuses = []) {
  const opened = await openPageIn(context, [401, ...expectedStatuses]);
  if (!signedIn) {
    await signInFirstAdmin(opened.page, server);
    signedIn = true;
  }
  await opened.page.goto(`${server.base}/backups`);
  await opened.page.getByRole('heading', { name: 'Backups', level: 1 }).waitFor();
  await opened.page.getByTestId('backup-status').waitFor();
  return opened;
}

test('an administrator backs up now, verifies the backup and finds its download link', async () => {
  const { page, problems } = await openPageIn(context, [401]);
  await signInFirstAdmin(page, server);
  signedIn = true;
  // A tenant, so that the backup holds two databases (system and the tenant's).
  const tenant = await apiAs(page, 'POST', '/api/v1/tenants', { name: 'Lab', id: 'lab' });
  assert.equal(tenant.status, 201, JSON.stringify(tenant.body));

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Backups' }).click();
  await page.getByRole('heading', { name: 'Backups', level: 1 }).waitFor();
  assert.equal(await page.title(), 'Backups · Enclave');
  await page.getByTestId('backup-passphrase').getByText('passphrase configured').waitFor();
  const status = await page.getByTestId('backup-status').innerText();
  assert.match(status, /keeps the newest of 7 days and 4 weeks/);
  assert.match(await page.getByTestId('backup-schedule').innerText(), /0 0 3 \* \* \* \(UTC\) · next run .* \(\d{4}-\d{2}-\d{2} 03:00 UTC\)/);
  assert.match(await page.getByTestId('backup-drill-schedule').innerText(), /0 30 4 \* \* 0 \(UTC\) · next drill .* \(\d{4}-\d{2}-\d{2} 04:30 UTC\)/);
  assert.match(await page.getByTestId('backup-settings-source').innerText(), /from the configuration file/);
  assert.match(await page.getByTestId('backup-last-drill').innerText(), /None since the server started/);
  const note = await page.getByTestId('restore-note').innerText();
  assert.match(note, /enclave backup restore FILE --into DIR/);
  assert.match(note, /enclave backup restore FILE --tenant ID/);
  assert.match(note, /enclave backup export-secrets --out FILE/);

  await page.getByRole('button', { name: 'Back up now' }).click();
  await page.getByTestId('backup-result').getByText('Backup written').waitFor({ timeout: 20000 });
  const row = page.getByTestId('backups-table').locator('tbody tr').first();
  await row.waitFor();
  assert.equal(await row.locator('[data-cell="kind"]').innerText(), 'manual');
  const file = await row.getAttribute('data-file');
  assert.ok(file, 'the row names its file');
  assert.match(await page.getByTestId('backup-last-run').innerText(), /succeeded/);

  await row.getByRole('button', { name: 'Verify' }).click();
  const verified = row.getByTestId('verify-result').getByText(/^Verified: \d+ files?, \d+ databases?$/);
  await verified.waitFor({ timeout: 20000 });
  const databases = Number((await verified.innerText()).match(/(\d+) databases?/)[1]);
  assert.ok(databases >= 2, await verified.innerText());

  const href = await row.getByRole('link', { name: 'Download' }).getAttribute('href');
  assert.equal(href, `/api/v1/backups/${encodeURIComponent(file)}`);
  await shot(page, 'backups');
  assert.deepEqual(problems, []);
  await page.close();
});

test('a five-field schedule is refused at its field and nothing is saved', async () => {
  const { page, problems } = await openBackups([400]);
  const form = page.getByTestId('backup-settings-form');
  const schedule = form.getByLabel('Backup schedule (cron)');
  assert.equal(await schedule.inputValue(), '0 0 3 * * *');
  await schedule.fill('0 3 * *');
  await form.getByLabel('Keep daily').fill('5');
  await form.getByRole('button', { name: 'Save settings' }).click();

  const message = form.getByTestId('settings-error-schedule');
  await message.waitFor();
  assert.match(await message.innerText(), /six-field cron expression/);
  assert.equal(await schedule.getAttribute('aria-invalid'), 'true');
  const describedBy = (await schedule.getAttribute('aria-describedby')).split(' ');
  assert.ok(describedBy.includes(await message.getAttribute('id')), describedBy.join(' '));
  // The field the server named has the focus; the user's input stays as typed.
  assert.equal(await page.evaluate(() => document.activeElement?.id), await schedule.getAttribute('id'));
  assert.equal(await schedule.inputValue(), '0 3 * *');
  assert.equal(await form.getByLabel('Keep daily').inputValue(), '5');
  assert.equal(await form.getByTestId('settings-saved').count(), 0);
  assert.equal(await form.getByLabel('Restore drill schedule (cron)').getAttribute('aria-invalid'), null);

  const overview = await apiAs(page, 'GET', '/api/v1/backups');
  assert.equal(overview.status, 200);
  assert.equal(overview.body.settings.schedule, '0 0 3 * * *');
  assert.equal(overview.body.settings.keep_daily, 7);
  assert.equal(overview.body.settings_source, 'config');
  await shot(page, 'backups-settings-refused');

  // Typing in the field takes its error away.
  await schedule.fill('0 0 3 * * *');
  await message.waitFor({ state: 'detached' });
  assert.equal(await schedule.getAttribute('aria-invalid'), null);
  assert.deepEqual(problems, []);
  await page.close();
});

test('saved settings apply at once and the status says where they come from', async () => {
  const { page, problems } = await openBackups();
  const form = page.getByTestId('backup-settings-form');
  await form.getByLabel('Backup schedule (cron)').fill('0 15 2 * * *');
  await form.getByLabel('Keep daily').fill('3');
  await form.getByLabel('Keep weekly').fill('2');
  await form.getByLabel('Restore drill schedule (cron)').fill('0 0 5 * * 1');
  await form.getByLabel('Alert webhook URL').fill('');
  await form.getByRole('button', { name: 'Save settings' }).click();
  await form.getByTestId('settings-saved').waitFor();

  await page.getByTestId('backup-settings-source').getByText('saved on this page').waitFor();
  const schedule = page.getByTestId('backup-schedule');
  assert.match(await schedule.innerText(), /0 15 2 \* \* \* \(UTC\) · next run .* \(\d{4}-\d{2}-\d{2} 02:15 UTC\)/);
  const nextRun = new Date(await schedule.locator('time').getAttribute('datetime'));
  assert.equal(nextRun.getUTCHours(), 2);
  assert.equal(nextRun.getUTCMinutes(), 15);
  const ahead = nextRun.getTime() - Date.now();
  assert.ok(ahead > 0 && ahead <= 24 * 3600 * 1000, `next run ${nextRun.toISOString()} within a day`);
  assert.match(await page.getByTestId('backup-status').innerText(), /keeps the newest of 3 days and 2 weeks/);
  const drill = page.getByTestId('backup-drill-schedule');
  assert.match(await drill.innerText(), /0 0 5 \* \* 1 \(UTC\) · next drill .* \(\d{4}-\d{2}-\d{2} 05:00 UTC\)/);
  assert.equal(new Date(await drill.locator('time').getAttribute('datetime')).getUTCDay(), 1, 'the drill runs on Mondays');
  assert.match(await page.getByTestId('backup-alerts').innerText(), /No alert webhook/);

  const overview = await apiAs(page, 'GET', '/api/v1/backups');
  assert.equal(overview.status, 200);
  assert.deepEqual(overview.body.settings,
    { schedule: '0 15 2 * * *', keep_daily: 3, keep_weekly: 2, drill_schedule: '0 0 5 * * 1', alert_webhook_url: null });
  assert.equal(overview.body.settings_source, 'saved');

  // A fresh load shows the saved values in the form.
  await page.reload();
  await page.getByTestId('backup-settings-source').getByText('saved on this page').waitFor();
  assert.equal(await form.getByLabel('Backup schedule (cron)').inputValue(), '0 15 2 * * *');
  assert.equal(await form.getByLabel('Keep daily').inputValue(), '3');
  assert.equal(await form.getByLabel('Keep weekly').inputValue(), '2');
  assert.equal(await form.getByLabel('Restore drill schedule (cron)').inputValue(), '0 0 5 * * 1');
  await shot(page, 'backups-settings-saved');
  assert.deepEqual(problems, []);
  await page.close();
});

test('the restore drill run from the page checks the newest backup', async () => {
  const { page, problems } = await openBackups();
  // The first test's backup, or one made here when this test runs alone.
  let listed = (await apiAs(page, 'GET', '/api/v1/backups')).body.backups;
  if (listed.length === 0) {
    const made = await apiAs(page, 'POST', '/api/v1/backups', {});
    assert.equal(made.status, 201, JSON.stringify(made.body));
    listed = (await apiAs(page, 'GET', '/api/v1/backups')).body.backups;
    await page.reload();
  }
  const newest = listed[0].file;

  await page.getByRole('button', { name: 'Run restore drill now' }).click();
  const result = page.getByTestId('drill-result').getByText('Restore drill passed');
  await result.waitFor({ timeout: 20000 });
  const text = await result.innerText();
  assert.ok(text.includes(newest), `${text} names ${newest}`);
  assert.match(text, /decrypted and checked \(\d+ files?, \d+ databases?\)/);

  const last = page.getByTestId('backup-last-drill');
  await last.getByText('passed').waitFor();
  assert.ok((await last.innerText()).includes(newest), await last.innerText());
  assert.equal(await page.getByTestId('backup-drill-failure').count(), 0);
  const overview = await apiAs(page, 'GET', '/api/v1/backups');
  assert.equal(overview.body.last_drill.ok, true);
  assert.equal(overview.body.last_drill.file, newest);
  assert.ok(overview.body.last_drill.databases_checked >= 1);
  await shot(page, 'backups-drill');
  assert.deepEqual(problems, []);
  await page.close();
});

test('a restore drill with no backup to verify fails and the status says so', async () => {
  // A second server with a passphrase and no backup yet; its own browser context (cookies ignore ports).
  const empty = await startServer({ env: { ENCLAVE_BACKUP_PASSPHRASE: PASSPHRASE } });
  const ownContext = await browser.newContext();
  try {
    const { page, problems } = await openPageIn(ownContext, [401]);
    await signInFirstAdmin(page, empty);
    await page.goto(`${empty.base}/backups`);
    await page.getByTestId('no-backups').waitFor();
    await page.getByRole('button', { name: 'Run restore drill now' }).click();
    await page.getByTestId('drill-result').getByText('The restore drill failed').waitFor({ timeout: 20000 });
    assert.match(await page.getByTestId('drill-result').innerText(), /there is no backup to verify/);

    const banner = page.getByTestId('backup-drill-failure');
    await banner.waitFor();
    assert.match(await banner.innerText(), /The last restore drill failed on .*there is no backup to verify/);
    assert.match(await page.getByTestId('backup-last-drill').innerText(), /failed/);
    const overview = await apiAs(page, 'GET', '/api/v1/backups');
    assert.equal(overview.body.last_drill.ok, false);
    assert.equal(overview.body.last_drill.file, null);
    await shot(page, 'backups-drill-failed');
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    await ownContext.close();
    await empty.stop();
  }
});
