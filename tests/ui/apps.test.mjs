// Browser test of the chat apps UI against the real server and the real default models
// ($ENCLAVE_TEST_MODELS: SmolLM2-135M-Instruct on the CPU, all-MiniLM-L6-v2): a knowledge base holds a
// document with a distinctive fact; in the editor an app is created, linked to it, given temperature 0
// and a short answer limit, its system prompt saved as a new version (an unknown variable refused
// inline first), the version history diffed, and the app published; the debug preview streams an
// answer with a citation. On the chat page an employee asks the question, opens citation [1] (the
// passage with the fact), rates the answer with a comment (kept after a reload, and in the API), and
// renames the conversation; the logs show the rated message, which is annotated with a corrected
// answer; asking again gives the "Annotated answer". Then export, import and deletion of an app, and
// an app key from the "API access" panel that reaches its app and nothing else. Then an answer stopped
// while it streams: shown and stored as stopped, with feedback, and the chat goes on. Last, the app's end
// users (admins): listed with their counts, searched, reached from a logged message, one exported as
// JSON and one erased through the dialog (typing its id), after which its export answers 404; an editor
// sees no link to them and no data.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  apiAs, bootstrapPassword, chooseNewPassword, installEnterpriseLicense, launchBrowser, openPageIn, screenshots, signInAs,
  startServer,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'apps test admin passphrase';
const FIXTURE = fileURLToPath(new URL('./fixtures/apps/office-guide.md', import.meta.url));
const FACT = 'The Zephyr Lounge on floor 12 opens at 7:15 every weekday';
const QUESTION = 'When does the Zephyr Lounge open?';
const CORRECTED = 'The Zephyr Lounge opens at 7:15 on weekdays and closes at 19:00.';
// An end user named by an API caller: ':', '/', '?', '#', a space and non-ASCII letters, all to be encoded in paths.
const CRM_USER = 'crm:Zoë Ørsted/42?#1';
const CRM_QUESTION = 'Where do visitors park?';
// The default user template brings the passages ({{context}}) and the question.
const SYSTEM_PROMPT = 'You answer questions about the office using only the numbered passages below.\nAnswer in one sentence.';
// Answers on a CPU: generous waits for them, short answers (max_tokens) to keep the test quick.
const ANSWER_WAIT = { timeout: 90000 };
const shot = screenshots();
let server;
let browser;
let context;
let appId;
let datasetId;

before(async () => {
  const modelsDir = process.env.ENCLAVE_TEST_MODELS;
  assert.ok(modelsDir, 'ENCLAVE_TEST_MODELS must point to the fetched models (scripts/test.sh sets it)');
  const sibling = process.env.ENCLAVE_BIN && join(dirname(process.env.ENCLAVE_BIN), 'enclave-license');
  if (!process.env.ENCLAVE_LICENSE_BIN && sibling && existsSync(sibling)) process.env.ENCLAVE_LICENSE_BIN = sibling;
  server = await startServer({ modelsDir });
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Uploads a file to a knowledge base as the page's user (multipart, with the CSRF token). */
function upload(page, path, name, text) {
  return page.evaluate(async ([path, name, text]) => {
    const session = await (await fetch('/api/v1/auth/session')).json();
    const form = new FormData();
    form.append('files', new File([text], name, { type: 'text/markdown' }));
    const r = await fetch(path, { method: 'POST', headers: { 'X-CSRF-Token': session.csrf_token }, body: form });
    return { status: r.status, body: await r.json() };
  }, [path, name, text]);
}

/**
 * Records in the page, from now on, the lengths of an answer's text while it streams (its turn is
 * aria-busy) and whether a Stop button was offered meanwhile: a streamed answer grows in several steps.
 */
function watchStreaming(page) {
  return page.evaluate(() => {
    const seen = { lengths: [], stop: false };
    window.__streamed = seen;
    new MutationObserver(() => {
      const text = document.querySelector('[data-role="assistant"][aria-busy="true"] [data-testid="answer-text"]');
      if (!text) return;
      const n = text.textContent.replace('▍', '').length;
      if (n > 0 && seen.lengths[seen.lengths.length - 1] !== n) seen.lengths.push(n);
      if ([...document.querySelectorAll('button')].some((b) => b.textContent.trim() === 'Stop')) seen.stop = true;
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}
const streamed = (page) => page.evaluate(() => window.__streamed);

test('the administrator creates the tenant office and a knowledge base with the office guide', { timeout: 240000 }, async () => {
  const { page, problems } = await openPageIn(context, [401]);
  await signInAs(page, server.base, 'admin', bootstrapPassword(server.dataDir));
  await chooseNewPassword(page, bootstrapPassword(server.dataDir), ADMIN_PASSWORD);
  await page.getByTestId('version').waitFor();
  if (process.env.ENCLAVE_LICENSE_BIN) await installEnterpriseLicense(page);
  const tenant = await apiAs(page, 'POST', '/api/v1/tenants', { name: 'Office', id: 'office' });
  assert.equal(tenant.status, 201, JSON.stringify(tenant.body));

  // Both default models loaded (the knowledge base needs the embedding model, the app the chat model).
  const deadline = Date.now() + 180000;
  for (;;) {
    const models = await apiAs(page, 'GET', '/api/v1/models');
    const wanted = [models.body.default_embedding_model, models.body.default_chat_model].map((n) => models.body.models.find((m) => m.name === n));
    if (wanted.every((m) => m && m.state === 'ready')) break;
    assert.ok(Date.now() < deadline && wanted.every((m) => !m || m.state === 'loading' || m.state === 'ready'), JSON.stringify(models.body));
    await page.waitForTimeout(250);
  }
  const dataset = await apiAs(page, 'POST', '/api/v1/tenants/office/datasets', { name: 'Office guide', description: 'Floors, rooms, parking' });
  assert.equal(dataset.status, 201, JSON.stringify(dataset.body));
  datasetId = dataset.body.id;
  const base = `/api/v1/tenants/office/datasets/${datasetId}`;
  const uploaded = await upload(page, `${base}/documents`, 'office-guide.md', readFileSync(FIXTURE, 'utf8'));
  assert.ok(uploaded.status === 200 || uploaded.status === 201 || uploaded.status === 202, JSON.stringify(uploaded.body));
  for (;;) {
    const docs = await apiAs(page, 'GET', `${base}/documents`);
    const doc = docs.body.documents[0];
    if (doc && doc.status === 'ready') break;
    assert.ok(Date.now() < deadline && doc && !['failed', 'cancelled'].includes(doc.status), JSON.stringify(docs.body));
    await page.waitForTimeout(250);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test('an editor builds the app: settings, prompt versions and diff, publish, and the debug preview', { timeout: 300000 }, async () => {
  // 400: the prompt with an unknown variable, refused on purpose.
  const { page, problems } = await openPageIn(context, [400]);
  await page.goto(`${server.base}/`);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Apps', exact: true }).click();
  await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
  assert.equal(await page.getByLabel('Tenant', { exact: true }).inputValue(), 'office');
  await page.getByTestId('app-empty').waitFor();

  // Create: the editor opens.
  const create = page.getByTestId('app-create');
  await create.getByLabel('Name').fill('Office helper');
  await create.getByLabel(/^Description/).fill('Answers questions about the office');
  await create.getByRole('button', { name: 'Create app' }).click();
  const settings = page.getByTestId('app-settings');
  await settings.waitFor();
  await page.getByRole('heading', { name: /Office helper/, level: 1 }).waitFor();
  appId = page.url().match(/\/apps\/([^/]+)\/edit$/)[1];
  assert.match(await page.getByTestId('app-state').innerText(), /Draft/);

  // Settings: the knowledge base, temperature 0, short answers, opening statement and a suggested question, published.
  assert.match(await settings.getByLabel('Model', { exact: true }).innerText(), /Default \(SmolLM2-135M-Instruct\)/);
  await settings.getByRole('checkbox', { name: /Office guide/ }).check();
  await settings.getByLabel('Temperature').fill('0');
  await settings.getByLabel('Max tokens').fill('48');
  await settings.getByLabel('Opening statement').fill('Ask me about floors, rooms and parking.');
  await settings.getByLabel(/^Suggested questions/).fill(QUESTION);
  await settings.getByLabel('Retrieval mode').selectOption('hybrid');
  await settings.getByLabel('Top k').fill('3');
  await settings.getByLabel(/^Published/).check();
  await settings.getByRole('button', { name: 'Save settings' }).click();
  await page.getByTestId('app-settings-saved').waitFor();
  assert.match(await page.getByTestId('app-state').innerText(), /Published/);
  const saved = await apiAs(page, 'GET', `/api/v1/tenants/office/apps/${appId}`);
  assert.equal(saved.status, 200);
  assert.deepEqual(saved.body.config.dataset_ids, [datasetId]);
  assert.equal(saved.body.config.temperature, 0);
  assert.equal(saved.body.config.max_tokens, 48);
  assert.equal(saved.body.config.retrieval.top_k, 3);
  assert.deepEqual(saved.body.config.suggested_questions, [QUESTION]);
  assert.equal(saved.body.published, true);

  // Prompt: an unknown variable is refused with the server's message shown in the form.
  const prompt = page.getByTestId('app-prompt');
  assert.match(await prompt.getByTestId('prompt-variables').innerText(), /\{\{question\}\}.*\{\{context\}\}/);
  await prompt.getByLabel('System prompt').fill('Answer about {{floor}}.');
  await prompt.getByRole('button', { name: 'Save as new version' }).click();
  await prompt.getByRole('alert').waitFor();
  assert.match(await prompt.getByRole('alert').innerText(), /invalid_template/);
  assert.match(await prompt.getByRole('alert').innerText(), /floor/);
  // A valid one becomes version 2, pinned.
  await prompt.getByLabel('System prompt').fill(SYSTEM_PROMPT);
  await prompt.getByLabel(/^Note/).fill('one-sentence answers');
  await prompt.getByRole('button', { name: 'Save as new version' }).click();
  await prompt.getByTestId('prompt-saved').waitFor();
  assert.match(await prompt.getByTestId('prompt-version').innerText(), /version 2/);
  const versions = prompt.getByTestId('version-table');
  await versions.locator('tbody tr').nth(1).waitFor();
  assert.equal(await versions.locator('tbody tr').count(), 2);
  assert.match(await versions.locator('tr[data-version="2"]').innerText(), /one-sentence answers/);
  assert.equal(await versions.locator('tr[data-version="2"]').getByTestId('pinned').count(), 1);
  // The diff of version 1 against the pinned version 2: the new line added, the old one removed.
  await versions.locator('tr[data-version="1"]').getByRole('button', { name: /^Diff/ }).click();
  const diff = prompt.getByTestId('prompt-diff');
  await diff.waitFor();
  const inserted = await diff.locator('[data-op="insert"]').allInnerTexts();
  assert.ok(inserted.some((l) => /only the numbered passages below/.test(l)), JSON.stringify(inserted));
  assert.ok(await diff.locator('[data-op="delete"]').count() > 0);
  await shot(page, 'apps-editor');

  // The debug preview: the suggested question, answered in a stream, with a citation of the document.
  const preview = page.getByTestId('app-preview');
  await preview.getByTestId('preview-opening').waitFor();
  await watchStreaming(page);
  await preview.getByRole('button', { name: QUESTION }).click();
  const turn = preview.getByTestId('preview-turn').last();
  await turn.locator('[data-role="assistant"][aria-busy="false"]').waitFor(ANSWER_WAIT);
  const previewStream = await streamed(page);
  assert.ok(previewStream.lengths.length >= 2, `streamed in steps: ${JSON.stringify(previewStream)}`);
  assert.ok(previewStream.stop, 'a Stop button while it streamed');
  assert.ok((await turn.getByTestId('answer-text').innerText()).trim().length > 0, 'the preview streamed an answer');
  assert.match(await turn.getByTestId('citation').first().innerText(), /^\[1\] Office guide/);
  assert.match(await turn.getByTestId('preview-usage').innerText(), /\d+ prompt \+ \d+ completion tokens/);
  assert.deepEqual(problems, []);
  await shot(page, 'apps-preview');

  // Reset conversation empties the preview.
  await preview.getByRole('button', { name: 'Reset conversation' }).click();
  assert.equal(await preview.getByTestId('preview-turn').count(), 0);

  // The list shows the app published, with its model.
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Apps' }).click();
  const row = page.getByTestId('app-table').locator('tr[data-app="Office helper"]');
  await row.waitFor();
  assert.match(await row.innerText(), /Published/);
  assert.match(await row.innerText(), /Answers questions about the office/);
  await shot(page, 'apps-list');
  assert.deepEqual(problems, []);
  await page.close();
});

test('an employee chats: streamed answer, citation passage, feedback that persists, rename', { timeout: 300000 }, async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/tenants/office/apps`);
  await page.getByTestId('app-table').locator('tr[data-app="Office helper"]').getByRole('link', { name: /^Chat/ }).click();
  await page.getByRole('heading', { name: 'Office helper', level: 1 }).waitFor();
  assert.match(await page.getByTestId('opening-statement').innerText(), /floors, rooms and parking/);
  assert.equal(await page.getByTestId('suggested-questions').getByRole('button', { name: QUESTION }).count(), 1);
  // The preview's debug conversation is not listed here.
  const aside = page.locator('.app-conversations');
  await aside.locator('[data-testid="no-conversations"], [data-testid="conversations"], [role="alert"]').first().waitFor();
  assert.equal(await aside.getByTestId('no-conversations').count(), 1, await aside.innerText());

  await watchStreaming(page);
  await page.getByLabel('Your question').fill(QUESTION);
  await page.getByRole('button', { name: 'Send' }).click();
  const message = page.getByTestId('message').last();
  await page.locator('li[data-testid="message"]:not([data-status=""])').waitFor(ANSWER_WAIT);
  const chatStream = await streamed(page);
  assert.ok(chatStream.lengths.length >= 2, `streamed in steps: ${JSON.stringify(chatStream)}`);
  assert.ok(chatStream.stop, 'a Stop button while it streamed');
  assert.equal(await message.getAttribute('data-status'), 'complete');
  const answer = (await message.getByTestId('answer-text').innerText()).trim();
  assert.ok(answer.length > 0, 'an answer was streamed');
  const messageId = await message.getAttribute('data-message');
  assert.ok(messageId, 'the message has its id');
  // The new conversation is listed, named after the question.
  await page.getByTestId('conversations').locator('.app-conv-name', { hasText: QUESTION }).waitFor();

  // Citation [1]: the passage with the fact, its document and heading path.
  const citation = message.getByTestId('citation').first();
  assert.match(await citation.innerText(), /^\[1\] Office guide/);
  await citation.click();
  const dialog = page.getByTestId('citation-dialog');
  await dialog.getByTestId('citation-text').waitFor();
  assert.match(await dialog.getByTestId('citation-text').innerText(), new RegExp(FACT));
  assert.match(await dialog.getByRole('heading').innerText(), /\[1\] Office guide/);
  assert.match(await dialog.getByTestId('citation-heading-path').innerText(), /Floor 12/);
  await shot(page, 'apps-citation');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await dialog.getByTestId('citation-text').waitFor({ state: 'detached' });

  // Feedback: like, then dislike with a comment.
  const feedback = message.getByTestId('feedback');
  await feedback.getByRole('button', { name: 'Like', exact: true }).click();
  await message.locator('[data-testid="feedback"][data-rating="like"]').waitFor();
  assert.equal(await feedback.getByRole('button', { name: 'Like', exact: true }).getAttribute('aria-pressed'), 'true');
  await feedback.getByRole('button', { name: 'Dislike' }).click();
  await message.locator('[data-testid="feedback"][data-rating="dislike"]').waitFor();
  await feedback.getByRole('button', { name: 'Add a comment' }).click();
  await feedback.getByLabel(/^Comment/).fill('It should also say when it closes.');
  await feedback.getByRole('button', { name: 'Send feedback' }).click();
  await feedback.getByTestId('feedback-comment').waitFor();
  await shot(page, 'apps-chat');

  // Rename the conversation.
  const conversations = page.getByTestId('conversations');
  await conversations.getByRole('button', { name: /^Rename/ }).click();
  await conversations.getByLabel(/^New name for/).fill('Lounge hours');
  await conversations.getByRole('button', { name: 'Save name' }).click();
  await conversations.locator('.app-conv-name', { hasText: 'Lounge hours' }).waitFor();

  // After a reload: the conversation, its answer, the rating and the comment.
  await page.reload();
  await conversations.locator('li[data-name="Lounge hours"]').getByRole('button', { name: /^Lounge hours/ }).click();
  const again = page.locator(`li[data-testid="message"][data-message="${messageId}"]`);
  await again.locator('[data-testid="feedback"][data-rating="dislike"]').waitFor();
  assert.equal(await again.getByRole('button', { name: 'Dislike' }).getAttribute('aria-pressed'), 'true');
  assert.match(await again.getByTestId('feedback-comment').innerText(), /when it closes/);
  assert.equal((await again.getByTestId('answer-text').innerText()).trim(), answer);
  // And in the API.
  const listed = await apiAs(page, 'GET', `/api/v1/tenants/office/apps/${appId}/conversations`);
  const conversation = listed.body.conversations.find((c) => c.name === 'Lounge hours');
  assert.ok(conversation, JSON.stringify(listed.body));
  const stored = await apiAs(page, 'GET', `/api/v1/tenants/office/apps/${appId}/conversations/${conversation.id}/messages`);
  const storedMessage = stored.body.messages.find((m) => m.id === messageId);
  assert.equal(storedMessage.rating, 'dislike');
  assert.equal(storedMessage.comment, 'It should also say when it closes.');
  assert.equal(storedMessage.query, QUESTION);
  assert.equal(storedMessage.status, 'complete');
  assert.ok(storedMessage.citations.some((c) => c.text.includes(FACT)), JSON.stringify(storedMessage.citations));
  assert.deepEqual(problems, []);
  await page.close();
});

test('the logs show the rated message; an annotation corrects the answer and is used next time', { timeout: 300000 }, async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/tenants/office/apps`);
  await page.getByRole('link', { name: 'Logs', exact: true }).first().click();
  await page.getByRole('heading', { name: 'Logs', level: 1 }).waitFor();
  const table = page.getByTestId('log-table');
  await table.waitFor();
  // Only the disliked ones.
  await page.getByTestId('log-filters').getByLabel('Rating').selectOption('dislike');
  await page.getByTestId('log-filters').getByLabel('App').selectOption({ label: 'Office helper' });
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="log-table"] tbody tr[data-message]').length === 1);
  const row = table.locator('tbody tr[data-message]').first();
  assert.equal(await row.getAttribute('data-rating'), 'dislike');
  assert.match(await row.innerText(), /Office helper/);
  assert.match(await row.innerText(), /user:admin/);
  assert.match(await row.innerText(), /Disliked/);
  const csv = await page.getByTestId('logs-csv').getAttribute('href');
  assert.match(csv, /logs\.csv\?.*rating=dislike/);
  assert.match(csv, new RegExp(`app_id=${appId}`));
  const csvText = await page.evaluate(async (href) => { const r = await fetch(href); return `${r.status}\n${await r.text()}`; }, csv);
  assert.match(csvText, /^200\n/);
  assert.match(csvText, /Zephyr Lounge/);

  // Open it: the full question, answer and citations; annotate with a corrected answer.
  await row.getByTestId('log-open').click();
  const detail = page.getByTestId('log-detail');
  await detail.waitFor();
  assert.equal((await detail.getByTestId('log-question').innerText()).trim(), QUESTION);
  assert.match(await detail.getByTestId('log-citations').innerText(), new RegExp(FACT));
  assert.match(await detail.getByTestId('log-comment').innerText(), /when it closes/);
  await detail.getByRole('button', { name: 'Annotate' }).click();
  const form = detail.getByTestId('annotation-form');
  assert.equal(await form.getByLabel('Question').inputValue(), QUESTION);
  await form.getByLabel('Answer').fill(CORRECTED);
  await form.getByRole('button', { name: 'Save annotation' }).click();
  await detail.getByTestId('annotated-ok').waitFor();
  await shot(page, 'apps-logs');

  // The same question again on the chat page: the annotated answer, marked so.
  await page.goto(`${server.base}/tenants/office/apps/${appId}/chat`);
  await page.getByTestId('welcome').waitFor();
  await page.getByTestId('suggested-questions').getByRole('button', { name: QUESTION }).click();
  await page.locator('li[data-testid="message"]:not([data-status=""])').waitFor(ANSWER_WAIT);
  const message = page.getByTestId('message').last();
  await message.getByTestId('annotated').waitFor();
  assert.match(await message.getByTestId('annotated').innerText(), /Annotated answer/);
  assert.equal((await message.getByTestId('answer-text').innerText()).trim(), CORRECTED);
  assert.equal(await message.getByTestId('citations').count(), 0);
  await shot(page, 'apps-annotated');

  // The annotations page counts the hit.
  await page.goto(`${server.base}/tenants/office/apps/${appId}/annotations`);
  const annotations = page.getByTestId('annotation-table');
  await annotations.waitFor();
  const annotation = annotations.locator('tbody tr').first();
  assert.match(await annotation.innerText(), /The Zephyr Lounge opens at 7:15/);
  assert.equal((await annotation.getByTestId('hit-count').innerText()).trim(), '1');
  assert.deepEqual(problems, []);
  await page.close();
});

test('export and import an app, delete the copy; an app key reaches its app only', { timeout: 120000 }, async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/tenants/office/apps/${appId}/edit`);
  await page.getByTestId('app-settings').waitFor();

  // Export: the file the browser downloads.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('app-export').click()]);
  const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(exported.format, 'enclave-app');
  assert.equal(exported.app.name, 'Office helper');
  assert.equal(exported.app.prompt.system, SYSTEM_PROMPT);
  assert.deepEqual(exported.annotations.map((a) => a.answer), [CORRECTED]);

  // API access: an app key, its secret shown once with the curl example.
  const access = page.getByTestId('app-access');
  await access.getByRole('button', { name: 'Create app key' }).click();
  const secret = (await access.getByTestId('app-key-secret').locator('code.secret').innerText()).trim();
  assert.match(secret, /^ek_live_/);
  assert.match(await access.getByTestId('app-curl').innerText(), new RegExp(`apps/${appId}/chat[\\s\\S]*Bearer ${secret}`));
  const withKey = async (path) => (await fetch(`${server.base}${path}`, { headers: { Authorization: `Bearer ${secret}` } })).status;
  assert.equal(await withKey(`/api/v1/tenants/office/apps/${appId}`), 200);
  assert.ok([403, 404].includes(await withKey(`/api/v1/tenants/office/datasets`)));

  // Import the exported file on the list page: a new, unpublished copy.
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Apps' }).click();
  await page.getByTestId('app-import').getByLabel('Exported app (JSON)').setInputFiles({
    name: 'office-helper.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(exported)),
  });
  const imported = page.getByTestId('app-imported');
  await imported.waitFor();
  const copyName = (await imported.getByRole('link').innerText()).trim();
  assert.notEqual(copyName, 'Office helper');
  const copyRow = page.getByTestId('app-table').locator(`tr[data-app="${copyName}"]`);
  await copyRow.waitFor();
  assert.match(await copyRow.innerText(), /Draft/);
  // Not published yet: no chat for it; its chat page says so and sends nothing.
  assert.equal(await copyRow.getByRole('link', { name: /^Chat/ }).count(), 0);
  const copyEdit = await copyRow.getByRole('link', { name: /^Edit/ }).getAttribute('href');
  await page.goto(`${server.base}${copyEdit.replace(/\/edit$/, '/chat')}`);
  await page.getByTestId('app-unpublished').waitFor();
  await page.getByLabel('Your question').fill(QUESTION);
  assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
  await page.getByTestId('app-unpublished').getByRole('link', { name: 'debug and preview' }).click();
  await page.getByTestId('app-settings').waitFor();
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Apps' }).click();

  // Delete the copy from its editor.
  await copyRow.getByRole('link', { name: /^Edit/ }).click();
  await page.getByTestId('app-settings').waitFor();
  await page.getByRole('button', { name: 'Delete app' }).click();
  await page.getByRole('button', { name: 'Yes, delete it' }).click();
  await page.getByTestId('app-table').waitFor();
  await page.getByTestId('app-table').locator('tr[data-app="Office helper"]').waitFor();
  assert.equal(await page.getByTestId('app-table').locator(`tr[data-app="${copyName}"]`).count(), 0);
  assert.deepEqual(problems, []);
  await page.close();
});

test('an employee stops an answer while it streams: kept as stopped, and the chat goes on', { timeout: 240000 }, async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/tenants/office/apps`);
  await page.getByTestId('app-table').waitFor();
  // An app that writes at length (still streaming when Stop is pressed), without knowledge bases or history.
  const created = await apiAs(page, 'POST', '/api/v1/tenants/office/apps', {
    name: 'Storyteller',
    config: { temperature: 0, max_tokens: 600, history_tokens: 0 },
    prompt: { system: 'You write long, detailed stories with many paragraphs.', user: '{{question}}' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const story = created.body;
  const storyApi = `/api/v1/tenants/office/apps/${story.id}`;
  assert.equal((await apiAs(page, 'PATCH', storyApi, { published: true })).status, 200);

  await page.goto(`${server.base}/tenants/office/apps/${story.id}/chat`);
  await page.getByTestId('welcome').waitFor();
  await page.getByLabel('Your question').fill('Tell me a long story about a lighthouse keeper and her cat.');
  await page.getByRole('button', { name: 'Send' }).click();
  // The first streamed piece, then Stop.
  await page.waitForFunction(() => {
    const text = document.querySelector('li[data-testid="message"] [aria-busy="true"] [data-testid="answer-text"]');
    return text && text.textContent.replace('▍', '').trim().length > 0;
  }, null, ANSWER_WAIT);
  await page.getByRole('button', { name: 'Stop' }).click();
  const stopped = page.locator('li[data-testid="message"][data-status="stopped"]');
  await stopped.waitFor();
  assert.match(await stopped.getByTestId('answer-stopped').innerText(), /Stopped: the answer is incomplete/);
  const shown = (await stopped.getByTestId('answer-text').innerText()).trim();
  assert.ok(shown.length > 0, 'the part streamed before Stop stays');
  const stoppedId = await stopped.getAttribute('data-message');
  assert.ok(stoppedId, 'the stopped message has its id');
  assert.equal(await page.getByRole('button', { name: 'Stop' }).count(), 0);
  // A stored message, so it takes feedback; its new conversation is listed.
  await stopped.getByTestId('feedback').waitFor();
  await page.getByTestId('conversations').locator('.app-conv-name', { hasText: 'lighthouse keeper' }).waitFor();
  await shot(page, 'apps-stopped');

  // Send works again (a short answer this time), in the same conversation.
  const config = (await apiAs(page, 'GET', storyApi)).body.config;
  assert.equal((await apiAs(page, 'PATCH', storyApi, { config: { ...config, max_tokens: 8 } })).status, 200);
  await page.getByLabel('Your question').fill('What was the cat called?');
  const send = page.getByRole('button', { name: 'Send' });
  assert.equal(await send.isDisabled(), false);
  await send.click();
  const next = page.locator('li[data-testid="message"]:nth-child(2):not([data-status=""])');
  await next.waitFor(ANSWER_WAIT);
  assert.equal(await next.getAttribute('data-status'), 'complete');
  assert.equal(await page.getByTestId('message').count(), 2);

  // Stored as stopped (the server keeps what it sent once it notices the client left; it may still be writing it).
  const listed = await apiAs(page, 'GET', `${storyApi}/conversations`);
  assert.equal(listed.body.conversations.length, 1, JSON.stringify(listed.body));
  const conversation = listed.body.conversations[0];
  let kept;
  for (const deadline = Date.now() + 30000; ;) {
    const messages = (await apiAs(page, 'GET', `${storyApi}/conversations/${conversation.id}/messages`)).body.messages;
    kept = messages.find((m) => m.id === stoppedId);
    if (kept || Date.now() > deadline) break;
    await page.waitForTimeout(250);
  }
  assert.ok(kept, 'the stopped message is stored');
  assert.equal(kept.status, 'stopped');
  assert.ok(kept.answer.trim().startsWith(shown.slice(0, 20)), JSON.stringify({ shown, stored: kept.answer }));
  assert.ok(kept.usage.prompt_tokens > 0 && kept.usage.completion_tokens > 0, JSON.stringify(kept.usage));

  // After a reload: the conversation with the stopped answer, marked so; feedback on it works.
  await page.reload();
  await page.getByTestId('conversations').locator(`li[data-conversation="${conversation.id}"]`).locator('.app-conv-open').click();
  const again = page.locator(`li[data-testid="message"][data-message="${stoppedId}"]`);
  await again.waitFor();
  assert.equal(await again.getAttribute('data-status'), 'stopped');
  assert.match(await again.getByTestId('answer-stopped').innerText(), /Stopped/);
  await again.getByTestId('feedback').getByRole('button', { name: 'Like', exact: true }).click();
  await again.locator('[data-testid="feedback"][data-rating="like"]').waitFor();

  // A client that leaves right after message_start (through the API): the message is stored stopped, with
  // what the server had written by then — possibly nothing, and then shown as stopped before it began (in
  // practice a token or two usually went out already, so that branch is seldom taken).
  assert.equal((await apiAs(page, 'PATCH', storyApi, { config: { ...config, max_tokens: 600 } })).status, 200);
  const early = await page.evaluate(async (path) => {
    const session = await (await fetch('/api/v1/auth/session')).json();
    const controller = new AbortController();
    const r = await fetch(path, {
      method: 'POST', signal: controller.signal,
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', 'X-CSRF-Token': session.csrf_token },
      body: JSON.stringify({ query: 'Begin another story.', response_mode: 'streaming' }),
    });
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { status: r.status, text };
      text += decoder.decode(value, { stream: true });
      const start = text.split('\n').slice(0, -1).filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6))).find((e) => e.event === 'message_start');
      if (start) {
        controller.abort();
        return { conversation: start.conversation_id, message: start.message_id };
      }
    }
  }, `${storyApi}/chat`);
  assert.ok(early.message, JSON.stringify(early));
  // Stored once the server notices the client left (its new conversation with it).
  for (const deadline = Date.now() + 30000; ;) {
    const conversations = (await apiAs(page, 'GET', `${storyApi}/conversations`)).body.conversations;
    if (conversations.some((c) => c.id === early.conversation)) break;
    assert.ok(Date.now() < deadline, 'the conversation of the message stopped right after message_start is stored');
    await page.waitForTimeout(250);
  }
  const earlyMessages = await apiAs(page, 'GET', `${storyApi}/conversations/${early.conversation}/messages`);
  const earlyKept = earlyMessages.body.messages.find((m) => m.id === early.message);
  assert.ok(earlyKept, JSON.stringify(earlyMessages.body));
  assert.equal(earlyKept.status, 'stopped');
  console.log(`stopped right after message_start: stored answer ${JSON.stringify(earlyKept.answer)}`);
  await page.reload();
  await page.getByTestId('conversations').locator(`li[data-conversation="${early.conversation}"]`).locator('.app-conv-open').click();
  const earlyShown = page.locator(`li[data-testid="message"][data-message="${early.message}"][data-status="stopped"]`);
  await earlyShown.getByTestId('feedback').waitFor();
  if (earlyKept.answer === '') {
    assert.match(await earlyShown.getByTestId('answer-stopped').innerText(), /Stopped before the answer began/);
    assert.equal(await earlyShown.getByTestId('answer-text').count(), 0, 'no empty answer bubble');
  } else {
    assert.match(await earlyShown.getByTestId('answer-stopped').innerText(), /Stopped: the answer is incomplete/);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test('an administrator manages the end users of an app: list, search, export, erase; editors see none of it', { timeout: 120000 }, async () => {
  const { page, problems } = await openPageIn(context);
  await page.goto(`${server.base}/tenants/office/apps`);
  // A second end user: an API caller that names its own user, with characters a path must encode.
  const key = await apiAs(page, 'POST', '/api/v1/tenants/office/api-keys', { name: 'CRM', scopes: [`app:${appId}`] });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const asked = await fetch(`${server.base}/api/v1/tenants/office/apps/${appId}/chat`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key.body.secret}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ query: CRM_QUESTION, user: CRM_USER, response_mode: 'blocking' }),
  });
  assert.equal(asked.status, 200, await asked.text());
  const listed = await apiAs(page, 'GET', `/api/v1/tenants/office/apps/${appId}/end-users`);
  assert.deepEqual(listed.body.end_users.map((u) => u.id).sort(), [CRM_USER, 'user:admin'].sort(), JSON.stringify(listed.body));
  const admin = listed.body.end_users.find((u) => u.id === 'user:admin');
  // The chat page's question and the annotated one (the preview's debug conversation too, if it counts).
  assert.ok(admin.message_count >= 2 && admin.conversation_count >= 2, JSON.stringify(admin));

  // From the app list: every end user with their counts.
  await page.getByTestId('app-table').locator('tr[data-app="Office helper"]').getByRole('link', { name: /^End users/ }).click();
  await page.getByRole('heading', { name: /^End users/, level: 1 }).waitFor();
  const table = page.getByTestId('end-user-table');
  const rowOf = (id) => table.locator('tbody tr').filter({ has: page.locator(`code:text-is(${JSON.stringify(id)})`) });
  await rowOf(CRM_USER).waitFor();
  assert.equal(await table.locator('tbody tr').count(), 2);
  for (const u of listed.body.end_users) {
    assert.equal(await rowOf(u.id).getByTestId('end-user-messages').innerText(), String(u.message_count), u.id);
    assert.equal(await rowOf(u.id).getByTestId('end-user-conversations').innerText(), String(u.conversation_count), u.id);
  }
  assert.equal(await rowOf(CRM_USER).getByTestId('end-user-messages').innerText(), '1');
  // The search filters by id.
  const search = page.getByRole('searchbox', { name: 'Search by id' });
  await search.fill('ADMIN');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="end-user-table"] tbody tr').length === 1);
  assert.equal(await rowOf('user:admin').count(), 1);
  assert.match(await page.getByTestId('end-user-count').innerText(), /^1 of 2 end users$/);
  // The search is kept in the URL: a reload keeps it.
  await page.reload();
  await page.getByTestId('end-user-count').waitFor();
  assert.equal(await search.inputValue(), 'ADMIN');
  assert.equal(await table.locator('tbody tr').count(), 1);
  await search.fill('nobody-like-this');
  await page.getByTestId('end-users-none').waitFor();
  await search.fill('');
  await rowOf(CRM_USER).waitFor();
  await shot(page, 'apps-end-users');

  // The app's logs (linked from the page) link back, and the message of the CRM's user links to that end user only.
  await page.getByRole('link', { name: 'Logs', exact: true }).click();
  await page.getByRole('heading', { name: 'Logs', level: 1 }).waitFor();
  assert.match(await page.getByRole('link', { name: /^End users/ }).getAttribute('href'), new RegExp(`/apps/${appId}/end-users$`));
  await page.getByTestId('log-table').locator('tr[data-message]', { hasText: CRM_QUESTION }).getByTestId('log-open').click();
  await page.getByTestId('log-detail').getByRole('link', { name: CRM_USER, exact: true }).click();
  await page.getByRole('heading', { name: /^End users/, level: 1 }).waitFor();
  assert.equal(await page.getByRole('searchbox', { name: 'Search by id' }).inputValue(), CRM_USER);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="end-user-table"] tbody tr').length === 1);
  const row = rowOf(CRM_USER);
  assert.equal(await row.count(), 1);

  // Export: the file holds that end user's conversation with its question, and nobody else's.
  const [download] = await Promise.all([page.waitForEvent('download'), row.getByTestId('end-user-export').click()]);
  const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(exported.end_user.id, CRM_USER);
  assert.deepEqual(exported.conversations.flatMap((c) => c.messages.map((m) => m.query)), [CRM_QUESTION]);
  assert.ok(!JSON.stringify(exported).includes(QUESTION), 'no other end user in the export');

  // Erase: the dialog says what goes and what stays, and erases only once the id is typed.
  await row.getByRole('button', { name: /^Erase/ }).click();
  const dialog = page.getByTestId('erase-dialog');
  await dialog.getByRole('heading', { name: /Erase the end user/ }).waitFor();
  const said = await dialog.innerText();
  for (const what of [/1 conversation and 1 message/, /citations/, /feedback/, /usage totals/, /only a hash of the id/]) assert.match(said, what);
  const confirm = dialog.getByLabel(/^Type the end user's id/);
  const erase = dialog.getByRole('button', { name: 'Erase end user' });
  assert.equal(await erase.isDisabled(), true);
  await confirm.fill(CRM_USER.slice(0, -1));
  assert.equal(await erase.isDisabled(), true);
  await shot(page, 'apps-end-user-erase');
  await confirm.fill(CRM_USER);
  await erase.click();
  await page.getByTestId('end-user-erased').waitFor();
  assert.ok((await page.getByTestId('end-user-erased').innerText()).startsWith(`Erased ${CRM_USER}:`));
  await dialog.waitFor({ state: 'hidden' });
  await page.getByTestId('end-users-none').waitFor();
  await search.fill('');
  await rowOf('user:admin').waitFor();
  assert.equal(await table.locator('tbody tr').count(), 1);
  // In the API: gone from the list, and its export answers 404.
  const after = await apiAs(page, 'GET', `/api/v1/tenants/office/apps/${appId}/end-users`);
  assert.deepEqual(after.body.end_users.map((u) => u.id), ['user:admin']);
  const gone = await context.request.get(`${server.base}/api/v1/tenants/office/apps/${appId}/end-users/${encodeURIComponent(CRM_USER)}/export`);
  assert.equal(gone.status(), 404);
  assert.equal((await gone.json()).error.code, 'end_user_not_found');
  assert.deepEqual(problems, []);

  // An editor of the tenant: no link to the end users (nor the logs), and the page shows nothing of them.
  const created = await apiAs(page, 'POST', '/api/v1/users', { username: 'edna', password: 'edna chose this passphrase', must_change_password: false });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal((await apiAs(page, 'PUT', '/api/v1/tenants/office/members/edna', { role: 'editor' })).status, 200);
  await page.close();
  const ednaContext = await browser.newContext();
  // 401: the session asked for before signing in.
  const edna = await openPageIn(ednaContext, [401]);
  await signInAs(edna.page, server.base, 'edna', 'edna chose this passphrase');
  await edna.page.waitForURL((url) => url.pathname !== '/login');
  await edna.page.goto(`${server.base}/tenants/office/apps`);
  const ednaRow = edna.page.getByTestId('app-table').locator('tr[data-app="Office helper"]');
  await ednaRow.getByRole('link', { name: /^Annotations/ }).waitFor();
  assert.equal(await ednaRow.getByRole('link', { name: /^End users/ }).count(), 0);
  assert.equal(await ednaRow.getByRole('link', { name: /^Logs/ }).count(), 0);
  await edna.page.goto(`${server.base}/tenants/office/apps/${appId}/end-users`);
  await edna.page.getByText('Tenant administrators see the end users.').waitFor();
  assert.equal(await edna.page.getByTestId('end-user-table').count(), 0);
  assert.deepEqual(edna.problems, []);
  await ednaContext.close();
});
