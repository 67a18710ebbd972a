// Browser tests of the web UI shell: the real `enclave` binary ($ENCLAVE_BIN) on a random loopback port
// with a fresh data directory, driven through Debian's chromium by playwright-core.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  apiAs, bootstrapPassword, chooseNewPassword, installationIdOf, installLicenseByApi, issueLicense, launchBrowser, openPageIn,
  screenshots, signInAs as signInWith, startServer,
} from './helpers.mjs';

const shot = screenshots();
let server;
let base;
let dataDir;
let browser;
let context; // signed in as the administrator by the first test
const ADMIN_PASSWORD = 'ui test admin passphrase';

/** Opens a page (by default in the administrator's context) that records problems; see helpers.mjs. */
function openPage(expectedStatuses = [], inContext = context) {
  return openPageIn(inContext, expectedStatuses);
}

/** RFC 6238 TOTP (SHA-1, 30 s, 6 digits) for a base32 secret, as an authenticator app computes it. */
function totp(base32Secret, offsetSteps = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32Secret) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offsetSteps));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1000000).padStart(6, '0');
}

/** Creates a local account through the API as the signed-in administrator (shared context). */
async function createAccount(username, password) {
  const admin = await openPage();
  await admin.page.goto(`${base}/`);
  await admin.page.getByTestId('version').waitFor();
  const created = await apiAs(admin.page, 'POST', '/api/v1/users', { username, password, must_change_password: false });
  assert.equal(created.status, 201);
  await admin.page.close();
}

/** Signs in through the form and waits for the overview (accounts without a single tenant land there). */
async function signInAs(page, username, password, code = null) {
  await signInWith(page, base, username, password, code);
  await page.getByTestId('version').waitFor();
}

before(async () => {
  server = await startServer();
  ({ base, dataDir } = server);
  browser = await launchBrowser();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('first sign-in with the one-time password forces a password change', async () => {
  const notice = join(dataDir, 'bootstrap-admin.txt');
  const oneTime = bootstrapPassword(dataDir);
  // 401: the session check before signing in; 400: the refused common password.
  const { page, problems } = await openPage([400, 401]);
  await page.goto(`${base}/tenants`);
  // Not signed in: the app shows the sign-in page.
  await page.getByRole('heading', { name: 'Sign in to Enclave' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(oneTime);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Choose your password' }).waitFor();
  await shot(page, 'first-password');
  await page.getByLabel('Current password').fill(oneTime);
  // Long enough for the browser, but one of the most common passwords: the server refuses it.
  await page.getByLabel('New password', { exact: true }).fill('123qweasdzxc');
  await page.getByLabel('New password again').fill('123qweasdzxc');
  await page.getByRole('button', { name: 'Save password' }).click();
  await page.getByRole('alert').filter({ hasText: 'most commonly used passwords' }).waitFor();
  await chooseNewPassword(page, oneTime, ADMIN_PASSWORD);
  // Back where the administrator was going before signing in.
  await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/tenants');
  assert.equal(existsSync(notice), false, 'the notice file is gone once the password is changed');
  assert.deepEqual(problems, []);
  await page.close();
});

test('licence: a fresh server runs the community plan; an enterprise licence is installed for the tests that follow', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/`);
  await page.getByTestId('version').waitFor();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Licence' }).click();
  await page.getByRole('heading', { name: 'Licence', level: 1 }).waitFor();
  assert.equal(await page.title(), 'Licence · Enclave');
  assert.equal(await page.getByTestId('license-state').textContent(), 'Community (free plan)');
  assert.equal(await page.getByTestId('license-edition').textContent(), 'Community');
  await page.getByText('No licence is installed: the free community plan is in force.').waitFor();
  // The community plan: 5 users (the administrator is one), 1 tenant, no features.
  assert.match(await page.getByTestId('limit-users').textContent(), /1 of 5/);
  assert.equal(await page.getByTestId('limit-users').getAttribute('data-level'), 'ok');
  assert.match(await page.getByTestId('limit-tenants').textContent(), /0 of 1/);
  assert.match(await page.getByTestId('quota-api_requests').textContent(), /1\D?000$/);
  assert.equal(await page.getByTestId('feature-ldap').getAttribute('data-included'), 'no');
  assert.equal(await page.getByTestId('license-banner').count(), 0, 'no banner for the community plan');
  const id = await installationIdOf(page);
  assert.equal(await page.getByTestId('installation-id').textContent(), id);
  await shot(page, 'license-community');

  // The other tests create more accounts and tenants than the community plan allows.
  const enterprise = issueLicense('--installation-id', id, '--customer', 'UI Test Corp', '--edition', 'enterprise', '--days', '400');
  const installed = await installLicenseByApi(page, enterprise);
  assert.equal(installed.status, 200, JSON.stringify(installed.body));
  assert.equal(installed.body.edition, 'Enterprise');
  assert.deepEqual(installed.body.state, { state: 'valid' });
  assert.equal(installed.body.banner, null);
  assert.deepEqual(problems, []);
  await page.close();
});

test('overview shows version, readiness and models', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/`);
  await page.getByTestId('version').waitFor();
  const version = await page.getByTestId('version').textContent();
  assert.match(version, /^\d+\.\d+\.\d+$/);
  await page.getByText('Ready', { exact: true }).waitFor();
  await page.getByRole('cell', { name: 'all-MiniLM-L6-v2', exact: true }).waitFor();
  // This data directory has no models: the page says how to fetch them.
  if (await page.locator('.pill-missing').count() > 0) {
    assert.match(await page.getByTestId('models-missing').textContent(), /scripts\/fetch-models\.sh/);
  }
  assert.equal(await page.title(), 'Overview · Enclave');
  await shot(page, 'overview');
  assert.deepEqual(problems, []);
  await page.close();
});

test('tenants: create through the form, duplicate shows the server message', async () => {
  const { page, problems } = await openPage([409]);
  await page.goto(`${base}/tenants`);
  await page.getByText('No tenants yet').waitFor();
  await page.getByLabel('Name').fill('Sales Team');
  await page.getByRole('button', { name: 'Create tenant' }).click();
  await page.getByRole('status').filter({ hasText: 'Created tenant' }).waitFor();
  const row = page.getByTestId('tenant-table').getByRole('row', { name: /sales-team/ });
  await row.waitFor();
  assert.match(await row.textContent(), /Sales Team/);

  await page.getByLabel('Name').fill('Sales Team');
  await page.getByRole('button', { name: 'Create tenant' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /tenant sales-team already exists/);
  assert.match(await alert.textContent(), /tenant_exists/);
  assert.match(await alert.textContent(), /Request id: [0-9a-f]{24}/);
  await shot(page, 'tenants');
  assert.deepEqual(problems, []);
  await page.close();
});

test('API reference lists the tenant operations with their schemas', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/api-docs`);
  const create = page.getByTestId('op-post-/api/v1/tenants');
  await create.waitFor();
  await page.getByTestId('op-get-/api/v1/tenants').waitFor();
  await create.locator('summary').click();
  const body = create.locator('.op-body');
  await body.getByRole('heading', { name: 'Request body' }).waitFor();
  const nameRow = body.getByRole('row', { name: /^name \* string Display name/ }).first();
  await nameRow.waitFor();
  assert.match(await body.textContent(), /409 a tenant with this id exists/);
  assert.match(await body.textContent(), /ErrorResponse/);
  // A response schema built with allOf ($ref to TenantRecord + its own fields) shows the fields of both.
  const detail = page.getByTestId('op-get-/api/v1/tenants/{tenant}');
  await detail.locator('summary').click();
  const detailBody = detail.locator('.op-body');
  await detailBody.getByRole('row', { name: /^tenant \* path string/ }).waitFor();
  await detailBody.getByRole('row', { name: /^database_bytes \* integer \(int64\)/ }).waitFor();
  await detailBody.getByRole('row', { name: /^name \* string Display name/ }).first().waitFor();
  await shot(page, 'api-docs');
  assert.deepEqual(problems, []);
  await page.close();
});

test('a wrong password shows the generic message and no session', async () => {
  const other = await browser.newContext();
  const { page, problems } = await openPage([401], other);
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('correct horse battery staple');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /invalid username or password/);
  assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password field is cleared');
  await shot(page, 'login');
  assert.deepEqual(problems, []);
  await other.close();
});

test('navigation changes pages without reloading; unknown routes show not found', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/`);
  await page.getByTestId('version').waitFor();
  await page.evaluate(() => { window.__marker = 'same-document'; });
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tenants' }).click();
  await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/tenants');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API reference' }).click();
  await page.getByRole('heading', { name: 'API reference' }).waitFor();
  assert.equal(await page.evaluate(() => window.__marker), 'same-document', 'navigation reloaded the page');
  await page.goBack();
  await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
  // From the keyboard: Enter on a menu link changes the page and puts the focus on the new content.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('version').waitFor();
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'main');
  assert.equal(await page.evaluate(() => window.__marker), 'same-document', 'keyboard navigation reloaded the page');

  await page.goto(`${base}/no/such/page`);
  await page.getByRole('heading', { name: 'Page not found' }).waitFor();
  await shot(page, 'not-found');
  assert.deepEqual(problems, []);
  await page.close();
});

test('every page loads directly by its URL (deep link) under the CSP, without errors', async () => {
  const pages = [
    ['/', 'Overview'], ['/tenants', 'Tenants'], ['/users', 'Accounts'], ['/audit', 'Audit log'],
    ['/api-docs', 'API reference'], ['/account/password', 'Change password'], ['/tenants/sales-team', 'Sales Team'],
    ['/license', 'Licence'], ['/usage', 'Usage'], ['/tenants/sales-team/usage', 'Usage'], ['/directories', 'Directories'],
    ['/models', 'Models'], ['/playground', 'Playground'],
  ];
  for (const [path, heading] of pages) {
    const { page, problems } = await openPage();
    const response = await page.goto(`${base}${path}`);
    assert.equal(response.status(), 200, path);
    assert.match(response.headers()['content-type'], /^text\/html/, path);
    assert.match(response.headers()['content-security-policy'] || '', /script-src 'self'/, `${path}: CSP header`);
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, path, `${path} stays where it was opened`);
    // The layout: banner, main navigation and main content are there on every page.
    await page.getByRole('banner').waitFor();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.getByRole('main').waitFor();
    await page.waitForLoadState('networkidle');
    assert.deepEqual(problems, [], path);
    await page.close();
  }
});

test('an administrator runs a tenant from the browser: account, member, API key, audit', async () => {
  // 401: the revoked key's own request, made on purpose.
  const { page, problems } = await openPage([401]);
  // A new account with a temporary password.
  await page.goto(`${base}/users`);
  await page.getByLabel('Username').fill('nina');
  await page.getByLabel('Temporary password').fill('nina temporary passphrase');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByTestId('user-table').getByRole('row', { name: /nina/ }).waitFor();

  // Nina becomes an editor of the tenant created earlier.
  await page.goto(`${base}/tenants`);
  await page.getByRole('link', { name: 'sales-team' }).click();
  await page.getByRole('heading', { name: /Sales Team/ }).waitFor();
  await page.getByRole('form', { name: 'Add a member' }).getByLabel('Username').fill('nina');
  await page.getByRole('form', { name: 'Add a member' }).getByLabel('Role').selectOption('editor');
  await page.getByRole('button', { name: 'Add member' }).click();
  await page.getByTestId('member-table').getByRole('row', { name: /nina/ }).waitFor();

  // An API key: the secret is shown once, then it is revoked.
  await page.getByRole('tab', { name: 'API keys' }).click();
  await page.getByLabel('Name').fill('nightly import');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = (await page.getByTestId('new-secret').locator('code').textContent()).trim();
  assert.match(secret, /^ek_live_[0-9a-f]{48}$/);
  const viaKey = await page.evaluate(async (k) => (await fetch('/api/v1/tenants/sales-team', { headers: { Authorization: `Bearer ${k}` } })).status, secret);
  assert.equal(viaKey, 200);
  await shot(page, 'api-key-created');
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByTestId('key-table').getByRole('button', { name: 'Revoke' }).click();
  await page.getByTestId('key-table').getByText('revoked').waitFor();
  const afterRevoke = await page.evaluate(async (k) => (await fetch('/api/v1/tenants/sales-team', { headers: { Authorization: `Bearer ${k}` } })).status, secret);
  assert.equal(afterRevoke, 401);

  // Both show in the tenant's audit log.
  await page.getByRole('tab', { name: 'Audit log' }).click();
  const auditTable = page.getByTestId('audit-table');
  await auditTable.getByRole('cell', { name: 'api_key.revoke', exact: true }).waitFor();
  await auditTable.getByRole('cell', { name: 'api_key.create', exact: true }).waitFor();
  await auditTable.getByRole('cell', { name: 'member.set', exact: true }).waitFor();
  await shot(page, 'tenant-audit');
  assert.deepEqual(problems, []);
  await page.close();

  // Nina signs in in her own browser, chooses her password, and finds the tenant in her switcher.
  const ninaContext = await browser.newContext();
  const nina = await openPage([401], ninaContext);
  await nina.page.goto(`${base}/login`);
  await nina.page.getByLabel('Username').fill('nina');
  await nina.page.getByLabel('Password').fill('nina temporary passphrase');
  await nina.page.getByRole('button', { name: 'Sign in' }).click();
  await nina.page.getByRole('heading', { name: 'Choose your password' }).waitFor();
  await chooseNewPassword(nina.page, 'nina temporary passphrase', 'nina chose this passphrase');
  // Her only tenant: she lands on it, with her role shown.
  await nina.page.getByRole('heading', { name: /Sales Team/ }).waitFor();
  assert.equal(new URL(nina.page.url()).pathname, '/tenants/sales-team');
  assert.equal(await nina.page.getByTestId('my-role').textContent(), 'editor');
  // The switcher goes elsewhere and back.
  await nina.page.getByRole('link', { name: 'Overview' }).click();
  await nina.page.getByTestId('version').waitFor();
  await nina.page.getByLabel('Switch tenant').selectOption('sales-team');
  await shot(nina.page, 'editor-switch');
  await nina.page.getByRole('heading', { name: /Sales Team/ }).waitFor({ timeout: 5000 });
  // An editor sees the members but no key or audit tabs, and no admin pages.
  assert.equal(await nina.page.getByRole('tab', { name: 'API keys' }).count(), 0);
  assert.equal(await nina.page.getByRole('link', { name: 'Accounts' }).count(), 0);
  await shot(nina.page, 'editor-view');
  assert.deepEqual(nina.problems, []);
  await ninaContext.close();
});

test('an invitation link is accepted in a second browser after signing in', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/users`);
  await page.getByLabel('Username').fill('omar');
  await page.getByLabel('Temporary password').fill('omar temporary passphrase');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByTestId('user-table').getByRole('row', { name: /omar/ }).waitFor();
  await page.goto(`${base}/tenants/sales-team`);
  const inviteForm = page.getByRole('form', { name: 'Invite someone' });
  await inviteForm.getByLabel('Username or e-mail').fill('omar');
  await inviteForm.getByLabel('Role').selectOption('viewer');
  await inviteForm.getByRole('button', { name: 'Invite' }).click();
  const link = (await page.getByTestId('invite-link').locator('code').textContent()).trim();
  assert.match(link, /\/invite\/[0-9a-f]{48}$/);
  await page.getByTestId('invitation-table').getByRole('row', { name: /omar/ }).waitFor();
  await shot(page, 'invitation');
  assert.deepEqual(problems, []);
  await page.close();

  const omarContext = await browser.newContext();
  const omar = await openPage([401], omarContext);
  await omar.page.goto(link);
  // Not signed in: sign in first, choose a password, then land back on the invitation.
  await omar.page.getByRole('heading', { name: 'Sign in to Enclave' }).waitFor();
  await omar.page.getByLabel('Username').fill('omar');
  await omar.page.getByLabel('Password').fill('omar temporary passphrase');
  await omar.page.getByRole('button', { name: 'Sign in' }).click();
  await chooseNewPassword(omar.page, 'omar temporary passphrase', 'omar picked his passphrase');
  await omar.page.getByRole('button', { name: 'Accept invitation' }).click();
  await omar.page.getByRole('status').filter({ hasText: 'You joined sales-team as viewer' }).waitFor();
  await omar.page.getByRole('link', { name: 'Open the tenant' }).click();
  await omar.page.getByRole('heading', { name: /Sales Team/ }).waitFor();
  await shot(omar.page, 'invitation-accepted');
  assert.deepEqual(omar.problems, []);
  await omarContext.close();
});

test('two-factor setup from the profile, then sign-in asks for the code', async () => {
  const ctx = await browser.newContext();
  const { page, problems } = await openPage([401], ctx);
  // An account made through the API, signed in through the form.
  await createAccount('tara', 'tara has a long passphrase');
  const signIn = (code) => signInAs(page, 'tara', 'tara has a long passphrase', code);
  await signIn(null);
  await page.getByRole('link', { name: 'tara' }).click();
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const secret = (await page.getByTestId('totp-secret').textContent()).trim();
  await page.getByLabel('Code from the app').fill(totp(secret, -1));
  await page.getByRole('button', { name: 'Turn on' }).click();
  const codes = (await page.getByTestId('recovery-codes').locator('code').textContent()).trim().split(/\s+/);
  assert.equal(codes.length, 10);
  await shot(page, 'two-factor');
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { name: 'Sign in to Enclave' }).waitFor();
  await signIn(() => totp(secret));
  assert.deepEqual(problems.filter((p) => !p.includes('401')), []);
  await ctx.close();
});

test('the profile lists sessions and ends the one in another browser', async () => {
  await createAccount('uma', 'uma has a long passphrase');
  const signIn = (page) => signInAs(page, 'uma', 'uma has a long passphrase');
  const laptopCtx = await browser.newContext();
  const phoneCtx = await browser.newContext();
  const laptop = await openPage([401], laptopCtx);
  const phone = await openPage([401], phoneCtx);
  await signIn(phone.page);
  await signIn(laptop.page);

  await laptop.page.getByRole('link', { name: 'uma' }).click();
  const rows = laptop.page.getByTestId('session-table').locator('tbody tr');
  await rows.nth(1).waitFor();
  assert.equal(await rows.count(), 2);
  await laptop.page.getByTestId('session-table').getByText('(this browser)').waitFor();
  await shot(laptop.page, 'sessions');
  await laptop.page.getByRole('button', { name: 'End session', exact: true }).click();
  await laptop.page.waitForFunction(() => document.querySelectorAll('[data-testid=session-table] tbody tr').length === 1);

  // The other browser is signed out at its next request.
  await phone.page.goto(`${base}/`);
  await phone.page.getByRole('heading', { name: 'Sign in to Enclave' }).waitFor();
  assert.deepEqual(laptop.problems, []);
  await laptopCtx.close();
  await phoneCtx.close();
});

// The activation request saved by the browser; the vendor tool issues the Pro licence from it.
let activationRequestFile;
const licenseFiles = mkdtempSync(join(tmpdir(), 'enclave-ui-licenses-'));
after(() => rmSync(licenseFiles, { recursive: true, force: true }));

test('licence: the activation request as QR code, text and file; the usage report downloads', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/license`);
  await page.getByRole('heading', { name: 'Licence', level: 1 }).waitFor();
  assert.equal(await page.getByTestId('license-edition').textContent(), 'Enterprise');
  assert.equal(await page.getByTestId('license-state').textContent(), 'Valid');
  assert.match(await page.getByTestId('limit-users').textContent(), /unlimited/);
  assert.equal(await page.getByTestId('feature-sso').getAttribute('data-included'), 'yes');
  const id = await installationIdOf(page);

  await page.getByRole('button', { name: 'Copy the installation id' }).click();
  await page.getByRole('status').filter({ hasText: /Copied|Selected/ }).waitFor();

  await page.getByRole('button', { name: 'Create activation request' }).click();
  const qr = page.getByTestId('activation-qr');
  await qr.waitFor();
  assert.match(await qr.getAttribute('src'), /^data:image\/svg\+xml;base64,/);
  // The browser decoded the server's SVG under the CSP: the image has a size.
  await page.waitForFunction(() => {
    const img = document.querySelector('[data-testid=activation-qr]');
    return img && img.complete && img.naturalWidth > 0;
  });
  const text = await page.getByLabel('Activation request').inputValue();
  assert.ok(text.startsWith('-----BEGIN ENCLAVE ACTIVATION REQUEST-----'), text.slice(0, 60));
  assert.equal(await page.getByLabel('Activation request').isEditable(), false, 'the request is read-only');

  const [requestDownload] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download request' }).click(),
  ]);
  assert.equal(requestDownload.suggestedFilename(), 'enclave-activation-request.txt');
  activationRequestFile = join(licenseFiles, 'activation-request.txt');
  await requestDownload.saveAs(activationRequestFile);
  const saved = readFileSync(activationRequestFile, 'utf8');
  assert.ok(saved.startsWith('-----BEGIN ENCLAVE ACTIVATION REQUEST-----'));
  assert.equal(saved, text);

  const [reportDownload] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download usage report' }).click(),
  ]);
  assert.equal(reportDownload.suggestedFilename(), 'enclave-usage-report.txt');
  const report = readFileSync(await reportDownload.path(), 'utf8');
  assert.ok(report.startsWith('-----BEGIN ENCLAVE USAGE REPORT-----'), report.slice(0, 60));
  assert.match(await page.getByTestId('installation-id').textContent(), new RegExp(`^${id}$`));
  await shot(page, 'license-activation');
  assert.deepEqual(problems, []);
  await page.close();
});

test('licence: a Pro licence from a file expires in 10 days: state, banner and limits', async () => {
  assert.ok(activationRequestFile, 'the activation request from the previous test');
  const { page, problems } = await openPage();
  await page.goto(`${base}/license`);
  await page.getByTestId('license-state').waitFor();
  // Issued from the browser's activation request, as the vendor would: bound to this installation.
  const pro = issueLicense('--request', activationRequestFile, '--customer', 'Pro Customer Ltd', '--edition', 'pro',
    '--days', '10', '--users', '50', '--tenants', '20');
  await page.getByLabel('Licence file').setInputFiles({ name: 'pro.lic', mimeType: 'text/plain', buffer: Buffer.from(pro) });
  await page.getByText('Read pro.lic').waitFor();
  await page.getByRole('button', { name: 'Install licence' }).click();
  await page.getByTestId('license-installed').filter({ hasText: 'Installed the Pro licence for Pro Customer Ltd' }).waitFor();

  assert.equal(await page.getByTestId('license-state').textContent(), 'Expiring in 10 days');
  assert.equal(await page.getByTestId('license-edition').textContent(), 'Pro');
  assert.equal(await page.getByTestId('license-customer').textContent(), 'Pro Customer Ltd');
  assert.match(await page.getByTestId('license-facts').textContent(), /\(this one\)/);
  assert.match(await page.getByTestId('license-facts').textContent(), /enclave-test-1/);
  // The licence's limits, against what the earlier tests created.
  const users = page.getByTestId('limit-users');
  assert.match(await users.textContent(), /^Users \(active accounts\)\d+ of 50/);
  assert.equal(await users.locator('progress').getAttribute('max'), '50');
  assert.match(await page.getByTestId('limit-tenants').textContent(), /1 of 20/);
  assert.match(await page.getByTestId('limit-storage').textContent(), /of 50 GB/);
  assert.match(await page.getByTestId('limit-users-per-tenant').textContent(), /unlimited/);
  // Seat counting: the period maximum includes today's accounts (five by now), not only older snapshots.
  assert.match(await page.getByTestId('period-max').textContent(), /^Billable users5Active users \(30 days\)\d+Tenants1Storage/);
  assert.equal(await page.getByTestId('feature-multi_tenant').getAttribute('data-included'), 'yes');
  assert.equal(await page.getByTestId('feature-ldap').getAttribute('data-included'), 'no');
  assert.equal(await page.getByLabel('Licence text').inputValue(), '', 'the form is emptied');

  // The banner: a warning (status, not alert) with the days and, for an administrator, a link here.
  const banner = page.getByTestId('license-banner');
  await banner.waitFor();
  assert.equal(await banner.getAttribute('role'), 'status');
  assert.match(await banner.textContent(), /expires in 10 day/);
  await banner.getByRole('link', { name: 'Licence' }).waitFor();
  await shot(page, 'license-pro-expiring');
  // On a phone the page stacks its cards and does not scroll sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling on a phone');
  await shot(page, 'license-phone');
  await page.setViewportSize({ width: 1280, height: 720 });

  // It is above every page, also after a reload.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tenants' }).click();
  await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
  await page.getByTestId('license-banner').filter({ hasText: 'expires in 10 day' }).waitFor();
  await page.goto(`${base}/`);
  await page.getByTestId('license-banner').filter({ hasText: 'expires in 10 day' }).waitFor();
  await page.getByTestId('version').waitFor();
  await shot(page, 'overview-license-banner');
  await page.getByTestId('license-banner').getByRole('link', { name: 'Licence' }).click();
  await page.getByTestId('license-state').filter({ hasText: 'Expiring in 10 days' }).waitFor();
  assert.deepEqual(problems, []);
  await page.close();
});

test('licence: a tampered file and one for another installation are refused; the Pro licence stays', async () => {
  // 400: the refused uploads.
  const { page, problems } = await openPage([400]);
  await page.goto(`${base}/license`);
  await page.getByTestId('license-state').waitFor();
  const id = await installationIdOf(page);

  // One base64 character of the payload changed: the signature no longer matches.
  const good = issueLicense('--installation-id', id, '--customer', 'Tampered Inc', '--edition', 'enterprise', '--days', '100');
  const lines = good.split('\n');
  const payloadLine = lines.findIndex((l) => /^Key-Id:/i.test(l)) + 2;
  const chars = [...lines[payloadLine]];
  chars[20] = chars[20] === 'A' ? 'B' : 'A';
  lines[payloadLine] = chars.join('');
  const tampered = lines.join('\n');
  assert.notEqual(tampered, good);
  await page.getByLabel('Licence file').setInputFiles({ name: 'tampered.lic', mimeType: 'text/plain', buffer: Buffer.from(tampered) });
  await page.getByText('Read tampered.lic').waitFor();
  await page.getByRole('button', { name: 'Install licence' }).click();
  const signature = page.getByRole('alert').filter({ hasText: 'signature does not match' });
  await signature.waitFor();
  assert.match(await signature.textContent(), /license_invalid/);
  // The previous licence is still shown, and still installed.
  assert.equal(await page.getByTestId('license-edition').textContent(), 'Pro');
  assert.equal(await page.getByTestId('license-state').textContent(), 'Expiring in 10 days');
  assert.equal(await page.getByTestId('license-customer').textContent(), 'Pro Customer Ltd');
  assert.equal(await page.getByLabel('Licence text').inputValue(), tampered, 'the refused text stays to be fixed');
  await shot(page, 'license-tampered');

  // Issued for another installation, dropped on the form this time.
  const other = issueLicense('--installation-id', '00000000-0000-4000-8000-000000000000', '--customer', 'Elsewhere GmbH', '--edition', 'pro', '--days', '100');
  await page.getByTestId('license-dropzone').evaluate((zone, text) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], 'other.lic', { type: 'text/plain' }));
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }, other);
  await page.getByText('Read other.lic').waitFor();
  assert.equal(await page.getByLabel('Licence text').inputValue(), other);
  assert.equal(await page.getByRole('alert').count(), 0, 'another file clears the old error');
  await page.getByRole('button', { name: 'Install licence' }).click();
  const installation = page.getByRole('alert').filter({ hasText: 'issued for installation 00000000-0000-4000-8000-000000000000' });
  await installation.waitFor();
  assert.match(await installation.textContent(), new RegExp(`this is installation ${id}`));
  assert.equal(await page.getByTestId('license-customer').textContent(), 'Pro Customer Ltd');
  const kept = await page.evaluate(async () => (await (await fetch('/api/v1/license')).json()).license.customer);
  assert.equal(kept, 'Pro Customer Ltd');
  await shot(page, 'license-other-installation');
  assert.deepEqual(problems, []);
  await page.close();
});

test('licence: a non-administrator sees the banner but no licence page', async () => {
  const ctx = await browser.newContext();
  // 401: the session check before signing in; 403: the licence details are for administrators.
  const { page, problems } = await openPage([401, 403], ctx);
  await page.goto(`${base}/login`);
  await signInWith(page, base, 'nina', 'nina chose this passphrase');
  // A non-administrator with one tenant lands on it.
  await page.getByRole('heading', { name: /Sales Team/ }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/tenants/sales-team');
  const banner = page.getByTestId('license-banner');
  await banner.filter({ hasText: 'expires in 10 day' }).waitFor();
  assert.equal(await banner.getByRole('link').count(), 0, 'no link to a page she cannot open');
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Licence' }).count(), 0);
  await page.goto(`${base}/license`);
  await page.getByRole('heading', { name: 'Licence', level: 1 }).waitFor();
  await page.getByRole('alert').filter({ hasText: 'only system administrators may do this' }).waitFor();
  assert.deepEqual(problems, []);
  await ctx.close();
});

test('licence: removal asks first, then the community plan applies; an enterprise licence is pasted back', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/license`);
  await page.getByTestId('license-customer').filter({ hasText: 'Pro Customer Ltd' }).waitFor();

  await page.getByRole('button', { name: 'Remove licence' }).click();
  const confirm = page.getByRole('group', { name: /Remove the Pro licence of Pro Customer Ltd/ });
  await confirm.waitFor();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await confirm.count(), 0);
  assert.equal(await page.getByTestId('license-edition').textContent(), 'Pro');

  await page.getByRole('button', { name: 'Remove licence' }).click();
  await shot(page, 'license-remove-confirm');
  await confirm.getByRole('button', { name: 'Yes, remove the licence' }).click();
  await page.getByTestId('license-state').filter({ hasText: 'Community (free plan)' }).waitFor();
  assert.equal(await page.getByTestId('license-banner').count(), 0, 'the banner goes with the licence');
  // Five accounts exist by now (admin, nina, omar, tara, uma): the community plan's users are used up.
  const users = page.getByTestId('limit-users');
  assert.match(await users.textContent(), /5 of 5/);
  assert.equal(await users.getAttribute('data-level'), 'full');
  assert.equal(await page.getByRole('button', { name: 'Remove licence' }).count(), 0);
  await shot(page, 'license-removed');

  // Back to enterprise for the remaining tests, pasted this time.
  const id = await installationIdOf(page);
  const enterprise = issueLicense('--installation-id', id, '--customer', 'UI Test Corp', '--edition', 'enterprise', '--days', '400');
  await page.getByLabel('Licence text').fill(enterprise);
  await page.getByRole('button', { name: 'Install licence' }).click();
  await page.getByTestId('license-installed').filter({ hasText: 'Installed the Enterprise licence for UI Test Corp' }).waitFor();
  assert.equal(await page.getByTestId('license-state').textContent(), 'Valid');
  assert.match(await users.textContent(), /unlimited/);
  assert.equal(await page.getByTestId('license-banner').count(), 0);
  await shot(page, 'license-enterprise');
  assert.deepEqual(problems, []);
  await page.close();
});

test('usage: API key requests are metered; quotas, alerts, chart, CSV and the system overview', async () => {
  // 400: the refused quota; 429: the key's request over the quota, made on purpose.
  const { page, problems } = await openPage([400, 429]);
  await page.goto(`${base}/`);
  await page.getByTestId('version').waitFor();
  // A tenant and a read-only API key, through the API.
  const tenant = await apiAs(page, 'POST', '/api/v1/tenants', { name: 'Metered', id: 'metered' });
  assert.equal(tenant.status, 201, JSON.stringify(tenant.body));
  const key = await apiAs(page, 'POST', '/api/v1/tenants/metered/api-keys', { name: 'metering probe', scopes: ['read'] });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const secret = key.body.secret;
  // Requests with the key (no cookie) are counted; the browser session's own requests are not.
  const byKey = (n) => page.evaluate(async ([k, n]) => {
    const out = [];
    for (let i = 0; i < n; i += 1) {
      const r = await fetch('/api/v1/tenants/metered', { headers: { Authorization: `Bearer ${k}` }, credentials: 'omit' });
      out.push({ status: r.status, body: r.ok ? null : await r.json() });
    }
    return out;
  }, [secret, n]);
  assert.deepEqual((await byKey(7)).map((r) => r.status), [200, 200, 200, 200, 200, 200, 200]);

  // From the tenant page to its usage.
  await page.goto(`${base}/tenants/metered`);
  await page.getByRole('link', { name: 'Usage and quotas' }).click();
  await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/tenants/metered/usage');
  assert.equal(await page.title(), 'Tenant usage · Enclave');
  // The enterprise licence caps nothing and the tenant set nothing yet: no bars.
  await page.getByTestId('no-quotas').waitFor();
  const limits = page.getByRole('form', { name: 'Tenant limits' });
  assert.match(await limits.getByRole('row', { name: /API requests/ }).textContent(), /API requests7unlimited/);
  assert.match(await page.getByTestId('usage-total').textContent(), /^7 API requests/);
  const keyRow = page.getByTestId('principal-table').getByRole('row', { name: /metering probe/ });
  assert.match(await keyRow.textContent(), /API key metering probe ek_live_[0-9a-f]+…7100 %/);

  // The tenant's own limit of 8: 7 of 8 is above 80 %, amber; no alert until a request reaches it.
  await limits.getByLabel('API requests').fill('8');
  await limits.getByRole('button', { name: 'Save limits' }).click();
  await limits.getByRole('status').filter({ hasText: 'Saved the quotas.' }).waitFor();
  const bar = page.getByTestId('quota-api_requests');
  await bar.waitFor();
  assert.match(await bar.textContent(), /7 of 8 \(87 %\)/);
  assert.match(await bar.textContent(), /Tenant limit: 8Licence cap: unlimited/);
  assert.equal(await bar.getAttribute('data-level'), 'high');
  assert.equal(await bar.locator('progress').getAttribute('max'), '8');
  assert.equal(await bar.locator('progress').getAttribute('value'), '7');
  assert.equal(await page.getByTestId('alert-api_requests-80').count(), 0);
  assert.match(await page.getByTestId('quota-reset').textContent(), /^Resets in (\d+ days?|\d+ h \d+ min|\d+ min|\d+ s)/);
  await shot(page, 'tenant-usage-amber');

  // A value the server refuses shows its message; nothing else changes.
  await limits.getByLabel('Messages').fill('10000000000000000');
  await limits.getByRole('button', { name: 'Save limits' }).click();
  await limits.getByRole('alert').filter({ hasText: 'must be between 0 and 10^15' }).waitFor();
  assert.match(await limits.getByRole('alert').textContent(), /invalid_request/);
  assert.equal(await page.getByTestId('quota-messages').count(), 0);

  // The eighth request reaches the limit: both alerts; the ninth is refused and not counted.
  assert.deepEqual((await byKey(1)).map((r) => r.status), [200]);
  const [refused] = await byKey(1);
  assert.equal(refused.status, 429);
  assert.equal(refused.body.error.code, 'quota_exceeded');
  assert.deepEqual(refused.body.error.details, { metric: 'api_requests', limit: 8, used: 8 });
  await page.reload();
  await bar.waitFor();
  assert.match(await bar.textContent(), /8 of 8 \(100 %\)/);
  assert.equal(await bar.getAttribute('data-level'), 'full');
  await page.getByTestId('alert-api_requests-80').filter({ hasText: '80 % alert' }).waitFor();
  await page.getByTestId('alert-api_requests-100').filter({ hasText: '100 % alert' }).waitFor();
  assert.match(await bar.textContent(), /Used up/);

  // The chart: 31 days up to today (UTC), with today's bar at 8; the key's row in the table.
  const chart = page.getByTestId('usage-chart');
  const today = await chart.getAttribute('data-to');
  assert.equal(today, new Date().toISOString().slice(0, 10));
  assert.equal(await chart.getAttribute('role'), 'img');
  assert.match(await chart.locator('title').first().textContent(), new RegExp(`^API requests per day, \\d{4}-\\d\\d-\\d\\d to ${today}$`));
  const todayBar = chart.locator(`rect[data-period="${today}"]`);
  assert.equal(await todayBar.getAttribute('data-value'), '8');
  assert.ok(Number(await todayBar.getAttribute('height')) > 100, 'the highest bar fills most of the chart');
  assert.equal(await chart.locator('rect.chart-bar').count(), 1);
  assert.match(await keyRow.textContent(), /8100 %$/);
  await shot(page, 'tenant-usage-full');

  // The CSV has the same numbers.
  const href = await page.getByTestId('usage-csv').getAttribute('href');
  const csv = await page.evaluate(async (h) => (await fetch(h)).text(), href);
  const lines = csv.trim().split('\n');
  assert.equal(lines[0], 'period,metric,principal,quantity');
  assert.match(lines[1], new RegExp(`^${today},api_requests,key:[0-9a-z-]+,8$`));

  // Another metric: nothing used, an empty chart.
  await page.getByLabel('Metric').selectOption('messages');
  await page.getByTestId('principal-empty').waitFor();
  assert.equal(await chart.locator('rect.chart-bar').count(), 0);
  assert.match(await chart.locator('desc').textContent(), /No messages in these 31 days/);
  await page.getByLabel('Metric').selectOption('api_requests');

  // On a phone the page stacks and does not scroll sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling on a phone');
  await shot(page, 'tenant-usage-phone');
  await page.setViewportSize({ width: 1280, height: 720 });

  // The system overview: top tenants first, this month, a link to each tenant's usage.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Usage' }).click();
  await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
  const table = page.getByTestId('usage-overview-table');
  await table.waitFor();
  assert.equal(await page.getByLabel('Month').inputValue(), new Date().toISOString().slice(0, 7));
  const first = table.locator('tbody tr').first();
  assert.equal(await first.getAttribute('data-tenant'), 'metered');
  assert.equal(await first.locator('td[data-metric="api_requests"]').textContent(), '8');
  await table.locator('tr[data-tenant="sales-team"]').waitFor();
  await shot(page, 'usage-overview');
  // An earlier month had no usage.
  await page.getByLabel('Month').fill('2020-01');
  await table.locator('tr[data-tenant="metered"] td[data-metric="api_requests"]').filter({ hasText: /^0$/ }).waitFor();
  await page.getByLabel('Month').fill(new Date().toISOString().slice(0, 7));
  await table.locator('tr[data-tenant="metered"] td[data-metric="api_requests"]').filter({ hasText: /^8$/ }).waitFor();
  await first.getByRole('link', { name: 'Metered' }).click();
  await page.getByTestId('quota-api_requests').waitFor();
  assert.equal(new URL(page.url()).pathname, '/tenants/metered/usage');
  assert.deepEqual(problems, []);
  await page.close();
});

test('billing: prices set through the form price the statement preview; printable page and CSV; refused prices show the server message', async () => {
  // 400: the refused prices, sent on purpose.
  const { page, problems } = await openPage([400]);
  // Exact money formatting for the expected values, independent of the UI's: micros → "0.266667", "1.50".
  const money = (micros) => {
    const m = BigInt(micros);
    return `${m / 1000000n}.${String(m % 1000000n).padStart(6, '0').replace(/0+$/, '').padEnd(2, '0')}`;
  };
  const micros = (text) => {
    const [whole, fraction = ''] = text.trim().split('.');
    return BigInt(whole) * 1000000n + BigInt(fraction.padEnd(6, '0'));
  };
  const getJson = (path) => page.evaluate(async (p) => (await fetch(p)).json(), path);

  await page.goto(`${base}/usage`);
  await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
  const form = page.getByRole('form', { name: 'Internal prices' });
  await form.waitFor();
  assert.deepEqual(await getJson('/api/v1/billing/prices'), { currency: 'EUR', prices: {} }, 'no prices on a fresh server');

  // Values the server refuses: its message shows, nothing is saved.
  await form.getByLabel('Currency').fill('E U R');
  await form.getByLabel('API requests price').fill('0.10');
  await form.getByLabel('API requests unit size').fill('3');
  await form.getByRole('button', { name: 'Save prices' }).click();
  await form.getByRole('alert').filter({ hasText: 'currency "E U R": use up to 8 letters or digits' }).waitFor();
  await form.getByLabel('Currency').fill('EUR');
  await form.getByLabel('API requests price').fill('-1');
  await form.getByRole('button', { name: 'Save prices' }).click();
  await form.getByRole('alert').filter({ hasText: 'must be a decimal such as 0.50' }).filter({ hasText: '"-1"' }).waitFor();
  await form.getByLabel('API requests price').fill('0.1234567');
  await form.getByRole('button', { name: 'Save prices' }).click();
  const refused = form.getByRole('alert').filter({ hasText: 'not "0.1234567"' });
  await refused.waitFor();
  assert.match(await refused.textContent(), /the price of api_requests must be a decimal such as 0\.50 \(at most six decimals, not negative\)/);
  assert.match(await refused.textContent(), /invalid_request/);
  await shot(page, 'billing-price-refused');
  assert.deepEqual(await getJson('/api/v1/billing/prices'), { currency: 'EUR', prices: {} }, 'nothing saved');

  // EUR, API requests at 0.10 per 3 requests.
  await form.getByLabel('API requests price').fill('0.10');
  await form.getByRole('button', { name: 'Save prices' }).click();
  await form.getByRole('status').filter({ hasText: 'Saved the prices.' }).waitFor();
  assert.equal(await form.getByRole('alert').count(), 0);
  assert.deepEqual(await getJson('/api/v1/billing/prices'),
    { currency: 'EUR', prices: { api_requests: { unit_size: 3, unit_price_micros: 100000 } } });
  assert.match(await form.locator('tr[data-metric="api_requests"]').textContent(), /0\.10 EUR per 3$/);
  assert.equal(await form.getByLabel('API requests price').inputValue(), '0.10');
  assert.equal(await form.getByLabel('Messages price').inputValue(), '');
  // Saving again changes nothing.
  await form.getByRole('button', { name: 'Save prices' }).click();
  await form.getByRole('status').filter({ hasText: 'Nothing changed.' }).waitFor();
  await shot(page, 'billing-prices');

  // What the statement should say: this month's quantity from the API, priced here, rounded half up.
  const index = await getJson('/api/v1/tenants/metered/statements');
  const month = new Date().toISOString().slice(0, 7);
  assert.equal(index.current.month, month);
  assert.equal(index.current.closed, false);
  const quantity = index.current.lines.find((l) => l.metric === 'api_requests').quantity;
  assert.ok(quantity >= 8, `the usage test made 8 metered requests, the API says ${quantity}`);
  const amount = (BigInt(quantity) * 100000n * 2n + 3n) / 6n; // quantity × 0.10 / 3, half up, in micros
  if (quantity === 8) assert.equal(money(amount), '0.266667');

  // Last month's statement: requesting it closes it (the tenant used nothing then).
  const [y, m] = month.split('-').map(Number);
  const lastMonth = m === 1 ? `${y - 1}-12` : `${y}-${String(m - 1).padStart(2, '0')}`;
  const closed = await getJson(`/api/v1/tenants/metered/statements/${lastMonth}`);
  assert.equal(closed.closed, true);
  assert.equal(closed.total_micros, 0);

  await page.goto(`${base}/tenants/metered/usage`);
  const card = page.getByTestId('statements');
  const table = card.getByTestId('statement-current');
  await table.waitFor();
  const row = table.locator('tr[data-metric="api_requests"]');
  assert.equal(await row.locator('th').textContent(), 'API requests');
  assert.equal(await row.locator('[data-cell="quantity"]').textContent(), quantity.toLocaleString('en-US'));
  assert.equal(await row.locator('[data-cell="price"]').textContent(), '0.10 per 3');
  assert.equal(await row.locator('[data-cell="amount"]').textContent(), money(amount));
  assert.equal(await table.locator('tr[data-metric="messages"] [data-cell="price"]').textContent(), 'no price');
  assert.equal(await table.locator('tbody tr').count(), 7);
  // The total is the sum of the lines, and here only API requests have a price.
  const amounts = await table.locator('tbody [data-cell="amount"]').allTextContents();
  const sum = amounts.reduce((a, t) => a + micros(t), 0n);
  assert.equal(sum, amount);
  assert.equal(await card.getByTestId('statement-total').textContent(), `${money(sum)} EUR`);
  assert.match(await card.getByTestId('statement-preview-note').textContent(), /Preview.*the month is not over/);
  assert.match(await table.locator('thead').textContent(), /Amount \(EUR\)/);

  // Links: this month's printable page (new tab) and CSV; last month, closed.
  const printLink = card.getByTestId('statement-current-print');
  assert.equal(await printLink.getAttribute('target'), '_blank');
  assert.equal(await printLink.getAttribute('href'), `/api/v1/tenants/metered/statements/${month}?format=html`);
  const csvHref = await card.getByTestId('statement-current-csv').getAttribute('href');
  assert.equal(csvHref, `/api/v1/tenants/metered/statements/${month}?format=csv`);
  const closedItem = card.getByTestId('statements-closed').locator(`li[data-month="${lastMonth}"]`);
  await closedItem.waitFor();
  assert.equal(await closedItem.getByRole('link', { name: /View \(printable\)/ }).getAttribute('href'),
    `/api/v1/tenants/metered/statements/${lastMonth}?format=html`);
  assert.equal(await closedItem.getByRole('link', { name: /CSV/ }).getAttribute('href'),
    `/api/v1/tenants/metered/statements/${lastMonth}?format=csv`);
  await card.scrollIntoViewIfNeeded();
  await shot(page, 'tenant-statements');
  // On a phone the page still does not scroll sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling on a phone');
  await page.setViewportSize({ width: 1280, height: 720 });

  const csv = await page.evaluate(async (h) => (await fetch(h)).text(), csvHref);
  assert.ok(csv.includes(`metered,${month},api_requests,${quantity},3,0.10,${money(amount)},EUR\n`), csv);
  assert.ok(csv.includes(`metered,${month},total,,,,${money(sum)},EUR\n`), csv);

  // The printable page has the same total.
  const response = await page.goto(`${base}${await printLink.getAttribute('href')}`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-type'], /^text\/html/);
  await page.getByRole('heading', { name: 'Usage statement — Metered' }).waitFor();
  assert.match(await page.locator('p.meta').textContent(), /preview: the month is not over/);
  assert.equal(await page.locator('tfoot').textContent(), `Total${money(sum)}`);
  assert.match(await page.locator('tbody').textContent(), new RegExp(`api_requests${quantity}0\\.10 / 3${money(amount).replace('.', '\\.')}`));
  await shot(page, 'statement-printable');
  assert.deepEqual(problems, []);
  await page.close();
});

test('sign out ends the session', async () => {
  const { page, problems } = await openPage([401]);
  await page.goto(`${base}/`);
  await page.getByTestId('version').waitFor();
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { name: 'Sign in to Enclave' }).waitFor();
  const status = await page.evaluate(async () => (await fetch('/api/v1/auth/session')).status);
  assert.equal(status, 401);
  assert.deepEqual(problems, []);
  await page.close();
});
