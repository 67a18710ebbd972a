// One knowledge base: its documents (status, progress while they are ingested — polled every second
// while anything runs —, errors, retry, cancel, delete, download), the upload (drop files or whole
// folders, or pick them; preview a file's chunks before uploading; per-file results and the job's
// progress), its settings; and a document's segments.
import { html, useEffect, useRef, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link, navigate } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatBytes, formatNumber, formatTime } from '../lib/ui.js';
import {
  ChunkingFields, Crumbs, DeleteDataset, HeadingPath, ProgressBar, STATUS, StatusBadge, canEdit, chunkingBody, chunkingForm, datasetApi, datasetPath,
  documentApi, documentPath, isRunning, kbApi, kbPath, retrievalPath, roleIn, typeName,
} from './knowledge-common.js';

const PAGE_SIZE = 50;
const POLL_MS = 1000;
// Files per upload request (the server's default limit is 100) and bytes per request, so that a big
// folder goes up in several requests rather than one huge one.
const BATCH_FILES = 50;
const BATCH_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Collecting files: picked (several files, or a folder) or dropped (files and folders, walked with
// the File and Directory Entries API).

const hidden = (name) => name.startsWith('.');

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

/** Adds the files under a dropped entry to `out` ({ file, path }); hidden files and folders are counted in `skipped`. */
async function walkEntry(entry, prefix, out, skipped) {
  if (hidden(entry.name)) {
    skipped.count += 1;
    return;
  }
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: prefix + file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    // readEntries answers in batches (100 in Chromium) until it answers an empty one.
    for (;;) {
      const batch = await readEntries(reader);
      if (batch.length === 0) break;
      for (const child of batch) await walkEntry(child, `${prefix}${entry.name}/`, out, skipped);
    }
  }
}

/** The files of a drop, folders walked. Everything is taken from the event before the first await. */
async function filesOfDrop(dataTransfer) {
  const entries = [];
  const loose = [];
  const items = dataTransfer.items ? Array.from(dataTransfer.items) : [];
  for (const item of items) {
    if (item.kind !== 'file') continue;
    const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) loose.push(file);
    }
  }
  if (items.length === 0 && dataTransfer.files) loose.push(...Array.from(dataTransfer.files));
  const skipped = { count: 0 };
  const out = [];
  for (const file of loose) {
    if (hidden(file.name)) skipped.count += 1;
    else out.push({ file, path: file.name });
  }
  for (const entry of entries) await walkEntry(entry, '', out, skipped);
  return { files: out, skipped: skipped.count };
}

function filesOfInput(input) {
  const out = [];
  let skipped = 0;
  for (const file of Array.from(input.files || [])) {
    const path = file.webkitRelativePath || file.name;
    if (path.split('/').some(hidden)) skipped += 1;
    else out.push({ file, path });
  }
  return { files: out, skipped };
}

const keyOf = (f) => `${f.path}\u0000${f.file.size}\u0000${f.file.lastModified}`;

/** Splits the files into upload requests of at most BATCH_FILES files and (unless one file is bigger) BATCH_BYTES. */
function batches(items) {
  const out = [];
  let current = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length > 0 && (current.length >= BATCH_FILES || bytes + item.file.size > BATCH_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.file.size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Chunk preview of one selected file.

function ChunkPreview({ tenant, dataset, item, chunking, onClose }) {
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stale = false;
    setAnswer(null);
    setError(null);
    const form = new FormData();
    form.append('file', item.file, item.file.name);
    if (chunking) form.append('chunking', JSON.stringify(chunking));
    api.postForm(`${datasetApi(tenant, dataset.id)}/preview`, form).then(
      (r) => { if (!stale) setAnswer(r); },
      (e) => { if (!stale) setError(e); },
    );
    return () => { stale = true; };
  }, [item, JSON.stringify(chunking)]);

  return html`
    <section class="card kb-preview" aria-labelledby="kb-preview-h" data-testid="kb-preview">
      <div class="card-head">
        <h3 id="kb-preview-h">Chunks of <code>${item.path}</code></h3>
        <button type="button" class="secondary" onClick=${onClose}>Close preview</button>
      </div>
      <${ErrorBanner} error=${error} />
      ${!answer && !error && html`<${Loading} what="the chunks" />`}
      ${answer && html`
        <p class="small" data-testid="kb-preview-total" aria-live="polite">
          <strong>${answer.title || item.file.name}</strong> · ${typeName(answer.mime_type, item.file.name)} · ${formatBytes(answer.size_bytes)}${' · '}${formatNumber(answer.segments.length)} ${answer.segments.length === 1 ? 'segment' : 'segments'}, ${formatNumber(answer.total_tokens)} tokens in all.${' '}
          <span class="muted">Nothing is stored by a preview.</span></p>
        <ol class="kb-segments" data-testid="kb-preview-segments">${answer.segments.map((s) => html`
          <${SegmentItem} key=${s.position} segment=${s} />`)}
        </ol>`}
    </section>`;
}

// ---------------------------------------------------------------------------------------------------
// An ingestion job's progress, polled while it runs.

function JobProgress({ tenant, job: first, onFinished }) {
  const [job, setJob] = useState(first);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stopped = false;
    let timer;
    const tick = () => api.get(`${kbApi(tenant)}/ingest-jobs/${encodeURIComponent(first.id)}`).then((j) => {
      if (stopped) return;
      setJob(j);
      setError(null);
      if (j.status === 'running') timer = setTimeout(tick, POLL_MS);
      else onFinished(j);
    }, (e) => {
      if (stopped) return;
      setError(e);
      timer = setTimeout(tick, 5 * POLL_MS);
    });
    if (first.status === 'running') timer = setTimeout(tick, POLL_MS / 2);
    else onFinished(first);
    return () => { stopped = true; clearTimeout(timer); };
  }, [first.id]);

  const finished = job.documents_ready + job.documents_failed + job.documents_cancelled;
  const running = job.status === 'running';
  let text;
  if (running) {
    text = `Ingesting: ${finished} of ${job.documents_total} documents finished, ${formatNumber(job.segments_done)} of ${formatNumber(job.segments_total)} segments embedded.`;
  } else {
    const parts = [`${job.documents_ready} of ${job.documents_total} documents ready`];
    if (job.documents_failed) parts.push(`${job.documents_failed} failed`);
    if (job.documents_cancelled) parts.push(`${job.documents_cancelled} cancelled`);
    text = `${job.status === 'cancelled' ? 'Cancelled' : 'Done'}: ${parts.join(', ')}.`;
  }
  async function cancel() {
    try {
      setJob(await api.post(`${kbApi(tenant)}/ingest-jobs/${encodeURIComponent(job.id)}/cancel`));
    } catch (e) {
      setError(e);
    }
  }
  // Documents finished of the job's documents (each document's own bar, below, shows its segments).
  const total = running ? job.documents_total : Math.max(job.documents_total, 1);
  const done = running ? finished : total;
  return html`
    <div class="kb-job" data-testid="kb-job" data-status=${job.status}>
      <${ProgressBar} done=${done} total=${total} label="Ingestion progress" testid="kb-job-progress" />
      <p class="small" role="status" aria-live="polite" data-testid="kb-job-status">${text}</p>
      ${running && html`<button type="button" class="secondary" onClick=${cancel}>Cancel ingestion</button>`}
      <${ErrorBanner} error=${error} />
    </div>`;
}

// ---------------------------------------------------------------------------------------------------
// Upload: the drop zone, the pickers, the list of files chosen, the results.

function Upload({ tenant, dataset, onUploaded, onJobFinished }) {
  const [items, setItems] = useState([]);
  const [skipped, setSkipped] = useState(0);
  const [dragging, setDragging] = useState(false);
  const [reading, setReading] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [results, setResults] = useState(null);
  const [jobs, setJobs] = useState([]);
  const [preview, setPreview] = useState(null);
  const [chunking, setChunking] = useState(() => chunkingForm(dataset.chunking));
  const dragDepth = useRef(0);

  // Chunking for this upload only when it differs from the knowledge base's.
  const own = chunkingBody(chunking);
  const override = own.max_tokens !== dataset.chunking.max_tokens || own.overlap_tokens !== dataset.chunking.overlap_tokens ? own : null;

  function add({ files, skipped: more }) {
    setError(null);
    setSkipped((n) => n + more);
    setItems((current) => {
      const seen = new Set(current.map(keyOf));
      const fresh = files.filter((f) => !seen.has(keyOf(f))).map((f) => ({ ...f, key: keyOf(f) }));
      return [...current, ...fresh];
    });
  }

  async function drop(event) {
    event.preventDefault();
    dragDepth.current = 0;
    setDragging(false);
    if (busy) return;
    setReading(true);
    try {
      add(await filesOfDrop(event.dataTransfer));
    } catch (e) {
      setError({ message: `The dropped files could not be read: ${e.message || e}` });
    } finally {
      setReading(false);
    }
  }
  function picked(event) {
    add(filesOfInput(event.currentTarget));
    // The same file can be picked again after it was removed from the list.
    event.currentTarget.value = '';
  }
  function remove(item) {
    setItems(items.filter((i) => i !== item));
    if (preview === item) setPreview(null);
  }
  function clear() {
    setItems([]);
    setSkipped(0);
    setPreview(null);
  }

  async function upload() {
    setError(null);
    setResults(null);
    setPreview(null);
    setBusy(true);
    const all = [];
    const started = [];
    const sent = new Set();
    try {
      for (const batch of batches(items)) {
        const form = new FormData();
        for (const item of batch) form.append('files', item.file, item.file.name);
        if (override) form.append('chunking', JSON.stringify(override));
        const answer = await api.postForm(`${datasetApi(tenant, dataset.id)}/documents`, form);
        batch.forEach((item) => sent.add(item));
        answer.results.forEach((r, i) => all.push({ ...r, path: batch[i] && batch[i].file.name === r.filename ? batch[i].path : r.filename }));
        if (answer.job) started.push(answer.job);
        setResults([...all]);
        setJobs([...started]);
        onUploaded();
      }
    } catch (e) {
      setError(e);
    } finally {
      // What was sent leaves the list (its result is shown); what was not stays for another try.
      setItems((current) => current.filter((i) => !sent.has(i)));
      if (sent.size > 0) setSkipped(0);
      setBusy(false);
    }
  }

  const dragProps = {
    onDragEnter: (e) => { e.preventDefault(); dragDepth.current += 1; setDragging(true); },
    onDragOver: (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'; },
    onDragLeave: () => { dragDepth.current = Math.max(0, dragDepth.current - 1); if (dragDepth.current === 0) setDragging(false); },
    onDrop: drop,
  };
  const totalBytes = items.reduce((n, i) => n + i.file.size, 0);
  const refused = results ? results.filter((r) => r.error) : [];
  return html`
    <section class="card kb-upload" aria-labelledby="kb-upload-h">
      <h2 id="kb-upload-h">Upload documents</h2>
      <div class=${'dropzone kb-dropzone' + (dragging ? ' dragging' : '')} data-testid="kb-dropzone" ...${dragProps}
        aria-describedby="kb-drop-help">
        <p id="kb-drop-help"><strong>Drop files or folders here</strong>, or choose them.
          <span class="small muted">Text, Markdown, HTML, PDF, DOCX, CSV and JSON; up to 50 MB each by default. Hidden files are left out.</span></p>
        <div class="kb-pickers">
          <label class="button-link" for="kb-files">Choose files</label>
          <input id="kb-files" class="kb-file-input" type="file" multiple onChange=${picked} disabled=${busy} />
          <label class="button-link" for="kb-folder">Choose a folder</label>
          <input id="kb-folder" class="kb-file-input" type="file" webkitdirectory=${true} multiple onChange=${picked} disabled=${busy} />
        </div>
        ${reading && html`<p class="small muted" role="status">Reading the dropped files…</p>`}
      </div>
      ${items.length > 0 && html`
        <div class="table-scroll">
          <table class="dense" data-testid="kb-selected">
            <caption class="kb-caption">${items.length} ${items.length === 1 ? 'file' : 'files'} chosen, ${formatBytes(totalBytes)}${skipped ? html`<span class="muted"> · ${skipped} hidden left out</span>` : null}</caption>
            <thead><tr><th scope="col">File</th><th scope="col" class="num">Size</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>${items.map((item) => html`
              <tr key=${item.key} data-file=${item.path} aria-current=${preview === item ? 'true' : undefined}>
                <td><code>${item.path}</code></td>
                <td class="num">${formatBytes(item.file.size)}</td>
                <td class="actions">
                  <button type="button" class="secondary" onClick=${() => setPreview(item)} disabled=${busy}>Preview chunks<span class="visually-hidden"> of ${item.path}</span></button>
                  <button type="button" class="secondary" onClick=${() => remove(item)} disabled=${busy}>Remove<span class="visually-hidden"> ${item.path}</span></button>
                </td>
              </tr>`)}
            </tbody>
          </table>
        </div>
        <details class="kb-override">
          <summary>Chunking for this upload${override ? html` <span class="pill pill-tone-warn">changed</span>` : null}</summary>
          <p class="small muted">Defaults to the knowledge base's settings; the preview uses these numbers too.</p>
          <div class="form"><${ChunkingFields} prefix="kb-upload-chunking" value=${chunking} onChange=${setChunking} disabled=${busy} /></div>
        </details>
        <div class="actions">
          <button type="button" onClick=${upload} disabled=${busy}>${busy ? 'Uploading…' : `Upload ${items.length} ${items.length === 1 ? 'file' : 'files'}`}</button>
          <button type="button" class="secondary" onClick=${clear} disabled=${busy}>Clear</button>
        </div>`}
      ${preview && html`<${ChunkPreview} tenant=${tenant} dataset=${dataset} item=${preview} chunking=${override} onClose=${() => setPreview(null)} />`}
      <${ErrorBanner} error=${error} />
      ${results && html`
        <div class=${'banner ' + (refused.length ? 'banner-warn' : 'banner-ok')} role="status" data-testid="kb-upload-summary">
          ${results.length - refused.length} of ${results.length} ${results.length === 1 ? 'file' : 'files'} queued${refused.length ? `, ${refused.length} refused` : ''}.
        </div>
        <div class="table-scroll">
          <table class="dense" data-testid="kb-upload-results">
            <caption class="visually-hidden">Upload results</caption>
            <thead><tr><th scope="col">File</th><th scope="col">Result</th></tr></thead>
            <tbody>${results.map((r, i) => html`
              <tr key=${i} data-file=${r.filename} data-outcome=${r.error ? 'refused' : 'queued'}>
                <td><code>${r.path}</code></td>
                <td>${r.error
                  ? html`<span class="bad">${r.error.message}</span> <span class="muted small">(${r.error.code})</span>`
                  : html`Queued as <${Link} href=${documentPath(tenant, dataset.id, r.document.id)}>${r.document.title || r.filename}</${Link}>`}</td>
              </tr>`)}
            </tbody>
          </table>
        </div>`}
      ${jobs.map((job) => html`<${JobProgress} key=${job.id} tenant=${tenant} job=${job} onFinished=${onJobFinished} />`)}
    </section>`;
}

// ---------------------------------------------------------------------------------------------------
// The documents table, polled while something is being ingested.

function DocumentActions({ tenant, dataset, doc, editable, onChanged, onError }) {
  const base = documentApi(tenant, dataset.id, doc.id);
  async function act(promise) {
    onError(null);
    try {
      await promise();
      onChanged();
    } catch (e) {
      onError(e);
    }
  }
  function remove() {
    if (!confirm(`Delete the document ${doc.title || doc.filename}? Its segments and file are removed.`)) return;
    act(() => api.del(base));
  }
  const name = html`<span class="visually-hidden"> ${doc.title || doc.filename}</span>`;
  return html`
    <div class="actions">
      <${Link} href=${documentPath(tenant, dataset.id, doc.id)} class="button-link">Segments${name}</${Link}>
      <a class="button-link" href=${`${base}/file`} download=${doc.filename}>Download${name}</a>
      ${editable && (doc.status === 'failed' || doc.status === 'cancelled') && html`
        <button type="button" class="secondary" onClick=${() => act(() => api.post(`${base}/retry`))}>Retry${name}</button>`}
      ${editable && isRunning(doc) && html`
        <button type="button" class="secondary" onClick=${() => act(() => api.post(`${base}/cancel`))}>Cancel${name}</button>`}
      ${editable && html`<button type="button" class="secondary danger-outline" onClick=${remove}>Delete${name}</button>`}
    </div>`;
}

function Documents({ tenant, dataset, editable, version, onSettled }) {
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const [actionError, setActionError] = useState(null);
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState('');
  const [refresh, setRefresh] = useState(0);
  const settled = useRef(onSettled);
  settled.current = onSettled;

  useEffect(() => {
    let stopped = false;
    let timer;
    let wasRunning = false;
    const query = `limit=${PAGE_SIZE}&offset=${offset}${status ? `&status=${status}` : ''}`;
    const tick = () => api.get(`${datasetApi(tenant, dataset.id)}/documents?${query}`).then((r) => {
      if (stopped) return;
      setAnswer(r);
      setError(null);
      const running = r.documents.some(isRunning);
      if (running) {
        wasRunning = true;
        timer = setTimeout(tick, POLL_MS);
      } else if (wasRunning) {
        settled.current();
      }
    }, (e) => {
      if (stopped) return;
      setError(e);
      // A passing failure (a restart): look again, slower.
      timer = setTimeout(tick, 5 * POLL_MS);
    });
    tick();
    return () => { stopped = true; clearTimeout(timer); };
  }, [tenant, dataset.id, offset, status, version, refresh]);

  const docs = answer ? answer.documents : [];
  const running = docs.filter(isRunning);
  const segDone = running.reduce((n, d) => n + d.segments_done, 0);
  const segTotal = running.reduce((n, d) => n + d.segments_total, 0);
  return html`
    <section aria-labelledby="kb-docs-h">
      <div class="card-head">
        <h2 id="kb-docs-h">Documents ${answer ? html`<span class="muted small">(${formatNumber(answer.total)})</span>` : null}</h2>
        <div class="chart-controls">
          <label>Status <select value=${status} onChange=${(e) => { setOffset(0); setStatus(e.currentTarget.value); }}>
            <option value="">All</option>
            ${Object.entries(STATUS).map(([k, s]) => html`<option value=${k}>${s.label}</option>`)}</select></label>
        </div>
      </div>
      <p class="small muted kb-live" role="status" aria-live="polite" data-testid="kb-docs-live">${running.length > 0
        ? `${running.length} ${running.length === 1 ? 'document is' : 'documents are'} being ingested: ${formatNumber(segDone)} of ${formatNumber(segTotal)} segments embedded.`
        : ''}</p>
      <${ErrorBanner} error=${error} />
      <${ErrorBanner} error=${actionError} />
      ${!answer && !error && html`<${Loading} what="documents" />`}
      ${answer && answer.total === 0 && html`<p class="muted" data-testid="kb-docs-empty">${status ? 'No documents with this status.' : 'No documents yet.'}</p>`}
      ${answer && docs.length > 0 && html`
        <div class="table-scroll">
          <table class="dense" data-testid="kb-documents">
            <caption class="visually-hidden">Documents of ${dataset.name}</caption>
            <thead><tr><th scope="col">Title</th><th scope="col">Type</th><th scope="col" class="num">Size</th><th scope="col">Status</th>
              <th scope="col" class="num">Segments</th><th scope="col">Updated</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>${docs.map((d) => html`
              <tr key=${d.id} data-document=${d.filename} data-status=${d.status}>
                <td><strong>${d.title || d.filename}</strong><div class="small muted"><code>${d.filename}</code></div></td>
                <td class="small">${typeName(d.mime_type, d.filename)}</td>
                <td class="num">${formatBytes(d.size_bytes)}</td>
                <td class="kb-status-cell"><${StatusBadge} status=${d.status} />
                  ${isRunning(d) && html`<${ProgressBar} done=${d.segments_done} total=${d.segments_total}
                    label=${`Progress of ${d.title || d.filename}`} testid="kb-doc-progress" />`}
                  ${d.error && html`<div class="small bad" data-testid="kb-doc-error">${d.error.message} <span class="muted">(${d.error.code})</span></div>`}</td>
                <td class="num">${isRunning(d) ? `${formatNumber(d.segments_done)} / ${formatNumber(d.segments_total)}` : formatNumber(d.segments_total)}</td>
                <td class="small">${formatTime(d.updated_at)}</td>
                <td><${DocumentActions} tenant=${tenant} dataset=${dataset} doc=${d} editable=${editable}
                  onChanged=${() => setRefresh((n) => n + 1)} onError=${setActionError} /></td>
              </tr>`)}
            </tbody>
          </table>
        </div>
        <${Pager} offset=${offset} limit=${PAGE_SIZE} total=${answer.total} onChange=${setOffset} what="documents" />`}
    </section>`;
}

function Pager({ offset, limit, total, onChange, what }) {
  if (total <= limit) return null;
  const last = Math.min(offset + limit, total);
  return html`
    <nav class="kb-pager small" aria-label=${`Pages of ${what}`}>
      <button type="button" class="secondary" disabled=${offset === 0} onClick=${() => onChange(Math.max(0, offset - limit))}>Previous</button>
      <span aria-live="polite">${formatNumber(offset + 1)}–${formatNumber(last)} of ${formatNumber(total)}</span>
      <button type="button" class="secondary" disabled=${last >= total} onClick=${() => onChange(offset + limit)}>Next</button>
    </nav>`;
}

// ---------------------------------------------------------------------------------------------------
// Settings.

function Settings({ tenant, dataset, onSaved }) {
  const toForm = (d) => ({ name: d.name, description: d.description || '', chunking: chunkingForm(d.chunking) });
  const [form, setForm] = useState(() => toForm(dataset));
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const set = (key) => (e) => { setSaved(false); setForm({ ...form, [key]: e.currentTarget.value }); };

  async function save(event) {
    event.preventDefault();
    setError(null);
    setSaved(false);
    setBusy(true);
    try {
      const updated = await api.patch(datasetApi(tenant, dataset.id), {
        name: form.name.trim(), description: form.description.trim(), chunking: chunkingBody(form.chunking),
      });
      setForm(toForm(updated));
      setSaved(true);
      onSaved(updated);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <form class="card form kb-settings" onSubmit=${save} aria-labelledby="kb-settings-h" data-testid="kb-settings">
      <h2 id="kb-settings-h">Settings</h2>
      <div class="field"><label for="kb-set-name">Name</label>
        <input id="kb-set-name" required maxlength="200" value=${form.name} onInput=${set('name')} /></div>
      <div class="field"><label for="kb-set-description">Description</label>
        <textarea id="kb-set-description" rows="2" value=${form.description} onInput=${set('description')}></textarea></div>
      <div class="field"><span class="kb-label">Embedding model</span> <code>${dataset.embedding_model}</code>
        <p class="small muted">Fixed: the segments are embedded with it.</p></div>
      <${ChunkingFields} prefix="kb-set-chunking" value=${form.chunking} onChange=${(chunking) => { setSaved(false); setForm({ ...form, chunking }); }} />
      <p class="small muted">New chunking applies to documents added afterwards; documents already in stay as they were cut.</p>
      <${ErrorBanner} error=${error} />
      ${saved && html`<div class="banner banner-ok" role="status" data-testid="kb-settings-saved">Saved the settings.</div>`}
      <button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Save settings'}</button>
    </form>
    <section class="card" aria-labelledby="kb-delete-h">
      <h2 id="kb-delete-h">Delete the knowledge base</h2>
      <p class="small muted">Its documents, segments, vectors, index entries and files are removed. This cannot be undone.</p>
      <${DeleteDataset} tenant=${tenant} dataset=${dataset} onDeleted=${() => navigate(kbPath(tenant))} />
    </section>`;
}

// ---------------------------------------------------------------------------------------------------
// The pages.

/** /tenants/{t}/knowledge/{dataset}: documents and upload, settings. */
/** One segment as the preview and the segments page show it: position, tokens, page, heading path, text. */
function SegmentItem({ segment: s }) {
  return html`
    <li class="kb-segment" data-position=${s.position}>
      <div class="kb-segment-head small muted">
        <span>#${s.position + 1}</span><span>${formatNumber(s.token_count)} tokens</span>
        ${s.page !== null && s.page !== undefined ? html`<span>page ${s.page}</span>` : null}
        <${HeadingPath} path=${s.heading_path} />
      </div>
      <div class="kb-segment-text">${s.text}</div>
    </li>`;
}

export function DatasetPage({ tenant, dataset: id }) {
  const { info } = useSession();
  const [dataset, setDataset] = useState(null);
  const [error, setError] = useState(null);
  const [tab, setTab] = useState('documents');
  const [version, setVersion] = useState(0);
  const load = () => api.get(datasetApi(tenant, id)).then((d) => { setDataset(d); setError(null); }, setError);
  useEffect(() => { load(); }, [tenant, id]);
  const trail = (name) => html`<${Crumbs} items=${[[kbPath(tenant), 'Knowledge'], [null, name]]} />`;
  if (error && !dataset) return html`${trail('Knowledge base')}<h1>Knowledge base</h1><${ErrorBanner} error=${error} />`;
  if (!dataset) return html`${trail('Knowledge base')}<h1>Knowledge base</h1><${Loading} what="the knowledge base" />`;
  const editable = canEdit(roleIn(info, tenant));
  const tabs = [['documents', 'Documents'], ...(editable ? [['settings', 'Settings']] : [])];
  // After an upload: the documents list looks again (and keeps looking while they run) and the counts update.
  const changed = () => { setVersion((v) => v + 1); load(); };
  return html`
    ${trail(dataset.name)}
    <div class="page-head">
      <h1>${dataset.name}</h1>
      <${Link} href=${retrievalPath(tenant, dataset.id)} class="button-link">Retrieval test</${Link}>
    </div>
    ${dataset.description && html`<p>${dataset.description}</p>`}
    <p class="small muted kb-facts" data-testid="kb-facts">
      <span>${formatNumber(dataset.document_count)} documents</span> <span>${formatNumber(dataset.ready_count)} ready</span>
      <span>${formatNumber(dataset.segment_count)} segments</span> <span>${formatBytes(dataset.size_bytes)}</span>
      <span>model <code>${dataset.embedding_model}</code></span>
      <span>chunks of ${dataset.chunking.max_tokens} tokens, ${dataset.chunking.overlap_tokens} overlap</span></p>
    <div role="tablist" class="tabs">
      ${tabs.map(([key, label]) => html`
        <button type="button" role="tab" aria-selected=${tab === key} class=${tab === key ? 'tab active' : 'tab'} onClick=${() => setTab(key)}>${label}</button>`)}
    </div>
    <section role="tabpanel" class="kb-panel">
      ${tab === 'documents' && html`
        ${editable && html`<${Upload} tenant=${tenant} dataset=${dataset} onUploaded=${changed} onJobFinished=${changed} />`}
        <${Documents} tenant=${tenant} dataset=${dataset} editable=${editable} version=${version} onSettled=${load} />`}
      ${tab === 'settings' && html`<${Settings} tenant=${tenant} dataset=${dataset} onSaved=${setDataset} />`}
    </section>`;
}

const SEGMENT_PAGE = 20;

/** /tenants/{t}/knowledge/{dataset}/documents/{doc}: the document and its segments, a page at a time. */
export function SegmentsPage({ tenant, dataset: datasetId, doc: docId }) {
  const [dataset, setDataset] = useState(null);
  const [doc, setDoc] = useState(null);
  const [segments, setSegments] = useState(null);
  const [offset, setOffset] = useState(0);
  const [error, setError] = useState(null);
  useEffect(() => {
    api.get(datasetApi(tenant, datasetId)).then(setDataset, setError);
    api.get(documentApi(tenant, datasetId, docId)).then(setDoc, setError);
  }, [tenant, datasetId, docId]);
  useEffect(() => {
    api.get(`${documentApi(tenant, datasetId, docId)}/segments?limit=${SEGMENT_PAGE}&offset=${offset}`).then(setSegments, setError);
  }, [tenant, datasetId, docId, offset]);

  const title = doc ? doc.title || doc.filename : 'Document';
  return html`
    <${Crumbs} items=${[[kbPath(tenant), 'Knowledge'], [datasetPath(tenant, datasetId), dataset ? dataset.name : 'Knowledge base'], [null, title]]} />
    <h1>${title}</h1>
    <${ErrorBanner} error=${error} />
    ${doc && html`
      <p class="small muted kb-facts" data-testid="kb-doc-facts">
        <span><code>${doc.filename}</code></span> <span>${typeName(doc.mime_type, doc.filename)}</span> <span>${formatBytes(doc.size_bytes)}</span>
        <span><${StatusBadge} status=${doc.status} /></span> <span>${formatNumber(doc.token_count)} tokens</span>
        <span>uploaded ${formatTime(doc.created_at)}</span>
        <a href=${`${documentApi(tenant, datasetId, docId)}/file`} download=${doc.filename}>Download the original</a></p>
      ${doc.error && html`<div class="banner banner-error" role="alert">${doc.error.message} <span class="muted">(${doc.error.code})</span></div>`}`}
    ${!segments && !error && html`<${Loading} what="segments" />`}
    ${segments && segments.total === 0 && html`<p class="muted">No segments${doc && isRunning(doc) ? ' yet: the document is still being ingested' : ''}.</p>`}
    ${segments && segments.segments.length > 0 && html`
      <h2>Segments <span class="muted small">(${formatNumber(segments.total)})</span></h2>
      <ol class="kb-segments" data-testid="kb-segments">${segments.segments.map((s) => html`
        <${SegmentItem} key=${s.id} segment=${s} />`)}
      </ol>
      <${Pager} offset=${offset} limit=${SEGMENT_PAGE} total=${segments.total} onChange=${setOffset} what="segments" />`}`;
}
