// Shared pieces of the browser tests: the real `enclave` binary ($ENCLAVE_BIN) on a random loopback
// port with a fresh data directory, Debian's chromium through playwright-core, pages that record
// problems, licences issued by the vendor tool, and the first administrator's sign-in.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/**
 * Starts the server on a fresh data directory; resolves to `{ base, dataDir, stop }`. With `modelsDir`,
 * the data directory's `models` links to it (the fetched default models); `env` adds variables to the
 * server's environment (such as ENCLAVE_BACKUP_PASSPHRASE, which the caller's own ENCLAVE_* never reach).
 */
export async function startServer({ modelsDir, env: extraEnv = {} } = {}) {
  const bin = process.env.ENCLAVE_BIN;
  assert.ok(bin, 'ENCLAVE_BIN must point to the enclave binary (scripts/test.sh sets it)');
  const dataDir = mkdtempSync(join(tmpdir(), 'enclave-ui-data-'));
  if (modelsDir) symlinkSync(modelsDir, join(dataDir, 'models'));
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ENCLAVE_'))), ...extraEnv };
  const server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => { stderr += d; });
  const base = await new Promise((resolve, reject) => {
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
  async function stop() {
    if (server.exitCode === null) {
      const exited = new Promise((resolve) => server.on('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { base, dataDir, stop };
}

/** A temporary directory for screenshots (printed) and a function that saves a page's full screenshot there. */
export function screenshots() {
  const dir = mkdtempSync(join(tmpdir(), 'enclave-ui-shots-'));
  console.log(`screenshots in ${dir}`);
  return async (page, name) => {
    const file = join(dir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  };
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-quic'],
  });
}

/** Opens a page that records console errors, page errors, failed requests and unexpected HTTP errors. */
export async function openPageIn(context, expectedStatuses = []) {
  const page = await context.newPage();
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

/** A licence signed with the test key (which test builds trust) by the vendor tool $ENCLAVE_LICENSE_BIN. */
export function issueLicense(...args) {
  const bin = process.env.ENCLAVE_LICENSE_BIN;
  assert.ok(bin, 'ENCLAVE_LICENSE_BIN must point to the enclave-license tool (built with --features test-license-key)');
  const key = fileURLToPath(new URL('../fixtures/license/test-key.pk8', import.meta.url));
  return execFileSync(bin, ['issue', '--key', key, '--key-id', 'enclave-test-1', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Calls the JSON API from the page as its signed-in user (with the CSRF token); returns status and answer. */
export async function apiAs(page, method, path, body) {
  return page.evaluate(async ([method, path, body]) => {
    const session = await (await fetch('/api/v1/auth/session')).json();
    const r = await fetch(path, { method, headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token },
      body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }, [method, path, body]);
}

/** Installs a licence through the API as the page's signed-in user; returns the status and answer. */
export function installLicenseByApi(page, text) {
  return apiAs(page, 'POST', '/api/v1/license', { license: text });
}

export async function installationIdOf(page) {
  return page.evaluate(async () => (await (await fetch('/api/v1/system/info')).json()).installation_id);
}

/** An enterprise licence (every feature, no limits) for this server, installed through the API. */
export async function installEnterpriseLicense(page) {
  const id = await installationIdOf(page);
  const enterprise = issueLicense('--installation-id', id, '--customer', 'UI Test Corp', '--edition', 'enterprise', '--days', '400');
  const installed = await installLicenseByApi(page, enterprise);
  assert.equal(installed.status, 200, JSON.stringify(installed.body));
  return installed.body;
}

/** The bootstrap administrator's one-time password, from the notice file in the data directory. */
export function bootstrapPassword(dataDir) {
  const notice = join(dataDir, 'bootstrap-admin.txt');
  const oneTime = readFileSync(notice, 'utf8').split('\n').map((l) => l.trim()).find((l) => l.length === 24 && !l.includes(' '));
  assert.ok(oneTime, 'bootstrap password in the notice file');
  return oneTime;
}

/** Signs in through the form; `code` gives the TOTP code when the account asks for one. */
export async function signInAs(page, base, username, password, code = null) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  if (code) {
    await page.getByLabel('Authentication code').fill(code());
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
}

/** Fills the forced password change (after a temporary password) and saves it. */
export async function chooseNewPassword(page, current, next) {
  await page.getByLabel('Current password').fill(current);
  await page.getByLabel('New password', { exact: true }).fill(next);
  await page.getByLabel('New password again').fill(next);
  await page.getByRole('button', { name: 'Save password' }).click();
}
