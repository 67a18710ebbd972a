// One tenant: its members (add by username, change role, remove), its API keys (create — the secret is
// shown once with a copy button —, rotate, revoke) and its audit log. What a person may do follows their
// role; the server enforces it either way.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';
import { AuditLog } from './audit-log.js';

const ROLES = ['viewer', 'editor', 'admin', 'owner'];

function Members({ tenantId, canManage }) {
  const [members, setMembers] = useState(null);
  const [error, setError] = useState(null);
  const [username, setUsername] = useState('');
  const [role, setRole] = useState('viewer');
  const base = `/api/v1/tenants/${tenantId}/members`;
  const load = () => api.get(base).then((r) => setMembers(r.members), setError);
  useEffect(() => { load(); }, [tenantId]);

  async function change(name, newRole) {
    setError(null);
    try {
      const r = newRole ? await api.put(`${base}/${encodeURIComponent(name)}`, { role: newRole }) : await api.del(`${base}/${encodeURIComponent(name)}`);
      setMembers(r.members);
      setUsername('');
    } catch (e) {
      setError(e);
    }
  }

  return html`
    <${ErrorBanner} error=${error} />
    ${members === null && !error ? html`<${Loading} what="members" />` : null}
    ${members && html`
      <table data-testid="member-table">
        <thead><tr><th scope="col">Username</th><th scope="col">Name</th><th scope="col">Role</th>${canManage ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}</tr></thead>
        <tbody>${members.map((m) => html`
          <tr key=${m.username}>
            <td><code>${m.username}</code></td><td>${m.display_name}</td>
            <td>${canManage
              ? html`<select aria-label=${`Role of ${m.username}`} value=${m.role} onChange=${(e) => change(m.username, e.currentTarget.value)}>
                  ${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select>`
              : m.role}</td>
            ${canManage ? html`<td><button type="button" class="secondary" onClick=${() => change(m.username, null)}>Remove</button></td>` : null}
          </tr>`)}
        </tbody>
      </table>`}
    ${canManage && html`
      <form class="inline-form" onSubmit=${(e) => { e.preventDefault(); change(username.trim(), role); }} aria-label="Add a member">
        <label>Username <input required value=${username} onInput=${(e) => setUsername(e.currentTarget.value)} /></label>
        <label>Role <select value=${role} onChange=${(e) => setRole(e.currentTarget.value)}>${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
        <button type="submit">Add member</button>
      </form>`}`;
}

function Invitations({ tenantId }) {
  const [invitations, setInvitations] = useState(null);
  const [error, setError] = useState(null);
  const [issued, setIssued] = useState(null);
  const [invitee, setInvitee] = useState('');
  const [role, setRole] = useState('viewer');
  const base = `/api/v1/tenants/${tenantId}/invitations`;
  const load = () => api.get(base).then((r) => setInvitations(r.invitations), setError);
  useEffect(() => { load(); }, [tenantId]);
  const now = Date.now() / 1000;
  const open = (invitations || []).filter((i) => !i.accepted_at && !i.revoked_at && i.expires_at > now);

  async function invite(event) {
    event.preventDefault();
    setError(null);
    try {
      const r = await api.post(base, { invitee: invitee.trim(), role });
      setIssued(`${location.origin}${r.link}`);
      setInvitee('');
      load();
    } catch (e) {
      setError(e);
    }
  }
  async function revoke(id) {
    try {
      await api.del(`${base}/${id}`);
      load();
    } catch (e) {
      setError(e);
    }
  }

  return html`
    <h2>Invitations</h2>
    <${ErrorBanner} error=${error} />
    ${issued && html`
      <div class="banner banner-ok" role="status" data-testid="invite-link">
        <p>Send this link to the person invited. It works once, for their account only, and expires in 3 days.</p>
        <p><code class="secret">${issued}</code></p>
        <button type="button" onClick=${() => navigator.clipboard.writeText(issued).catch(() => {})}>Copy</button>
        <button type="button" class="secondary" onClick=${() => setIssued(null)}>Done</button>
      </div>`}
    <form class="inline-form" onSubmit=${invite} aria-label="Invite someone">
      <label>Username or e-mail <input required value=${invitee} onInput=${(e) => setInvitee(e.currentTarget.value)} /></label>
      <label>Role <select value=${role} onChange=${(e) => setRole(e.currentTarget.value)}>${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
      <button type="submit">Invite</button>
    </form>
    ${open.length > 0 && html`
      <table data-testid="invitation-table">
        <thead><tr><th scope="col">Invited</th><th scope="col">Role</th><th scope="col">Expires</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>${open.map((i) => html`
          <tr key=${i.id}><td>${i.invitee}</td><td>${i.role}</td>
            <td>${formatTime(new Date(i.expires_at * 1000).toISOString())}</td>
            <td><button type="button" class="secondary" onClick=${() => revoke(i.id)}>Revoke</button></td></tr>`)}
        </tbody>
      </table>`}`;
}

function Secret({ issued, onDone }) {
  const [copied, setCopied] = useState(false);
  async function copy() {
    try {
      await navigator.clipboard.writeText(issued.secret);
      setCopied(true);
    } catch (e) {
      setCopied(false);
    }
  }
  return html`
    <div class="banner banner-ok" role="status" data-testid="new-secret">
      <p><strong>Copy the key "${issued.key.name}" now.</strong> It is shown only this once; Enclave keeps just its hash.</p>
      <p><code class="secret">${issued.secret}</code></p>
      <button type="button" onClick=${copy}>${copied ? 'Copied' : 'Copy'}</button>
      <button type="button" class="secondary" onClick=${onDone}>Done</button>
    </div>`;
}

function ApiKeys({ tenantId }) {
  const [keys, setKeys] = useState(null);
  const [error, setError] = useState(null);
  const [issued, setIssued] = useState(null);
  const [form, setForm] = useState({ name: '', scopes: ['read'], days: '' });
  const base = `/api/v1/tenants/${tenantId}/api-keys`;
  const load = () => api.get(base).then((r) => setKeys(r.keys), setError);
  useEffect(() => { load(); }, [tenantId]);
  const now = Date.now() / 1000;
  const stateOf = (k) => (k.revoked_at ? 'revoked' : k.expires_at && k.expires_at <= now ? 'expired' : 'active');

  async function act(promise) {
    setError(null);
    try {
      const r = await promise;
      if (r && r.secret) setIssued(r);
      load();
    } catch (e) {
      setError(e);
    }
  }
  function toggleScope(scope, on) {
    const scopes = on ? [...new Set([...form.scopes, scope])] : form.scopes.filter((s) => s !== scope);
    setForm({ ...form, scopes });
  }
  function create(event) {
    event.preventDefault();
    const body = { name: form.name, scopes: form.scopes };
    if (form.days) body.expires_in_days = Number(form.days);
    act(api.post(base, body).then((r) => { setForm({ name: '', scopes: ['read'], days: '' }); return r; }));
  }

  return html`
    <${ErrorBanner} error=${error} />
    ${issued && html`<${Secret} issued=${issued} onDone=${() => setIssued(null)} />`}
    ${keys === null && !error ? html`<${Loading} what="API keys" />` : null}
    ${keys && keys.length === 0 ? html`<p class="muted">No API keys yet.</p>` : null}
    ${keys && keys.length > 0 && html`
      <table data-testid="key-table">
        <thead><tr><th scope="col">Name</th><th scope="col">Key</th><th scope="col">Scopes</th><th scope="col">State</th><th scope="col">Last used</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>${keys.map((k) => html`
          <tr key=${k.id}>
            <td>${k.name}</td><td><code>${k.prefix}…</code></td><td>${k.scopes.join(', ')}</td>
            <td><span class=${'pill ' + (stateOf(k) === 'active' ? 'pill-ok' : 'pill-corrupt')}>${stateOf(k)}</span>
              ${k.expires_at && !k.revoked_at ? html`<div class="small muted">until ${formatTime(new Date(k.expires_at * 1000).toISOString())}</div>` : null}</td>
            <td class="small">${k.last_used_at ? formatTime(new Date(k.last_used_at * 1000).toISOString()) : 'never'}</td>
            <td>${stateOf(k) === 'active' && html`
              <button type="button" class="secondary" onClick=${() => act(api.post(`${base}/${k.id}/rotate`, {}))}>Rotate</button>
              <button type="button" class="secondary" onClick=${() => act(api.del(`${base}/${k.id}`))}>Revoke</button>`}</td>
          </tr>`)}
        </tbody>
      </table>`}
    <form class="inline-form" onSubmit=${create} aria-label="Create an API key">
      <label>Name <input required maxlength="100" value=${form.name} onInput=${(e) => setForm({ ...form, name: e.currentTarget.value })} placeholder="nightly import" /></label>
      <fieldset><legend>Scopes</legend>
        ${['read', 'write', 'admin', 'inference', 'datasets:read', 'datasets:write'].map((s) => html`
          <label class="check"><input type="checkbox" checked=${form.scopes.includes(s)} onChange=${(e) => toggleScope(s, e.currentTarget.checked)} /> ${s}</label>`)}
      </fieldset>
      <label>Expires in days <input type="number" min="1" max="3650" value=${form.days} onInput=${(e) => setForm({ ...form, days: e.currentTarget.value })} placeholder="never" /></label>
      <button type="submit">Create key</button>
    </form>`;
}

export function Tenant({ id }) {
  const { info } = useSession();
  const [tenant, setTenant] = useState(null);
  const [error, setError] = useState(null);
  const [tab, setTab] = useState('members');
  useEffect(() => { setTenant(null); api.get(`/api/v1/tenants/${id}`).then(setTenant, setError); }, [id]);
  if (error) return html`<h1>Tenant</h1><${ErrorBanner} error=${error} />`;
  if (!tenant) return html`<h1>Tenant</h1><${Loading} what="the tenant" />`;
  const membership = info && info.memberships.find((m) => m.tenant_id === id);
  const rank = (r) => ROLES.indexOf(r);
  const canManage = (info && info.user.is_system_admin) || (membership && rank(membership.role) >= rank('admin'));
  const tabs = [['members', 'Members'], ...(canManage ? [['keys', 'API keys'], ['audit', 'Audit log']] : [])];
  return html`
    <div class="page-head">
      <h1>${tenant.name} <span class="muted small"><code>${tenant.id}</code></span></h1>
      ${membership && html`<p class="my-role">Your role: <span class="pill" data-testid="my-role">${membership.role}</span></p>`}
      ${canManage && html`<${Link} href=${`/tenants/${id}/usage`} class="button-link">Usage and quotas</${Link}>`}
    </div>
    <div role="tablist" class="tabs">
      ${tabs.map(([key, label]) => html`
        <button type="button" role="tab" aria-selected=${tab === key} class=${tab === key ? 'tab active' : 'tab'} onClick=${() => setTab(key)}>${label}</button>`)}
    </div>
    <section role="tabpanel">
      ${tab === 'members' && html`<${Members} tenantId=${id} canManage=${canManage} />`}
      ${tab === 'members' && canManage && html`<${Invitations} tenantId=${id} />`}
      ${tab === 'keys' && html`<${ApiKeys} tenantId=${id} />`}
      ${tab === 'audit' && html`<${AuditLog} base=${`/api/v1/tenants/${id}/audit`} />`}
    </section>`;
}
