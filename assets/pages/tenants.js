// Tenants: the list, and a form to create one (the id is derived from the name unless given).
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';
import { useSession } from '../lib/session.js';
import { Link } from '../lib/router.js';

function CreateTenant({ onCreated }) {
  const [name, setName] = useState('');
  const [id, setId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(null);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setCreated(null);
    try {
      const body = { name: name.trim() };
      if (id.trim()) body.id = id.trim();
      const tenant = await api.post('/api/v1/tenants', body);
      setCreated(tenant);
      setName('');
      setId('');
      onCreated();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <form class="card form" onSubmit=${submit} aria-labelledby="create-h">
      <h2 id="create-h">Create a tenant</h2>
      <p class="small muted">Each tenant has its own database; its data never mixes with another tenant's.</p>
      <div class="field">
        <label for="tenant-name">Name</label>
        <input id="tenant-name" name="name" required maxlength="200" value=${name}
          onInput=${(e) => setName(e.currentTarget.value)} placeholder="Sales Team" />
      </div>
      <div class="field">
        <label for="tenant-id">Id <span class="muted">(optional)</span></label>
        <input id="tenant-id" name="id" maxlength="63" pattern="[a-z0-9][a-z0-9-]*[a-z0-9]" value=${id}
          onInput=${(e) => setId(e.currentTarget.value)} placeholder="derived from the name" aria-describedby="id-help" />
        <p id="id-help" class="small muted">2–63 characters: lowercase letters, digits and dashes.</p>
      </div>
      <${ErrorBanner} error=${error} />
      ${created && html`<div class="banner banner-ok" role="status">Created tenant <code>${created.id}</code>.</div>`}
      <button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create tenant'}</button>
    </form>`;
}

export function Tenants() {
  const { info } = useSession();
  const isAdmin = info && info.user.is_system_admin;
  const [tenants, setTenants] = useState(null);
  const [error, setError] = useState(null);
  const load = () => api.get('/api/v1/tenants').then((r) => { setTenants(r.tenants); setError(null); }, setError);
  useEffect(() => { load(); }, []);

  return html`
    <h1>Tenants</h1>
    <div class="split">
      <section aria-labelledby="list-h">
        <h2 id="list-h" class="visually-hidden">All tenants</h2>
        <${ErrorBanner} error=${error} />
        ${tenants === null && !error ? html`<${Loading} what="tenants" />` : null}
        ${tenants && tenants.length === 0
          ? html`<p class="muted">${isAdmin ? 'No tenants yet. Create the first one.' : 'You are not a member of any tenant yet.'}</p>`
          : null}
        ${tenants && tenants.length > 0 && html`
          <table data-testid="tenant-table">
            <thead><tr><th scope="col">Id</th><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Created</th></tr></thead>
            <tbody>
              ${tenants.map((t) => html`
                <tr key=${t.id}>
                  <td><${Link} href=${`/tenants/${t.id}`}><code>${t.id}</code></${Link}></td>
                  <td>${t.name}</td>
                  <td><span class=${'pill pill-' + t.status}>${t.status}</span></td>
                  <td>${formatTime(t.created_at)}</td>
                </tr>`)}
            </tbody>
          </table>`}
      </section>
      ${isAdmin && html`<${CreateTenant} onCreated=${load} />`}
    </div>`;
}
