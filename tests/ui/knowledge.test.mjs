// Browser test of the knowledge base UI against the real server and the default embedding model
// ($ENCLAVE_TEST_MODELS): create a knowledge base (the server's validation message shown in the form),
// drop a folder of four real documents on the drop zone (English Markdown with headings, an HTML page,
// Chinese UTF-8 text, a CSV), preview one file's chunks, upload them and watch the job's progress until
// every document is ready, read a document's segments, drop two of the files again and see them refused
// as duplicates, pick the folder with the folder picker, then search in English and in Chinese on the
// retrieval test page: the expected document comes first, its terms marked and its heading path shown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  apiAs, bootstrapPassword, chooseNewPassword, installEnterpriseLicense, launchBrowser, openPageIn, screenshots, signInAs,
  startServer,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'knowledge test admin passphrase';
const FOLDER = fileURLToPath(new URL('./fixtures/knowledge/handbook', import.meta.url));
const FILES = [
  ['handbook.md', 'text/markdown'],
  ['cafeteria.html', 'text/html'],
  ['zh-guide.txt', 'text/plain'],
  ['office-supplies.csv', 'text/csv'],
];
const shot = screenshots();
let server;
let browser;
let context;

before(async () => {
  const modelsDir = process.env.ENCLAVE_TEST_MODELS;
  assert.ok(modelsDir, 'ENCLAVE_TEST_MODELS must point to the fetched models (scripts/test.sh sets it)');
  // The vendor's licence tool next to the server binary, when it was built with it and not named.
  const sibling = process.env.ENCLAVE_BIN && join(dirname(process.env.ENCLAVE_BIN), 'enclave-license');
  if (!process.env.ENCLAVE_LICENSE_BIN && sibling && existsSync(sibling)) process.env.ENCLAVE_LICENSE_BIN = sibling;
  server = await startServer({ modelsDir });
  browser = await launchBrowser();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function fixtures(names) {
  return names.map((name) => {
    const [, type] = FILES.find(([n]) => n === name);
    return { name, type, base64: readFileSync(join(FOLDER, name)).toString('base64') };
  });
}

/** Drops files on an element as a browser does: dragenter, dragover and drop with a DataTransfer of File objects. */
async function dropFiles(locator, names) {
  const files = names.map((f) => (typeof f === 'string' ? fixtures([f])[0] : f));
  await locator.evaluate((zone, files) => {
    const transfer = new DataTransfer();
    for (const f of files) transfer.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
    }
  }, files);
}

/**
 * Drops a folder: a DataTransfer made in a page has no file system behind it, so its item's
 * webkitGetAsEntry() answers a directory entry built here (the File and Directory Entries API: entries
 * read in batches, then an empty batch; a hidden file in it) for the length of the drop event.
 */
async function dropFolder(locator, folder, names) {
  await locator.evaluate((zone, [folder, files]) => {
    const later = (fn) => setTimeout(fn, 0);
    const entries = [...files, { name: '.DS_Store', type: '', base64: '' }].map((f) => {
      const file = new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name, { type: f.type });
      return { name: f.name, isFile: true, isDirectory: false, file: (ok) => later(() => ok(file)) };
    });
    const directory = {
      name: folder, isFile: false, isDirectory: true,
      createReader() {
        const batches = [entries.slice(0, 2), entries.slice(2), []];
        return { readEntries: (ok) => later(() => ok(batches.shift() || [])) };
      },
    };
    const transfer = new DataTransfer();
    transfer.items.add(new File([], folder));
    const original = DataTransferItem.prototype.webkitGetAsEntry;
    DataTransferItem.prototype.webkitGetAsEntry = function webkitGetAsEntry() { return directory; };
    try {
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
      }
    } finally {
      DataTransferItem.prototype.webkitGetAsEntry = original;
    }
  }, [folder, fixtures(names)]);
}

test('the administrator signs in and creates the tenant docs', async () => {
  const { page, problems } = await openPageIn(context, [401]);
  await signInAs(page, server.base, 'admin', bootstrapPassword(server.dataDir));
  await chooseNewPassword(page, bootstrapPassword(server.dataDir), ADMIN_PASSWORD);
  await page.getByTestId('version').waitFor();
  if (process.env.ENCLAVE_LICENSE_BIN) await installEnterpriseLicense(page);
  const tenant = await apiAs(page, 'POST', '/api/v1/tenants', { name: 'Docs', id: 'docs' });
  assert.equal(tenant.status, 201, JSON.stringify(tenant.body));
  // A knowledge base needs its embedding model loaded (its tokenizer sizes the segments).
  const deadline = Date.now() + 120000;
  for (;;) {
    const models = await apiAs(page, 'GET', '/api/v1/models');
    const embedding = models.body.models.find((m) => m.name === models.body.default_embedding_model);
    if (embedding && embedding.state === 'ready') break;
    assert.ok(Date.now() < deadline && (!embedding || embedding.state === 'loading'), JSON.stringify(models.body));
    await page.waitForTimeout(250);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test('a knowledge base is created, filled by dropping documents, and searched in English and Chinese', { timeout: 90000 }, async () => {
  // 400/422: the invalid chunking the form sends once on purpose.
  const { page, problems } = await openPageIn(context, [400, 422]);
  await page.goto(`${server.base}/knowledge`);
  await page.getByRole('link', { name: 'Knowledge', exact: true }).waitFor();
  assert.equal(await page.getByLabel('Tenant', { exact: true }).inputValue(), 'docs');

  // Create: an overlap larger than the segment is refused by the server, its message shown in the form.
  const create = page.getByTestId('kb-create');
  await create.getByLabel('Name').fill('Handbook');
  await create.getByLabel(/^Description/).fill('What the platform team knows');
  // The models are listed asynchronously; until they arrive the select offers a bare "Default".
  await create.getByLabel('Embedding model').locator('option', { hasText: 'all-MiniLM-L6-v2' }).first().waitFor({ state: 'attached' });
  assert.match(await create.getByLabel('Embedding model').innerText(), /all-MiniLM-L6-v2/);
  assert.equal(await create.getByLabel('Max tokens per segment').inputValue(), '200');
  assert.equal(await create.getByLabel('Overlap tokens').inputValue(), '32');
  await create.getByLabel('Overlap tokens').fill('500');
  await create.getByRole('button', { name: 'Create knowledge base' }).click();
  await create.getByRole('alert').waitFor();
  assert.match(await create.getByRole('alert').innerText(), /overlap/i);
  await create.getByLabel('Overlap tokens').fill('32');
  await create.getByRole('button', { name: 'Create knowledge base' }).click();
  const row = page.getByTestId('kb-table').locator('tr[data-dataset="Handbook"]');
  await row.waitFor();
  assert.match(await row.innerText(), /What the platform team knows/);
  await row.getByRole('link', { name: 'Handbook' }).click();
  await page.getByRole('heading', { name: 'Handbook', level: 1 }).waitFor();

  // Drop a folder of four documents (and a hidden file, left out): they are listed before anything is sent.
  await dropFolder(page.getByTestId('kb-dropzone'), 'handbook', FILES.map(([n]) => n));
  const selected = page.getByTestId('kb-selected');
  await selected.locator('tbody tr').nth(FILES.length - 1).waitFor();
  assert.equal(await selected.locator('tbody tr').count(), FILES.length);
  assert.equal(await selected.locator('tr[data-file="handbook/zh-guide.txt"]').count(), 1);
  assert.match(await selected.locator('caption').innerText(), /4 files chosen.*1 hidden left out/);

  // Preview the Markdown file's chunks: segments with their heading path and token count, and the total.
  await selected.getByRole('button', { name: 'Preview chunks of handbook/handbook.md' }).click();
  const preview = page.getByTestId('kb-preview');
  await preview.getByTestId('kb-preview-total').waitFor();
  assert.match(await preview.getByTestId('kb-preview-total').innerText(), /\d+ segments?, \d+ tokens in all/);
  const rotation = preview.locator('.kb-segment', { hasText: 'To rotate an API key' });
  assert.match(await rotation.getByTestId('heading-path').innerText(), /API keys[\s›]+Rotation/);
  assert.match(await rotation.innerText(), /\d+ tokens/);
  await shot(page, 'knowledge-preview');

  // Upload: every file is queued, and the job's progress bar runs until all four are ready.
  await page.getByRole('button', { name: 'Upload 4 files' }).click();
  await page.getByTestId('kb-upload-summary').waitFor();
  assert.match(await page.getByTestId('kb-upload-summary').innerText(), /4 of 4 files queued/);
  const job = page.getByTestId('kb-job');
  await job.getByTestId('kb-job-progress').waitFor();
  await page.locator('[data-testid="kb-job"][data-status="done"]').waitFor({ timeout: 60000 });
  const bar = job.getByTestId('kb-job-progress');
  assert.equal(await bar.evaluate((p) => p.value === p.max && p.max > 0), true);
  assert.match(await job.getByTestId('kb-job-status').innerText(), /4 of 4 documents ready/);
  const docs = page.getByTestId('kb-documents');
  for (const [name] of FILES) await docs.locator(`tr[data-document="${name}"][data-status="ready"]`).waitFor();
  assert.equal(await docs.getByTestId('kb-doc-progress').count(), 0);
  await shot(page, 'knowledge-documents');

  // A document's segments, with their heading paths.
  await docs.locator('tr[data-document="handbook.md"]').getByRole('link', { name: /^Segments/ }).click();
  const segments = page.getByTestId('kb-segments');
  await segments.waitFor();
  assert.match(await segments.locator('.kb-segment', { hasText: 'To rotate an API key' }).getByTestId('heading-path').innerText(), /Rotation/);
  await page.goBack();

  // The same files again: two dropped as files, refused as duplicates naming the document already in.
  await dropFiles(page.getByTestId('kb-dropzone'), ['handbook.md', 'zh-guide.txt']);
  await selected.locator('tbody tr[data-file="zh-guide.txt"]').waitFor();
  await page.getByRole('button', { name: 'Upload 2 files' }).click();
  const results = page.getByTestId('kb-upload-results');
  await results.locator('tr[data-file="handbook.md"][data-outcome="refused"]').waitFor();
  assert.equal(await results.locator('tr[data-outcome="refused"]').count(), 2);
  assert.match(await results.locator('tr[data-file="handbook.md"]').innerText(), /duplicate_document/);
  assert.match(await page.getByTestId('kb-upload-summary').innerText(), /0 of 2 files queued, 2 refused/);
  await shot(page, 'knowledge-duplicates');

  // The folder picker lists a folder's files with their paths in it.
  await page.getByLabel('Choose a folder').setInputFiles(FOLDER);
  await selected.locator('tbody tr[data-file="handbook/handbook.md"]').waitFor();
  assert.equal(await selected.locator('tbody tr').count(), FILES.length);
  await page.getByRole('button', { name: 'Clear' }).click();
  await selected.waitFor({ state: 'detached' });

  // Retrieval test, English: the handbook's rotation segment first, terms marked, heading path shown.
  await page.getByRole('link', { name: 'Retrieval test' }).click();
  const form = page.getByTestId('kb-search');
  await form.getByLabel('Query').waitFor();
  assert.equal(await form.getByRole('checkbox', { name: /Handbook/ }).isChecked(), true);
  await form.getByLabel('Query').fill('How do I rotate an API key?');
  await form.getByRole('button', { name: 'Search' }).click();
  let first = page.getByTestId('kb-hit').first();
  await first.waitFor();
  assert.equal(await first.getAttribute('data-document'), 'handbook.md');
  assert.match(await first.getByTestId('heading-path').innerText(), /API keys[\s›]+Rotation/);
  const marks = await first.locator('mark').allInnerTexts();
  assert.ok(marks.some((m) => /rotat|api|key/i.test(m)), JSON.stringify(marks));
  assert.match(await page.getByTestId('kb-took').innerText(), /in \d+ ms/);
  await shot(page, 'knowledge-search-en');
  // The same search fused by reciprocal rank instead of the default relative score.
  assert.equal(await form.getByLabel('Fusion').inputValue(), 'relative_score');
  await form.getByLabel('Fusion').selectOption('rrf');
  const [rrfAnswer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/datasets/search') && r.request().method() === 'POST'),
    form.getByRole('button', { name: 'Search' }).click(),
  ]);
  assert.equal(JSON.parse(rrfAnswer.request().postData()).fusion, 'rrf');
  assert.equal(rrfAnswer.status(), 200);
  assert.equal((await rrfAnswer.json()).hits[0].filename, 'handbook.md');
  await form.getByLabel('Fusion').selectOption('relative_score');

  // Chinese: the Chinese guide first, with Chinese characters marked (code point offsets).
  await form.getByLabel('Query').fill('知识库怎么备份');
  await form.getByRole('button', { name: 'Search' }).click();
  first = page.getByTestId('kb-hit').first();
  await page.locator('[data-testid="kb-hit"][data-rank="1"][data-document="zh-guide.txt"]').waitFor();
  const zhMarks = await first.locator('mark').allInnerTexts();
  assert.ok(zhMarks.length > 0 && zhMarks.every((m) => /^[\u4e00-\u9fff]+$/u.test(m)), JSON.stringify(zhMarks));
  assert.ok(zhMarks.some((m) => /知识|识库|备份/u.test(m)), JSON.stringify(zhMarks));
  assert.match(await first.getByTestId('kb-hit-text').innerText(), /备份知识库的方法/);
  await shot(page, 'knowledge-search-zh');

  assert.deepEqual(problems, []);
  await page.close();
});

test('deep links work; settings are saved, a broken file fails with its reason, documents and the knowledge base are deleted', async () => {
  const { page, problems } = await openPageIn(context);
  // Deep links: the tenant's retrieval test (every knowledge base chosen), then the dataset page reloaded.
  await page.goto(`${server.base}/tenants/docs/retrieval`);
  await page.getByRole('heading', { name: 'Retrieval test', level: 1 }).waitFor();
  assert.equal(await page.getByRole('checkbox', { name: /Handbook/ }).isChecked(), true);
  await page.getByRole('link', { name: 'Knowledge', exact: true }).first().click();
  await page.getByTestId('kb-table').getByRole('link', { name: 'Handbook' }).click();
  await page.getByRole('heading', { name: 'Handbook', level: 1 }).waitFor();
  await page.goto(page.url());
  await page.getByRole('heading', { name: 'Handbook', level: 1 }).waitFor();

  // The original file comes back as uploaded.
  const docs = page.getByTestId('kb-documents');
  const download = await docs.locator('tr[data-document="zh-guide.txt"]').getByRole('link', { name: /^Download/ }).getAttribute('href');
  const body = await page.evaluate(async (href) => (await fetch(href)).text(), download);
  assert.equal(body, readFileSync(join(FOLDER, 'zh-guide.txt'), 'utf8'));

  // A truncated PDF is queued, then fails while it is parsed; the reason and a retry button are shown.
  const broken = { name: 'broken.pdf', type: 'application/pdf', base64: Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R').toString('base64') };
  await dropFiles(page.getByTestId('kb-dropzone'), [broken]);
  await page.getByRole('button', { name: 'Upload 1 file' }).click();
  await page.getByTestId('kb-upload-results').locator('tr[data-file="broken.pdf"][data-outcome="queued"]').waitFor();
  const failed = docs.locator('tr[data-document="broken.pdf"][data-status="failed"]');
  await failed.waitFor({ timeout: 30000 });
  assert.match(await failed.getByTestId('kb-doc-error').innerText(), /\(corrupt_document\)/);
  assert.equal(await failed.getByRole('button', { name: /^Retry/ }).count(), 1);
  await page.locator('[data-testid="kb-job"][data-status="done"]').waitFor();
  assert.match(await page.getByTestId('kb-job-status').innerText(), /0 of 1 documents ready, 1 failed/);
  await shot(page, 'knowledge-failed');

  // Settings: a new description and chunking.
  await page.getByRole('tab', { name: 'Settings' }).click();
  const settings = page.getByTestId('kb-settings');
  await settings.getByLabel('Description').fill('Runbooks and guides');
  await settings.getByLabel('Max tokens per segment').fill('120');
  await settings.getByRole('button', { name: 'Save settings' }).click();
  await page.getByTestId('kb-settings-saved').waitFor();
  assert.match(await page.getByTestId('kb-facts').innerText(), /chunks of 120 tokens, 32 overlap/);

  // Delete one document (the browser asks first), then the whole knowledge base.
  await page.getByRole('tab', { name: 'Documents' }).click();
  page.once('dialog', (dialog) => dialog.accept());
  await docs.locator('tr[data-document="office-supplies.csv"]').getByRole('button', { name: /^Delete/ }).click();
  await docs.locator('tr[data-document="office-supplies.csv"]').waitFor({ state: 'detached' });
  await page.getByRole('tab', { name: 'Settings' }).click();
  await page.getByRole('button', { name: /^Delete/ }).click();
  await page.getByRole('button', { name: 'Yes, delete it' }).click();
  await page.getByTestId('kb-empty').waitFor();
  assert.deepEqual(problems, []);
  await page.close();
});
