// Browser test of the Models page and the Playground against the real default models (fetched by
// scripts/fetch-models.sh; $ENCLAVE_TEST_MODELS): the models load, a chat answer streams in token by
// token from the local CPU, and the embeddings similarity tester ranks a paraphrase above an unrelated
// sentence. The playground calls the same /v1 API as API keys.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiAs, bootstrapPassword, chooseNewPassword, installEnterpriseLicense, launchBrowser, openPageIn, screenshots, signInAs,
  startServer,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'inference test admin passphrase';
const shot = screenshots();
let server;
let browser;
let context;

before(async () => {
  const modelsDir = process.env.ENCLAVE_TEST_MODELS;
  assert.ok(modelsDir, 'ENCLAVE_TEST_MODELS must point to the fetched models (scripts/test.sh sets it)');
  server = await startServer({ modelsDir });
  browser = await launchBrowser();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the administrator signs in and creates the tenant lab', async () => {
  const { page, problems } = await openPageIn(context, [401]);
  await signInAs(page, server.base, 'admin', bootstrapPassword(server.dataDir));
  await chooseNewPassword(page, bootstrapPassword(server.dataDir), ADMIN_PASSWORD);
  await page.getByTestId('version').waitFor();
  await installEnterpriseLicense(page);
  const tenant = await apiAs(page, 'POST', '/api/v1/tenants', { name: 'Lab', id: 'lab' });
  assert.equal(tenant.status, 201, JSON.stringify(tenant.body));
  assert.deepEqual(problems, []);
  await page.close();
});

test('the Models page lists both default models as ready, with kind, size and shape', async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/models`);
  const table = page.getByTestId('models-table');
  // The page looks again by itself while a model is loading.
  await table.locator('tr[data-model="SmolLM2-135M-Instruct"]', { hasText: 'ready' }).waitFor({ timeout: 120000 });
  await table.locator('tr[data-model="all-MiniLM-L6-v2"]', { hasText: 'ready' }).waitFor({ timeout: 120000 });
  const chat = await table.locator('tr[data-model="SmolLM2-135M-Instruct"]').innerText();
  assert.match(chat, /chat/);
  assert.match(chat, /context \d+ tokens/);
  assert.match(chat, /default/);
  const embedding = await table.locator('tr[data-model="all-MiniLM-L6-v2"]').innerText();
  assert.match(embedding, /384 dimensions, up to 256 tokens/);
  assert.match(embedding, /\d+(\.\d)? MB/);
  assert.equal(await page.getByTestId('models-unavailable').count(), 0);
  await shot(page, 'models');
  assert.deepEqual(problems, []);
  await page.close();
});

test('the playground streams a chat answer from the local model and shows its token counts', async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/playground`);
  await page.getByLabel('Tenant').selectOption('lab');
  await page.getByLabel('Temperature').fill('0');
  await page.getByLabel('Max tokens').fill('40');
  await page.getByLabel('Message').fill('What is the capital city of France? Answer in one sentence.');
  const response = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
  await page.getByRole('button', { name: 'Send' }).click();
  const answered = await response;
  assert.equal(answered.status(), 200);
  assert.match(answered.headers()['content-type'], /text\/event-stream/);
  const usage = page.getByTestId('usage');
  await usage.waitFor({ timeout: 60000 });
  assert.match(await usage.innerText(), /\d+ prompt \+ \d+ completion tokens/);
  const reply = page.locator('.turn[data-role="assistant"] .turn-text');
  assert.match(await reply.innerText(), /Paris/);
  assert.match(await page.getByTestId('finish').innerText(), /finish: (stop|length)/);
  // The tokens were counted in the tenant chosen.
  const quotas = await apiAs(page, 'GET', '/api/v1/tenants/lab/quotas');
  const out = quotas.body.quotas.find((q) => q.metric === 'chat_tokens_out');
  assert.ok(out.used_this_month > 0, JSON.stringify(out));
  await shot(page, 'playground-chat');
  assert.deepEqual(problems, []);
  await page.close();
});

test('the similarity tester ranks a paraphrase above an unrelated sentence', async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/playground`);
  await page.getByRole('tab', { name: 'Embeddings similarity' }).click();
  await page.getByLabel('Texts').fill('The cat sits on the mat.\nA kitten is resting on a rug.\nQuarterly revenue grew by 8 percent.');
  await page.getByRole('button', { name: 'Compare' }).click();
  const table = page.getByTestId('similarity');
  await table.waitFor({ timeout: 30000 });
  const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => Number(td.textContent))));
  assert.equal(rows.length, 3);
  assert.equal(rows[0][0], 1);
  assert.ok(rows[0][1] > rows[0][2] + 0.2, JSON.stringify(rows));
  await shot(page, 'playground-similarity');
  assert.deepEqual(problems, []);
  await page.close();
});

test('an administrator registers an external provider on the Models page; its model is listed as remote', async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/models`);
  // The provider is this same server's /v1, reached with an inference key of the tenant lab.
  const key = await apiAs(page, 'POST', '/api/v1/tenants/lab/api-keys', { name: 'loopback provider', scopes: ['inference'] });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const form = page.getByRole('form', { name: 'Add a provider' });
  await form.getByLabel('Name', { exact: true }).fill('loopback');
  await form.getByLabel('Base URL').fill(`${server.base}/v1`);
  await form.getByLabel('API key').fill(key.body.secret);
  // A line that is not name=upstream is refused in the page, before anything is sent.
  await form.getByLabel(/Models, one per line/).fill('echo-smol');
  await form.getByRole('button', { name: 'Add provider' }).click();
  await page.getByText('write one model per line').waitFor();
  await form.getByLabel(/Models, one per line/).fill('echo-smol=SmolLM2-135M-Instruct (chat)');
  await form.getByRole('button', { name: 'Add provider' }).click();
  const row = page.getByTestId('providers').locator('tr[data-provider="loopback"]');
  await row.waitFor();
  assert.match(await row.innerText(), /echo-smol = SmolLM2-135M-Instruct \(chat\)/);
  assert.match(await row.innerText(), /stored/);
  const model = page.getByTestId('models-table').locator('tr[data-model="echo-smol"]');
  await model.waitFor();
  assert.match(await model.innerText(), /remote/);
  assert.match(await model.innerText(), /served by loopback/);
  // The key typed is not on the page any more.
  assert.ok(!(await page.content()).includes(key.body.secret));
  // Removal asks first.
  page.once('dialog', (dialog) => dialog.accept());
  await row.getByRole('button', { name: 'Remove' }).click();
  await model.waitFor({ state: 'detached' });
  await shot(page, 'models-providers');
  assert.deepEqual(problems, []);
  await page.close();
});
