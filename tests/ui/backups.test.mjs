// Browser test of the Backups page (system administrators): the status with the passphrase configured
// (given to the server in ENCLAVE_BACKUP_PASSPHRASE), "Back up now", the new manual backup in the table,
// Verify on it (the system database and a tenant's), and its Download link.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { apiAs, bootstrapPassword, chooseNewPassword, launchBrowser, openPageIn, screenshots, signInAs, startServer } from './helpers.mjs';

const ADMIN_PASSWORD = 'backups test admin passphrase';
const shot = screenshots();
let server;
let browser;
let context;

before(async () => {
  server = await startServer({ env: { ENCLAVE_BACKUP_PASSPHRASE: 'backups test passphrase 42' } });
  browser = await launchBrowser();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('an administrator backs up now, verifies the backup and finds its download link', async () => {
  const { page, problems } = await openPageIn(context, [401]);
  await signInAs(page, server.base, 'admin', bootstrapPassword(server.dataDir));
  await chooseNewPassword(page, bootstrapPassword(server.dataDir), ADMIN_PASSWORD);
  await page.getByTestId('version').waitFor();
  // A tenant, so that the backup holds two databases (system and the tenant's).
  const tenant = await apiAs(page, 'POST', '/api/v1/tenants', { name: 'Lab', id: 'lab' });
  assert.equal(tenant.status, 201, JSON.stringify(tenant.body));

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Backups' }).click();
  await page.getByRole('heading', { name: 'Backups', level: 1 }).waitFor();
  assert.equal(await page.title(), 'Backups · Enclave');
  await page.getByTestId('backup-passphrase').getByText('passphrase configured').waitFor();
  assert.match(await page.getByTestId('backup-status').innerText(), /keeps the newest of 7 days and 4 weeks/);
  assert.match(await page.getByTestId('restore-note').innerText(), /enclave backup restore FILE --into DIR/);

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
