// Browser test of directory sign-in: a real OpenLDAP slapd started here (tests/ui/slapd.mjs), the real
// `enclave` binary on its own data directory, and chromium. The administrator configures the directory on
// the Directories page, tests the connection and a login, synchronises; then directory users sign in
// through the normal sign-in form.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiAs, bootstrapPassword, chooseNewPassword, installEnterpriseLicense, launchBrowser, openPageIn, screenshots, signInAs,
  startServer,
} from './helpers.mjs';
import { SERVICE_DN, SERVICE_PASSWORD, startSlapd } from './slapd.mjs';

const PEOPLE = 'ou=people,dc=example,dc=org';
const GROUPS = 'ou=groups,dc=example,dc=org';
const ENGINEERS = `cn=engineers,${GROUPS}`;
const STAFF = `cn=staff,${GROUPS}`;
const ADMIN_PASSWORD = 'directory test admin passphrase';
const AD_FILTER = '(&(objectClass=user)(|(sAMAccountName={login})(userPrincipalName={login})))';

const shot = screenshots();
let slapd;
let server;
let base;
let browser;
let context; // the administrator's

before(async () => {
  slapd = await startSlapd();
  server = await startServer();
  base = server.base;
  browser = await launchBrowser();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await slapd?.stop();
});

/** Every secret typed in this test must be absent from the page: its HTML and its inputs' values. */
async function assertNoSecrets(page, secrets) {
  const html = await page.content();
  const values = await page.locator('input, textarea').evaluateAll((els) => els.map((e) => e.value));
  for (const secret of secrets) {
    assert.ok(!html.includes(secret), `${secret} is in the page`);
    assert.ok(!values.some((v) => v.includes(secret)), `${secret} is in an input`);
  }
}

test('the first administrator signs in, installs an enterprise licence and creates the tenant engineering', async () => {
  const { page, problems } = await openPageIn(context, [401]);
  await signInAs(page, base, 'admin', bootstrapPassword(server.dataDir));
  await chooseNewPassword(page, bootstrapPassword(server.dataDir), ADMIN_PASSWORD);
  await page.getByTestId('version').waitFor();
  const license = await installEnterpriseLicense(page);
  assert.equal(license.edition, 'Enterprise');
  const tenant = await apiAs(page, 'POST', '/api/v1/tenants', { name: 'Engineering', id: 'engineering' });
  assert.equal(tenant.status, 201, JSON.stringify(tenant.body));
  assert.deepEqual(problems, []);
  await page.close();
});

test('the administrator configures the directory in the browser: save, test connection, test login, sync', async () => {
  // 400: the filter without {login}, refused by the server on purpose.
  const { page, problems } = await openPageIn(context, [400]);
  await page.goto(`${base}/`);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Directories' }).click();
  await page.getByRole('heading', { name: 'Directories', level: 1 }).waitFor();
  assert.equal(await page.title(), 'Directories · Enclave');
  await page.getByTestId('no-directories').waitFor();

  await page.getByRole('button', { name: 'Add a directory' }).click();
  const form = page.getByRole('form', { name: 'Directory settings' });
  const field = (label) => form.getByLabel(label, { exact: true });
  await form.getByRole('heading', { name: 'New directory' }).waitFor();
  // The kind brings its defaults while they are untouched.
  assert.equal(await field('User filter').inputValue(), '(uid={login})');
  await field('Kind').selectOption('active_directory');
  assert.equal(await field('User filter').inputValue(), AD_FILTER);
  assert.equal(await field('ID attribute').inputValue(), 'objectGUID');
  assert.equal(await field('Username attribute').inputValue(), 'sAMAccountName');
  await field('Kind').selectOption('openldap');
  assert.equal(await field('ID attribute').inputValue(), 'entryUUID');
  // A filter changed by hand stays; the other kind's defaults are offered instead.
  await field('User filter').fill('(cn={login})');
  await field('Kind').selectOption('active_directory');
  assert.equal(await field('User filter').inputValue(), '(cn={login})');
  await form.getByTestId('kind-defaults').getByRole('button', { name: 'Use the Active Directory defaults' }).click();
  assert.equal(await field('User filter').inputValue(), AD_FILTER);
  assert.equal(await form.getByTestId('kind-defaults').count(), 0);
  await field('Kind').selectOption('openldap');
  assert.equal(await field('User filter').inputValue(), '(uid={login})');
  // Skipping certificate checks shows a warning while it is on.
  await field('Skip TLS certificate verification (insecure)').check();
  await form.getByTestId('tls-warning').waitFor();
  await field('Skip TLS certificate verification (insecure)').uncheck();
  assert.equal(await form.getByTestId('tls-warning').count(), 0);

  await field('Name').fill('Example LDAP');
  await field('Server URLs').fill(slapd.url);
  await field('Security').selectOption('none');
  await form.getByTestId('plain-warning').waitFor();
  await field('Service account DN').fill(SERVICE_DN);
  await field('Service account password').fill(SERVICE_PASSWORD);
  await field('User base DN').fill(PEOPLE);
  await field('Group base DN').fill(GROUPS);
  await field('Required group').fill(STAFF);
  await form.getByRole('button', { name: 'Add mapping' }).click();
  await field('Group of mapping 1').fill(ENGINEERS);
  await field('Tenant of mapping 1').fill('engineering');
  await field('Role of mapping 1').selectOption('editor');
  // A filter without {login} is refused with the server's message.
  await field('User filter').fill('(uid=alice)');
  await form.getByRole('button', { name: 'Add directory' }).click();
  const refused = form.getByRole('alert').filter({ hasText: 'user_filter: an LDAP filter in parentheses with a {login} placeholder' });
  await refused.waitFor();
  assert.match(await refused.textContent(), /invalid_request/);
  await field('User filter').fill('(uid={login})');
  await form.getByRole('button', { name: 'Add directory' }).click();
  await form.getByTestId('directory-saved').waitFor();
  await form.getByRole('heading', { name: 'Settings of Example LDAP' }).waitFor();
  const row = page.getByTestId('directory-table').getByRole('row', { name: /Example LDAP/ });
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(`^100Example LDAPOpenLDAP${slapd.url.replace(/\./g, '\\.')}noneenabled$`));
  // The service password is write-only: stored, never shown back.
  assert.equal(await field('Service account password').inputValue(), '');
  assert.match(await form.locator('#dir-password-help').textContent(), /A password is stored \(never shown\)\. Leave empty to keep it\./);
  assert.equal(await field('Group of mapping 1').inputValue(), ENGINEERS);
  await shot(page, 'directory-saved');

  // Test connection: the service account binds.
  await page.getByRole('button', { name: 'Test connection' }).click();
  const connection = page.getByTestId('connection-result').getByTestId('test-result');
  await connection.waitFor();
  assert.equal(await connection.getAttribute('data-ok'), 'true', await connection.textContent());
  const connectionSteps = await connection.getByTestId('test-steps').locator('li').allTextContents();
  assert.ok(connectionSteps.includes(`connected to ${slapd.url} (None)`), connectionSteps.join('\n'));
  assert.ok(connectionSteps.includes(`service bind as ${SERVICE_DN}`), connectionSteps.join('\n'));

  // Test login as alice: the exact filter, her entry and groups, the role the mapping gives.
  const testLogin = page.getByRole('form', { name: 'Test login' });
  await testLogin.getByLabel('Username').fill('alice');
  await testLogin.getByLabel('Password').fill('alice-pass-1');
  await testLogin.getByRole('button', { name: 'Test login' }).click();
  const login = page.getByTestId('login-result').getByTestId('test-result');
  await login.waitFor();
  assert.equal(await login.getAttribute('data-ok'), 'true', await login.textContent());
  const steps = (await login.getByTestId('test-steps').locator('li').allTextContents()).join('\n');
  assert.match(steps, /\(uid=alice\)/);
  assert.ok(steps.includes(`bind as uid=alice,${PEOPLE} succeeded`), steps);
  const user = await login.getByTestId('test-user').textContent();
  assert.ok(user.includes(`DNuid=alice,${PEOPLE}`), user);
  assert.match(user, /ID[0-9a-f-]{36}Usernamealice/);
  assert.ok(user.includes('E-mailalice@example.org'), user);
  assert.ok(user.includes(ENGINEERS) && user.includes(STAFF), user);
  assert.deepEqual(await login.getByTestId('test-roles').locator('tbody tr').allTextContents(), ['engineeringeditor']);
  await assertNoSecrets(page, ['alice-pass-1', SERVICE_PASSWORD]);
  await shot(page, 'directory-test-login');

  // A wrong password: the test says so, with its steps.
  await testLogin.getByLabel('Username').fill('alice');
  await testLogin.getByLabel('Password').fill('not her password');
  await testLogin.getByRole('button', { name: 'Test login' }).click();
  await login.filter({ hasText: 'Failed: invalid_credentials' }).waitFor();
  assert.equal(await login.getAttribute('data-ok'), 'false');
  assert.match(await login.getByTestId('test-steps').textContent(), /refused: wrong password/);

  // The default hourly schedule: the next run is shown.
  assert.match(await page.getByTestId('next-sync').innerText(), /Next scheduled run: .*0 0 \* \* \* \*/);
  // Sync now: a run in the history.
  await page.getByRole('button', { name: 'Sync now' }).click();
  await page.getByTestId('sync-result').filter({ hasText: 'Sync ok' }).waitFor();
  const runs = page.getByTestId('sync-history').locator('tbody tr');
  await runs.first().waitFor();
  assert.equal(await runs.count(), 1);
  assert.equal(await runs.first().getAttribute('data-status'), 'ok');
  assert.match(await runs.first().textContent(), /manualok\d+00/);
  await shot(page, 'directory-sync');

  // Reloaded, the page lists the directory and keeps the password stored but unshown.
  await page.reload();
  await page.getByRole('button', { name: 'Example LDAP' }).click();
  await form.getByRole('heading', { name: 'Settings of Example LDAP' }).waitFor();
  assert.equal(await field('Service account password').inputValue(), '');
  assert.equal(await field('Server URLs').inputValue(), slapd.url);
  assert.equal(await page.getByTestId('sync-history').locator('tbody tr').count(), 1);
  await assertNoSecrets(page, ['alice-pass-1', SERVICE_PASSWORD]);
  assert.deepEqual(problems, []);
  await page.close();
});

test('alice signs in with her directory password and lands on her tenant as editor', async () => {
  const ctx = await browser.newContext();
  // 401: the session check before signing in.
  const { page, problems } = await openPageIn(ctx, [401]);
  await signInAs(page, base, 'alice', 'alice-pass-1');
  await page.getByRole('heading', { name: /Engineering/ }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/tenants/engineering');
  assert.equal(await page.getByTestId('my-role').textContent(), 'editor');
  await page.getByRole('link', { name: 'Alice Anders' }).waitFor();
  await shot(page, 'directory-user-landing');
  // Not an administrator: no Directories page in the menu.
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Directories' }).count(), 0);
  assert.deepEqual(problems, []);
  await ctx.close();
});

test('carol, outside the required group, is refused with the reason and gets no session', async () => {
  const ctx = await browser.newContext();
  // 401: the session checks; 403: the refused sign-in.
  const { page, problems } = await openPageIn(ctx, [401, 403]);
  await signInAs(page, base, 'carol', 'carol-pass-1');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.ok((await alert.textContent()).includes(`your directory account is not in the group allowed to use Enclave (${STAFF})`));
  assert.match(await alert.textContent(), /directory_access_denied/);
  await shot(page, 'directory-user-denied');
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/auth/session')).status), 401);
  assert.deepEqual(problems, []);
  await ctx.close();
});

test('the sync after alice signed in refreshes her account; an edit keeps the stored password; delete asks first', async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${base}/directories`);
  await page.getByRole('button', { name: 'Example LDAP' }).click();
  await page.getByRole('button', { name: 'Sync now' }).click();
  await page.getByTestId('sync-result').filter({ hasText: 'Sync ok: 1 refreshed, 0 deactivated' }).waitFor();
  const runs = page.getByTestId('sync-history').locator('tbody tr');
  await runs.nth(1).waitFor();
  assert.match(await runs.first().textContent(), /manualok\d+10/);

  // A change with the password field left empty keeps the stored password: the service bind still works.
  const form = page.getByRole('form', { name: 'Directory settings' });
  await form.getByLabel('Priority', { exact: true }).fill('10');
  await form.getByRole('button', { name: 'Save directory' }).click();
  await form.getByTestId('directory-saved').waitFor();
  assert.match(await page.getByTestId('directory-table').locator('tbody tr').first().textContent(), /^10Example LDAP/);
  await page.getByRole('button', { name: 'Test connection' }).click();
  const connection = page.getByTestId('connection-result').getByTestId('test-result');
  await connection.waitFor();
  assert.equal(await connection.getAttribute('data-ok'), 'true', await connection.textContent());

  // Delete: a confirmation first; cancel keeps it, yes removes it.
  await form.getByRole('button', { name: 'Delete directory' }).click();
  const confirm = form.getByRole('group', { name: /Delete the directory Example LDAP\?/ });
  await confirm.waitFor();
  assert.match(await confirm.textContent(), /accounts are deactivated/);
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await confirm.count(), 0);
  await form.getByRole('button', { name: 'Delete directory' }).click();
  await shot(page, 'directory-delete-confirm');
  await confirm.getByRole('button', { name: 'Yes, delete the directory' }).click();
  await page.getByTestId('no-directories').waitFor();
  assert.equal(await form.count(), 0);
  assert.deepEqual(problems, []);
  await page.close();
});
