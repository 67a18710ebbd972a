// Browser tests of the web UI shell: the real `enclave` binary ($ENCLAVE_BIN) on a random loopback port
// with a fresh data directory, driven through Debian's chromium by playwright-core.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const shots = mkdtempSync(join(tmpdir(), 'enclave-ui-shots-'));
let server;
let base;
let dataDir;
let browser;

async function startServer() {
  const bin = process.env.ENCLAVE_BIN;
  assert.ok(bin, 'ENCLAVE_BIN must point to the enclave binary (scripts/test.sh sets it)');
  dataDir = mkdtempSync(join(tmpdir(), 'enclave-ui-data-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ENCLAVE_')));
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), 30000);
    server.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${stderr}`)));
    createInterface({ input: server.stdout }).on('line', (line) => {
      const m = line.match(/listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    });
  });
}

/** Opens a page that records console errors, page errors, failed requests and unexpected HTTP errors. */
async function openPage(expectedStatuses = []) {
  const page = await browser.newPage();
  const problems = [];
  // The browser logs every 4xx/5xx fetch as a console error; those the test expects are not problems.
  const expectedLoadError = (text) => expectedStatuses.some((s) => text.includes(`status of ${s} `));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expectedLoadError(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => {
    // ERR_ABORTED is a fetch cancelled because the test navigated away, not a failure.
    const error = req.failure()?.errorText;
    if (error !== 'net::ERR_ABORTED') problems.push(`requestfailed: ${req.url()} ${error}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400 && !expectedStatuses.includes(res.status())) problems.push(`HTTP ${res.status()} ${res.url()}`);
  });
  return { page, problems };
}

async function shot(page, name) {
  const file = join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

before(async () => {
  base = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-quic'],
  });
  console.log(`screenshots in ${shots}`);
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.on('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('overview shows version, readiness and models', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/`);
  await page.getByTestId('version').waitFor();
  const version = await page.getByTestId('version').textContent();
  assert.match(version, /^\d+\.\d+\.\d+$/);
  await page.getByText('Ready', { exact: true }).waitFor();
  await page.getByRole('cell', { name: 'all-MiniLM-L6-v2', exact: true }).waitFor();
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
  await shot(page, 'api-docs');
  assert.deepEqual(problems, []);
  await page.close();
});

test('login shows the server answer', async () => {
  const { page, problems } = await openPage([501]);
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('correct horse battery staple');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /sign-in is not available/);
  assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password field is cleared');
  await shot(page, 'login');
  assert.deepEqual(problems, []);
  await page.close();
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

  await page.goto(`${base}/no/such/page`);
  await page.getByRole('heading', { name: 'Page not found' }).waitFor();
  await shot(page, 'not-found');
  assert.deepEqual(problems, []);
  await page.close();
});
