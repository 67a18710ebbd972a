// Knowledge bases: a tenant's datasets (list, create with an embedding model and chunking, delete),
// and the routes below them — a dataset's documents, uploads and settings (knowledge-dataset.js), a
// document's segments, and the retrieval test (knowledge-search.js). Paths:
//   /knowledge                                      the list, for a tenant chosen on the page
//   /tenants/{t}/knowledge                          the list of tenant t
//   /tenants/{t}/knowledge/{dataset}                documents, upload, settings
//   /tenants/{t}/knowledge/{dataset}/documents/{d}  a document's segments
//   /tenants/{t}/knowledge/{dataset}/retrieval      retrieval test, that dataset chosen
//   /tenants/{t}/retrieval                          retrieval test
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link, navigate, usePath } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatBytes, formatNumber, formatTime } from '../lib/ui.js';
import { NotFound } from './not-found.js';
import {
  ChunkingFields, DEFAULT_CHUNKING, DeleteDataset, canEdit, chunkingBody, datasetPath, kbApi, kbPath, retrievalPath, roleIn,
} from './knowledge-common.js';
import { DatasetPage, SegmentsPage } from './knowledge-dataset.js';
import { RetrievalTest } from './knowledge-search.js';

const LAST_TENANT = 'enclave.knowledge.tenant';

function CreateDataset({ tenant, onCreated }) {
  const [models, setModels] = useState(null);
  const [modelsError, setModelsError] = useState(null);
  const empty = { name: '', description: '', embedding_model: '', chunking: { ...DEFAULT_CHUNKING } };
  const [form, setForm] = useState(empty);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    let timer;
    const load = () => api.get('/api/v1/models').then((r) => {
      setModels(r);
      // While an embedding model is still loading, look again shortly (creating needs it loaded).
      if (r.models.some((m) => m.kind === 'embedding' && m.state === 'loading')) timer = setTimeout(load, 2000);
    }, setModelsError);
    load();
    return () => clearTimeout(timer);
  }, []);
  const embedding = models ? models.models.filter((m) => m.kind === 'embedding') : [];
  const chosen = models && embedding.find((m) => m.name === (form.embedding_model || models.default_embedding_model));

  async function submit(event) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const body = { name: form.name.trim(), description: form.description.trim(), chunking: chunkingBody(form.chunking) };
      if (form.embedding_model) body.embedding_model = form.embedding_model;
      const created = await api.post(`${kbApi(tenant)}/datasets`, body);
      setForm(empty);
      onCreated(created);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  const set = (key) => (e) => setForm({ ...form, [key]: e.currentTarget.value });
  return html`
    <form class="card form kb-create" onSubmit=${submit} aria-labelledby="kb-create-h" data-testid="kb-create">
      <h2 id="kb-create-h">New knowledge base</h2>
      <div class="field"><label for="kb-name">Name</label>
        <input id="kb-name" required maxlength="200" value=${form.name} onInput=${set('name')} placeholder="Employee handbook" /></div>
      <div class="field"><label for="kb-description">Description <span class="muted">(optional)</span></label>
        <textarea id="kb-description" rows="2" value=${form.description} onInput=${set('description')}></textarea></div>
      <div class="field"><label for="kb-model">Embedding model</label>
        <select id="kb-model" value=${form.embedding_model} onChange=${set('embedding_model')} aria-describedby="kb-model-help">
          <option value="">Default${models ? ` (${models.default_embedding_model})` : ''}</option>
          ${embedding.map((m) => html`<option value=${m.name}>${m.name}${m.state === 'ready' || m.state === 'remote' ? '' : ` (${m.state})`}</option>`)}
        </select>
        <p id="kb-model-help" class="small muted">Fixed once the knowledge base exists: every segment is embedded with it.</p>
        ${chosen && chosen.state === 'loading' && html`<p class="small muted" role="status" data-testid="kb-model-loading">${chosen.name} is still loading: a knowledge base can be created once it is ready.</p>`}
        ${chosen && chosen.state === 'failed' && html`<p class="small bad">${chosen.name} failed to load${chosen.error ? `: ${chosen.error}` : ''}.</p>`}
        ${modelsError && html`<p class="small bad">The models could not be listed: ${modelsError.message}</p>`}
        ${models && embedding.length === 0 && html`<p class="small bad" data-testid="kb-no-embedding-model">No embedding model is installed (see Models): documents cannot be embedded.</p>`}</div>
      <${ChunkingFields} prefix="kb-chunking" value=${form.chunking} onChange=${(chunking) => setForm({ ...form, chunking })} />
      <${ErrorBanner} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create knowledge base'}</button>
    </form>`;
}


function DatasetTable({ tenant, datasets, editable, onDeleted }) {
  return html`
    <div class="table-scroll">
      <table data-testid="kb-table">
        <caption class="visually-hidden">Knowledge bases</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col" class="num">Documents</th>
          <th scope="col" class="num">Ready</th><th scope="col" class="num">Segments</th><th scope="col" class="num">Size</th>
          <th scope="col">Updated</th>${editable ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}</tr></thead>
        <tbody>${datasets.map((d) => html`
          <tr key=${d.id} data-dataset=${d.name}>
            <td><${Link} href=${datasetPath(tenant, d.id)}>${d.name}</${Link}>
              <div class="small muted">${d.embedding_model}</div></td>
            <td class="small">${d.description || html`<span class="muted">—</span>`}</td>
            <td class="num">${formatNumber(d.document_count)}</td>
            <td class="num">${formatNumber(d.ready_count)}</td>
            <td class="num">${formatNumber(d.segment_count)}</td>
            <td class="num">${formatBytes(d.size_bytes)}</td>
            <td class="small">${formatTime(d.updated_at)}</td>
            ${editable ? html`<td><${DeleteDataset} tenant=${tenant} dataset=${d} onDeleted=${onDeleted} /></td>` : null}
          </tr>`)}
        </tbody>
      </table>
    </div>`;
}

/** The list of a tenant's knowledge bases with the tenant chooser and the creation form. */
function DatasetList({ tenant, tenants }) {
  const { info } = useSession();
  const [datasets, setDatasets] = useState(null);
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(null);
  const role = roleIn(info, tenant);
  const editable = canEdit(role);
  const load = () => api.get(`${kbApi(tenant)}/datasets`).then((r) => { setDatasets(r.datasets); setError(null); }, setError);
  useEffect(() => {
    setDatasets(null);
    setCreated(null);
    setError(null);
    localStorage.setItem(LAST_TENANT, tenant);
    load();
  }, [tenant]);

  return html`
    <div class="page-head">
      <h1>Knowledge</h1>
      <${Link} href=${retrievalPath(tenant)} class="button-link">Retrieval test</${Link}>
    </div>
    <p class="muted">Documents uploaded here are cut into segments, embedded with a local model and indexed on this server, for search by keywords, by meaning or both.</p>
    <div class="inline-form">
      <label>Tenant <select value=${tenant} aria-label="Tenant" onChange=${(e) => navigate(kbPath(e.currentTarget.value))}>
        ${tenants.map((t) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>
      ${role && html`<span class="small muted">Your role: <span class="pill">${role}</span></span>`}
    </div>
    <div class=${editable ? 'split' : ''}>
      <section aria-labelledby="kb-list-h">
        <h2 id="kb-list-h" class="visually-hidden">Knowledge bases</h2>
        <${ErrorBanner} error=${error} />
        ${created && html`<div class="banner banner-ok" role="status" data-testid="kb-created">Created <${Link} href=${datasetPath(tenant, created.id)}>${created.name}</${Link}>: open it to upload documents.</div>`}
        ${datasets === null && !error ? html`<${Loading} what="knowledge bases" />` : null}
        ${datasets && datasets.length === 0 && html`<p class="muted" data-testid="kb-empty">No knowledge bases yet.${editable ? ' Create the first one.' : ''}</p>`}
        ${datasets && datasets.length > 0 && html`<${DatasetTable} tenant=${tenant} datasets=${datasets} editable=${editable} onDeleted=${load} />`}
      </section>
      ${editable && html`<${CreateDataset} tenant=${tenant} onCreated=${(d) => { setCreated(d); load(); }} />`}
    </div>`;
}

/** Loads the tenants the caller may choose from, then renders `render(tenants)`. */
function WithTenants({ title, render }) {
  const [tenants, setTenants] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { api.get('/api/v1/tenants').then((r) => setTenants(r.tenants), setError); }, []);
  if (error) return html`<h1>${title}</h1><${ErrorBanner} error=${error} />`;
  if (!tenants) return html`<h1>${title}</h1><${Loading} what="tenants" />`;
  if (tenants.length === 0) {
    return html`<h1>${title}</h1><p class="muted" data-testid="no-tenant">You are not a member of a tenant yet: knowledge bases belong to a tenant.</p>`;
  }
  return render(tenants);
}

/** The view for /knowledge and everything under /tenants/{t}/knowledge and /tenants/{t}/retrieval. */
export function Knowledge() {
  const path = usePath();
  if (path === '/knowledge') {
    return html`<${WithTenants} title="Knowledge" render=${(tenants) => {
      const last = localStorage.getItem(LAST_TENANT);
      const tenant = tenants.some((t) => t.id === last) ? last : tenants[0].id;
      return html`<${DatasetList} tenant=${tenant} tenants=${tenants} />`;
    }} />`;
  }
  const m = path.match(/^\/tenants\/([a-z0-9-]+)\/(knowledge|retrieval)(?:\/([^/]+))?(?:\/(documents|retrieval))?(?:\/([^/]+))?$/);
  if (!m) return html`<${NotFound} />`;
  const [, tenant, area, rawDataset, sub, rawDoc] = m;
  const dataset = rawDataset && decodeURIComponent(rawDataset);
  const doc = rawDoc && decodeURIComponent(rawDoc);
  if (area === 'retrieval') {
    if (dataset || sub) return html`<${NotFound} />`;
    return html`<${RetrievalTest} key=${tenant} tenant=${tenant} />`;
  }
  if (!dataset) {
    if (sub) return html`<${NotFound} />`;
    return html`<${WithTenants} title="Knowledge" render=${(tenants) => html`<${DatasetList} tenant=${tenant} tenants=${tenants} />`} />`;
  }
  if (sub === 'retrieval' && !doc) return html`<${RetrievalTest} key=${tenant + '/' + dataset} tenant=${tenant} dataset=${dataset} />`;
  if (sub === 'documents' && doc) return html`<${SegmentsPage} key=${doc} tenant=${tenant} dataset=${dataset} doc=${doc} />`;
  if (!sub) return html`<${DatasetPage} key=${dataset} tenant=${tenant} dataset=${dataset} />`;
  return html`<${NotFound} />`;
}
