// Knowledge bases: pieces the list, the dataset page and the retrieval test share — the API paths,
// document statuses, the caller's role in a tenant,
// the chunking fields and the heading-path breadcrumbs.
import { html, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner } from '../lib/ui.js';
import { Link } from '../lib/router.js';

export const ROLES = ['viewer', 'editor', 'admin', 'owner'];

/** The tenant scope's knowledge routes. */
export const kbApi = (tenant) => `/api/v1/tenants/${encodeURIComponent(tenant)}`;
export const datasetApi = (tenant, dataset) => `${kbApi(tenant)}/datasets/${encodeURIComponent(dataset)}`;
export const documentApi = (tenant, dataset, doc) => `${datasetApi(tenant, dataset)}/documents/${encodeURIComponent(doc)}`;

/** The UI's own paths. */
export const kbPath = (tenant) => `/tenants/${tenant}/knowledge`;
export const datasetPath = (tenant, dataset) => `${kbPath(tenant)}/${encodeURIComponent(dataset)}`;
export const documentPath = (tenant, dataset, doc) => `${datasetPath(tenant, dataset)}/documents/${encodeURIComponent(doc)}`;
export const retrievalPath = (tenant, dataset) => (dataset ? `${datasetPath(tenant, dataset)}/retrieval` : `/tenants/${tenant}/retrieval`);

/** The caller's role in a tenant (system administrators act as admin everywhere), or null. */
export function roleIn(info, tenant) {
  if (!info) return null;
  const membership = info.memberships.find((m) => m.tenant_id === tenant);
  if (membership) return membership.role;
  return info.user.is_system_admin ? 'admin' : null;
}

export const canEdit = (role) => ROLES.indexOf(role) >= ROLES.indexOf('editor');

// Document statuses: label and pill tone. The running ones are polled.
export const STATUS = {
  queued: { label: 'Queued', pill: 'pill-tone-neutral' },
  parsing: { label: 'Parsing', pill: 'pill-tone-warn' },
  embedding: { label: 'Embedding', pill: 'pill-tone-warn' },
  indexing: { label: 'Indexing', pill: 'pill-tone-warn' },
  ready: { label: 'Ready', pill: 'pill-tone-ok' },
  failed: { label: 'Failed', pill: 'pill-tone-error' },
  cancelled: { label: 'Cancelled', pill: 'pill-tone-neutral' },
};
export const RUNNING = new Set(['queued', 'parsing', 'embedding', 'indexing']);
export const isRunning = (doc) => RUNNING.has(doc.status);

export function StatusBadge({ status }) {
  const s = STATUS[status] || { label: status, pill: '' };
  return html`<span class=${'pill ' + s.pill} data-status=${status}>${s.label}</span>`;
}

/**
 * A progress bar for `done` of `total`; indeterminate (no value) while the total is not known yet.
 * `label` names it for assistive technology.
 */
export function ProgressBar({ done, total, label, testid }) {
  if (!total) {
    return html`<progress class="kb-progress" aria-label=${label} aria-valuetext="starting" data-testid=${testid}></progress>`;
  }
  const value = Math.min(done, total);
  return html`<progress class="kb-progress" max=${total} value=${value} aria-label=${label}
    aria-valuetext=${`${value} of ${total}`} data-testid=${testid} data-done=${value} data-total=${total}></progress>`;
}

/** A heading path as breadcrumbs ("Install › On Debian"); nothing for an empty path. */
export function HeadingPath({ path, testid = 'heading-path' }) {
  if (!path || path.length === 0) return null;
  return html`
    <nav class="kb-headings small" aria-label="Heading path" data-testid=${testid}>
      <ol>${path.map((h, i) => html`<li key=${i}>${h}</li>`)}</ol>
    </nav>`;
}

/** The two chunking numbers as form fields, with the ids given a prefix. */
export function ChunkingFields({ prefix, value, onChange, disabled }) {
  const set = (key) => (e) => onChange({ ...value, [key]: e.currentTarget.value });
  return html`
    <div class="grid-2">
      <div class="field"><label for=${prefix + '-max'}>Max tokens per segment</label>
        <input id=${prefix + '-max'} type="number" inputmode="numeric" step="1" required disabled=${disabled}
          value=${value.max_tokens} onInput=${set('max_tokens')} aria-describedby=${prefix + '-max-help'} />
        <p id=${prefix + '-max-help'} class="small muted">Counted with the embedding model's tokenizer (default 200).</p></div>
      <div class="field"><label for=${prefix + '-overlap'}>Overlap tokens</label>
        <input id=${prefix + '-overlap'} type="number" inputmode="numeric" step="1" required disabled=${disabled}
          value=${value.overlap_tokens} onInput=${set('overlap_tokens')} aria-describedby=${prefix + '-overlap-help'} />
        <p id=${prefix + '-overlap-help'} class="small muted">Shared by consecutive pieces of one long passage (default 32).</p></div>
    </div>`;
}

export const DEFAULT_CHUNKING = { max_tokens: '200', overlap_tokens: '32' };
export const chunkingForm = (c) => (c ? { max_tokens: String(c.max_tokens), overlap_tokens: String(c.overlap_tokens) } : { ...DEFAULT_CHUNKING });
/** The API's chunking object from the form's text (the server checks the values and says what is wrong). */
export const chunkingBody = (f) => ({ max_tokens: Number(f.max_tokens), overlap_tokens: Number(f.overlap_tokens) });

/** A MIME type as a short type name for tables. */
export function typeName(mime, filename) {
  const known = {
    'text/markdown': 'Markdown', 'text/html': 'HTML', 'text/plain': 'Text', 'text/csv': 'CSV',
    'application/pdf': 'PDF', 'application/json': 'JSON',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'DOCX',
  };
  const essence = (mime || '').split(';')[0].trim();
  if (known[essence]) return known[essence];
  if (essence) return essence;
  const dot = (filename || '').lastIndexOf('.');
  return dot > 0 ? filename.slice(dot + 1).toUpperCase() : '—';
}

/** Delete a knowledge base, after an inline confirmation. */
export function DeleteDataset({ tenant, dataset, onDeleted }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function remove() {
    setError(null);
    setBusy(true);
    try {
      await api.del(datasetApi(tenant, dataset.id));
      onDeleted();
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  }
  if (!confirming) {
    return html`<button type="button" class="secondary danger-outline" onClick=${() => setConfirming(true)}>
      Delete<span class="visually-hidden"> ${dataset.name}</span></button>`;
  }
  const q = `kb-delete-q-${dataset.id}`;
  return html`
    <div class="confirm" role="group" aria-labelledby=${q}>
      <p id=${q}><strong>Delete ${dataset.name}?</strong> Its ${dataset.document_count} documents, their segments and files are removed.</p>
      <${ErrorBanner} error=${error} />
      <button type="button" class="danger" onClick=${remove} disabled=${busy}>Yes, delete it</button>
      <button type="button" class="secondary" onClick=${() => setConfirming(false)}>Cancel</button>
    </div>`;
}


/** The breadcrumb trail above a knowledge page: `items` are [href, label] pairs, the last one (the page) without href. */
export function Crumbs({ items }) {
  return html`
    <nav class="crumbs small" aria-label="Breadcrumb">
      ${items.map(([href, label], i) => html`${i > 0 ? html`<span aria-hidden="true"> / </span>` : null}${href
        ? html`<${Link} href=${href}>${label}</${Link}>`
        : html`<span aria-current="page">${label}</span>`}`)}
    </nav>`;
}
