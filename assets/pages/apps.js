// Chat apps: a tenant's apps (list, create, import) and the routes below them — the editor with its
// debug preview (apps-editor.js), the chat page for employees (apps-chat.js), the logs and the
// annotations (apps-logs.js), the end users (apps-end-users.js). Paths:
//   /apps                                   the list, for a tenant chosen on the page
//   /tenants/{t}/apps                       the list of tenant t
//   /tenants/{t}/apps/logs                  the logs of every app (admins)
//   /tenants/{t}/apps/{app}                 the editor for editors, else the chat
//   /tenants/{t}/apps/{app}/edit            settings, prompt and versions, API access, debug and preview
//   /tenants/{t}/apps/{app}/chat            the chat page
//   /tenants/{t}/apps/{app}/logs            the logs of that app (admins)
//   /tenants/{t}/apps/{app}/annotations     the app's annotations (editors)
//   /tenants/{t}/apps/{app}/end-users       the app's end users: export, erasure (admins; ?user= filters)
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link, navigate, usePath } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';
import { NotFound } from './not-found.js';
import { roleIn } from './knowledge-common.js';
import {
  appAnnotationsPath, appChatPath, appEditPath, appsApi, appsPath, canEditApps, canSeeLogs, endUsersPath, logsPath, modelLabel,
} from './apps-common.js';
import { AppEditor } from './apps-editor.js';
import { ChatPage } from './apps-chat.js';
import { AnnotationsPage, LogsPage } from './apps-logs.js';
import { EndUsersPage } from './apps-end-users.js';

const LAST_TENANT = 'enclave.apps.tenant';

function CreateApp({ tenant, onCreated }) {
  const [form, setForm] = useState({ name: '', description: '' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const created = await api.post(appsApi(tenant), { name: form.name.trim(), description: form.description.trim() });
      setForm({ name: '', description: '' });
      onCreated(created);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  const set = (key) => (e) => setForm({ ...form, [key]: e.currentTarget.value });
  return html`
    <form class="card form app-create" onSubmit=${submit} aria-labelledby="app-create-h" data-testid="app-create">
      <h2 id="app-create-h">New app</h2>
      <div class="field"><label for="app-new-name">Name</label>
        <input id="app-new-name" required maxlength="100" value=${form.name} onInput=${set('name')} placeholder="HR assistant" /></div>
      <div class="field"><label for="app-new-description">Description <span class="muted">(optional)</span></label>
        <textarea id="app-new-description" rows="2" maxlength="2000" value=${form.description} onInput=${set('description')}></textarea></div>
      <${ErrorBanner} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create app'}</button>
    </form>`;
}

function ImportApp({ tenant, onImported }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  async function picked(event) {
    const input = event.currentTarget;
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    setError(null);
    setResult(null);
    let body;
    try {
      body = JSON.parse(await file.text());
    } catch (e) {
      setError({ message: `${file.name} is not an exported app (not JSON): ${e.message}` });
      return;
    }
    setBusy(true);
    try {
      const answer = await api.post(`${appsApi(tenant)}/import`, body);
      setResult(answer);
      onImported(answer.app);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <section class="card form" aria-labelledby="app-import-h" data-testid="app-import">
      <h2 id="app-import-h">Import an app</h2>
      <p class="small muted">A file exported from an app's editor. The copy starts unpublished; its knowledge bases are linked by id or name.</p>
      <div class="field"><label for="app-import-file">Exported app (JSON)</label>
        <input id="app-import-file" type="file" accept=".json,application/json" onChange=${picked} disabled=${busy} /></div>
      ${busy && html`<p class="small muted" role="status">Importing…</p>`}
      <${ErrorBanner} error=${error} />
      ${result && html`
        <div class="banner banner-ok" role="status" data-testid="app-imported">
          Imported <${Link} href=${appEditPath(tenant, result.app.id)}>${result.app.name}</${Link}>.
          ${result.unlinked_datasets && result.unlinked_datasets.length > 0 && html`
            <div class="small">Not found here, so left out: ${result.unlinked_datasets.map((d) => d.name).join(', ')}.</div>`}
        </div>`}
    </section>`;
}

function AppTable({ tenant, apps, role }) {
  const editable = canEditApps(role);
  const admin = canSeeLogs(role);
  return html`
    <div class="table-scroll">
      <table data-testid="app-table">
        <caption class="visually-hidden">Apps</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col">Model</th><th scope="col">State</th>
          <th scope="col">Updated</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>${apps.map((a) => html`
          <tr key=${a.id} data-app=${a.name}>
            <td><strong>${editable || a.published ? html`<${Link} href=${editable ? appEditPath(tenant, a.id) : appChatPath(tenant, a.id)}>${a.name}</${Link}>` : a.name}</strong></td>
            <td class="small">${a.description || html`<span class="muted">—</span>`}</td>
            <td class="small"><code>${modelLabel(a.config)}</code></td>
            <td>${a.published
              ? html`<span class="pill pill-tone-ok" data-testid="app-published">Published</span>`
              : html`<span class="pill pill-tone-neutral" data-testid="app-draft">Draft</span>`}</td>
            <td class="small">${formatTime(a.updated_at)}</td>
            <td><div class="actions">
              ${a.published && html`<${Link} href=${appChatPath(tenant, a.id)} class="button-link">Chat<span class="visually-hidden"> with ${a.name}</span></${Link}>`}
              ${editable && html`<${Link} href=${appEditPath(tenant, a.id)} class="button-link">Edit<span class="visually-hidden"> ${a.name}</span></${Link}>`}
              ${editable && html`<${Link} href=${appAnnotationsPath(tenant, a.id)} class="button-link">Annotations<span class="visually-hidden"> of ${a.name}</span></${Link}>`}
              ${admin && html`<${Link} href=${logsPath(tenant, a.id)} class="button-link">Logs<span class="visually-hidden"> of ${a.name}</span></${Link}>`}
              ${admin && html`<${Link} href=${endUsersPath(tenant, a.id)} class="button-link">End users<span class="visually-hidden"> of ${a.name}</span></${Link}>`}
            </div></td>
          </tr>`)}
        </tbody>
      </table>
    </div>`;
}

function AppList({ tenant, tenants }) {
  const { info } = useSession();
  const [apps, setApps] = useState(null);
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(null);
  const role = roleIn(info, tenant);
  const editable = canEditApps(role);
  const load = () => api.get(appsApi(tenant)).then((r) => { setApps(r.apps); setError(null); }, setError);
  useEffect(() => {
    setApps(null);
    setCreated(null);
    setError(null);
    localStorage.setItem(LAST_TENANT, tenant);
    load();
  }, [tenant]);
  return html`
    <div class="page-head">
      <h1>Apps</h1>
      ${canSeeLogs(role) && html`<${Link} href=${logsPath(tenant)} class="button-link">Logs</${Link}>`}
    </div>
    <p class="muted">Chat apps answer from the tenant's knowledge bases with a local model, citing their sources. Employees chat with published apps here; other systems call them through the API.</p>
    <div class="inline-form">
      <label>Tenant <select value=${tenant} aria-label="Tenant" onChange=${(e) => navigate(appsPath(e.currentTarget.value))}>
        ${tenants.map((t) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>
      ${role && html`<span class="small muted">Your role: <span class="pill">${role}</span></span>`}
    </div>
    <div class=${editable ? 'split' : ''}>
      <section aria-labelledby="app-list-h">
        <h2 id="app-list-h" class="visually-hidden">Apps</h2>
        <${ErrorBanner} error=${error} />
        ${created && html`<div class="banner banner-ok" role="status" data-testid="app-created">Created <${Link} href=${appEditPath(tenant, created.id)}>${created.name}</${Link}>.</div>`}
        ${apps === null && !error ? html`<${Loading} what="apps" />` : null}
        ${apps && apps.length === 0 && html`<p class="muted" data-testid="app-empty">${editable ? 'No apps yet. Create the first one.' : 'No published apps yet.'}</p>`}
        ${apps && apps.length > 0 && html`<${AppTable} tenant=${tenant} apps=${apps} role=${role} />`}
      </section>
      ${editable && html`
        <div class="app-side">
          <${CreateApp} tenant=${tenant} onCreated=${(a) => navigate(appEditPath(tenant, a.id))} />
          <${ImportApp} tenant=${tenant} onImported=${() => { setCreated(null); load(); }} />
        </div>`}
    </div>`;
}

/** Loads the tenants the caller may choose from, then renders `render(tenants)`. */
function WithTenants({ render }) {
  const [tenants, setTenants] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { api.get('/api/v1/tenants').then((r) => setTenants(r.tenants), setError); }, []);
  if (error) return html`<h1>Apps</h1><${ErrorBanner} error=${error} />`;
  if (!tenants) return html`<h1>Apps</h1><${Loading} what="tenants" />`;
  if (tenants.length === 0) {
    return html`<h1>Apps</h1><p class="muted" data-testid="no-tenant">You are not a member of a tenant yet: apps belong to a tenant.</p>`;
  }
  return render(tenants);
}

/** The view for /apps and everything under /tenants/{t}/apps. */
export function Apps() {
  const path = usePath();
  const { info } = useSession();
  if (path === '/apps') {
    return html`<${WithTenants} render=${(tenants) => {
      const last = localStorage.getItem(LAST_TENANT);
      const tenant = tenants.some((t) => t.id === last) ? last : tenants[0].id;
      return html`<${AppList} tenant=${tenant} tenants=${tenants} />`;
    }} />`;
  }
  const m = path.match(/^\/tenants\/([a-z0-9-]+)\/apps(?:\/([^/]+))?(?:\/(edit|chat|logs|annotations|end-users))?$/);
  if (!m) return html`<${NotFound} />`;
  const [, tenant, rawApp, sub] = m;
  const app = rawApp && decodeURIComponent(rawApp);
  if (!app) return html`<${WithTenants} render=${(tenants) => html`<${AppList} tenant=${tenant} tenants=${tenants} />`} />`;
  if (app === 'logs' && !sub) return html`<${LogsPage} key=${tenant} tenant=${tenant} />`;
  const role = roleIn(info, tenant);
  const view = sub || (canEditApps(role) ? 'edit' : 'chat');
  if (view === 'edit') return html`<${AppEditor} key=${app} tenant=${tenant} app=${app} />`;
  if (view === 'chat') return html`<${ChatPage} key=${app} tenant=${tenant} app=${app} />`;
  if (view === 'logs') return html`<${LogsPage} key=${tenant + '/' + app} tenant=${tenant} app=${app} />`;
  if (view === 'annotations') return html`<${AnnotationsPage} key=${app} tenant=${tenant} app=${app} />`;
  if (view === 'end-users') return html`<${EndUsersPage} key=${app} tenant=${tenant} app=${app} />`;
  return html`<${NotFound} />`;
}
