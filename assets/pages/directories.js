// Directories (system administrators): LDAP / Active Directory servers that people sign in with. The
// list in the order sign-in tries them, a settings form (the service password is write-only), delete
// with confirmation, "test connection", "test login" (the exact steps, the user found and the roles
// they would get), "sync now" and the sync history.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';

const ROLES = ['viewer', 'editor', 'admin', 'owner'];
const KINDS = { openldap: 'OpenLDAP', active_directory: 'Active Directory' };
const SECURITY = {
  starttls: 'StartTLS (ldap:// upgraded to TLS)',
  ldaps: 'LDAPS (ldaps://, TLS from the first byte)',
  none: 'None (plain LDAP, passwords in clear: lab only)',
};

// What each kind expects; the server has the same defaults (src/directory/settings.rs).
const KIND_DEFAULTS = {
  openldap: {
    user_filter: '(uid={login})',
    attr_id: 'entryUUID', attr_username: 'uid', attr_email: 'mail', attr_display_name: 'displayName',
  },
  active_directory: {
    user_filter: '(&(objectClass=user)(|(sAMAccountName={login})(userPrincipalName={login})))',
    attr_id: 'objectGUID', attr_username: 'sAMAccountName', attr_email: 'mail', attr_display_name: 'displayName',
  },
};
const DEFAULT_FIELDS = Object.keys(KIND_DEFAULTS.openldap);

function matchesDefaults(form, kind) {
  return DEFAULT_FIELDS.every((f) => form[f] === KIND_DEFAULTS[kind][f]);
}

// The form's state: strings for inputs, from a stored directory or the defaults for a new one. A
// stored empty filter or attribute means the kind's default (the API accepts them left out), so the
// form shows that default.
function toForm(d) {
  const s = d ? d.settings : null;
  const defaults = KIND_DEFAULTS[s ? s.kind : 'openldap'];
  const stored = (value, field) => value || defaults[field];
  return {
    name: d ? d.name : '',
    priority: String(d ? d.priority : 100),
    enabled: d ? d.enabled : true,
    kind: s ? s.kind : 'openldap',
    urls: s ? s.urls.join('\n') : '',
    security: s ? s.security : 'starttls',
    ca_pem: (s && s.ca_pem) || '',
    skip_tls_verify: s ? s.skip_tls_verify : false,
    connect_timeout_secs: String(s ? s.connect_timeout_secs : 5),
    operation_timeout_secs: String(s ? s.operation_timeout_secs : 10),
    bind_dn: s ? s.bind_dn : '',
    password: '',
    remove_password: false,
    bind_password_file: (s && s.bind_password_file) || '',
    user_base: s ? s.user_base : '',
    user_filter: stored(s && s.user_filter, 'user_filter'),
    attr_id: stored(s && s.attributes.id, 'attr_id'),
    attr_username: stored(s && s.attributes.username, 'attr_username'),
    attr_email: stored(s && s.attributes.email, 'attr_email'),
    attr_display_name: stored(s && s.attributes.display_name, 'attr_display_name'),
    group_base: (s && s.group_base) || '',
    nested_group_depth: String(s ? s.nested_group_depth : 5),
    page_size: String(s ? s.page_size : 500),
    required_group: (s && s.required_group) || '',
    mappings: s ? s.mappings.map((m) => ({ ...m })) : [],
    sync_schedule: s ? s.sync_schedule : '0 0 * * * *',
    sync_max_deactivate_percent: String(s ? s.sync_max_deactivate_percent : 20),
  };
}

// The API's DirectoryInput. `bind_password` omitted keeps the stored one; "" removes it.
function toInput(form, editing) {
  const optional = (v) => (v.trim() ? v.trim() : null);
  const body = {
    name: form.name.trim(),
    priority: Number(form.priority),
    enabled: form.enabled,
    settings: {
      kind: form.kind,
      urls: form.urls.split('\n').map((u) => u.trim()).filter(Boolean),
      security: form.security,
      ca_pem: optional(form.ca_pem),
      skip_tls_verify: form.skip_tls_verify,
      connect_timeout_secs: Number(form.connect_timeout_secs),
      operation_timeout_secs: Number(form.operation_timeout_secs),
      bind_dn: form.bind_dn.trim(),
      bind_password_file: optional(form.bind_password_file),
      user_base: form.user_base.trim(),
      user_filter: form.user_filter.trim(),
      attributes: {
        id: form.attr_id.trim(), username: form.attr_username.trim(),
        email: form.attr_email.trim(), display_name: form.attr_display_name.trim(),
      },
      group_base: optional(form.group_base),
      nested_group_depth: Number(form.nested_group_depth),
      page_size: Number(form.page_size),
      follow_referrals: false,
      required_group: optional(form.required_group),
      mappings: form.mappings
        .map((m) => ({ group: m.group.trim(), tenant: m.tenant.trim(), role: m.role }))
        .filter((m) => m.group || m.tenant),
      sync_schedule: form.sync_schedule.trim(),
      sync_max_deactivate_percent: Number(form.sync_max_deactivate_percent),
    },
  };
  if (form.password) body.bind_password = form.password;
  else if (editing && form.remove_password) body.bind_password = '';
  return body;
}

function TlsWarning({ name }) {
  return html`
    <div class="banner banner-warn" role="alert" data-testid="tls-warning">
      <strong>TLS certificate verification is off${name ? html` for <q>${name}</q>` : ''}.</strong>
      Any server can pretend to be the directory and read the passwords people type. Give the CA certificate instead.
    </div>`;
}

function Mappings({ rows, tenants, onChange }) {
  const update = (i, field, value) => onChange(rows.map((r, j) => (j === i ? { ...r, [field]: value } : r)));
  return html`
    <fieldset class="mappings" aria-describedby="map-help">
      <legend>Group mappings</legend>
      <p id="map-help" class="small muted">Members of the group (nested membership counts) get the role in the tenant;
        per tenant the highest role wins. The group <code>*</code> matches every directory user (a fallback role).
        Memberships of directory accounts are set at every sign-in and sync.</p>
      ${rows.length === 0 && html`<p class="small muted">No mappings: directory users sign in without any tenant.</p>`}
      ${rows.map((r, i) => html`
        <div class="mapping-row" key=${i} data-testid="mapping-row">
          <label>Group DN or *<input aria-label=${`Group of mapping ${i + 1}`} value=${r.group} placeholder="cn=engineers,ou=groups,dc=example,dc=org"
            onInput=${(e) => update(i, 'group', e.currentTarget.value)} /></label>
          <label>Tenant<input aria-label=${`Tenant of mapping ${i + 1}`} value=${r.tenant} list="directory-tenants"
            onInput=${(e) => update(i, 'tenant', e.currentTarget.value)} /></label>
          <label>Role<select aria-label=${`Role of mapping ${i + 1}`} value=${r.role} onChange=${(e) => update(i, 'role', e.currentTarget.value)}>
            ${ROLES.map((role) => html`<option value=${role}>${role}</option>`)}</select></label>
          <button type="button" class="secondary" aria-label=${`Remove mapping ${i + 1}`} onClick=${() => onChange(rows.filter((_, j) => j !== i))}>Remove</button>
        </div>`)}
      <datalist id="directory-tenants">${tenants.map((t) => html`<option value=${t.id}>${t.name}</option>`)}</datalist>
      <button type="button" class="secondary" onClick=${() => onChange([...rows, { group: '', tenant: '', role: 'viewer' }])}>Add mapping</button>
    </fieldset>`;
}

function Field({ id, label, help, children }) {
  return html`
    <div class="field"><label for=${id}>${label}</label>${children}
      ${help && html`<p id=${id + '-help'} class="small muted">${help}</p>`}</div>`;
}

function SettingsForm({ directory, tenants, justSaved, onSaved, onDeleted }) {
  const editing = !!directory;
  const [form, setForm] = useState(() => toForm(directory));
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(justSaved);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const set = (field) => (e) => {
    const t = e.currentTarget;
    setSaved(false);
    setForm({ ...form, [field]: t.type === 'checkbox' ? t.checked : t.value });
  };
  // A kind change takes the new kind's attributes and filter when the old kind's were untouched;
  // otherwise the form offers them (below the kind) until they are taken or the kind changes again.
  const [offerDefaults, setOfferDefaults] = useState(false);
  function changeKind(e) {
    const kind = e.currentTarget.value;
    const next = { ...form, kind };
    const untouched = matchesDefaults(form, form.kind);
    if (untouched) Object.assign(next, KIND_DEFAULTS[kind]);
    setOfferDefaults(!untouched && !matchesDefaults(next, kind));
    setSaved(false);
    setForm(next);
  }
  function takeDefaults() {
    setOfferDefaults(false);
    setForm({ ...form, ...KIND_DEFAULTS[form.kind] });
  }
  const input = (field, extra = {}) => html`<input id=${'dir-' + field} value=${form[field]} onInput=${set(field)}
    aria-describedby=${extra.help ? 'dir-' + field + '-help' : undefined} ...${extra.attrs || {}} />`;

  async function submit(event) {
    event.preventDefault();
    setError(null);
    setSaved(false);
    setBusy(true);
    try {
      const body = toInput(form, editing);
      const result = editing ? await api.put(`/api/v1/directories/${directory.id}`, body) : await api.post('/api/v1/directories', body);
      // The password is write-only: the form forgets it once it is stored.
      setForm({ ...toForm(result) });
      setSaved(true);
      onSaved(result);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  async function remove() {
    setError(null);
    try {
      await api.del(`/api/v1/directories/${directory.id}`);
      onDeleted();
    } catch (e) {
      setError(e);
    }
  }

  return html`
    <form class="card form directory-form" onSubmit=${submit} aria-label="Directory settings">
      <h2>${editing ? `Settings of ${directory.name}` : 'New directory'}</h2>
      <div class="grid-2">
        <${Field} id="dir-name" label="Name">${input('name', { attrs: { required: true, maxlength: 100 } })}</${Field}>
        <${Field} id="dir-priority" label="Priority" help="Lower first: sign-in tries directories in this order.">
          ${input('priority', { help: true, attrs: { type: 'number', required: true } })}</${Field}>
      </div>
      <div class="field check"><input id="dir-enabled" type="checkbox" checked=${form.enabled} onChange=${set('enabled')} />
        <label for="dir-enabled">Enabled for sign-in</label></div>

      <h3>Server</h3>
      <${Field} id="dir-kind" label="Kind">
        <select id="dir-kind" value=${form.kind} onChange=${changeKind}>
          ${Object.entries(KINDS).map(([k, label]) => html`<option value=${k}>${label}</option>`)}</select></${Field}>
      ${offerDefaults && html`
        <div class="banner banner-warn" role="status" data-testid="kind-defaults">
          The attributes and user filter were changed by hand: they stay as they are.
          <button type="button" class="secondary" onClick=${takeDefaults}>Use the ${KINDS[form.kind]} defaults</button>
        </div>`}
      <${Field} id="dir-urls" label="Server URLs" help="One per line, tried in order (failover). ldaps:// for LDAPS, ldap:// for StartTLS or none.">
        <textarea id="dir-urls" rows="2" spellcheck="false" required value=${form.urls} onInput=${set('urls')} aria-describedby="dir-urls-help"
          placeholder="ldap://ldap1.example.org:389"></textarea></${Field}>
      <${Field} id="dir-security" label="Security">
        <select id="dir-security" value=${form.security} onChange=${set('security')}>
          ${Object.entries(SECURITY).map(([k, label]) => html`<option value=${k}>${label}</option>`)}</select></${Field}>
      ${form.security === 'none' && html`<div class="banner banner-warn" role="status" data-testid="plain-warning">Plain LDAP: passwords cross the network unencrypted. Use it only in a lab.</div>`}
      <${Field} id="dir-ca_pem" label="CA certificates (PEM)" help="Trusted in addition to the system's roots. Optional.">
        <textarea id="dir-ca_pem" rows="3" wrap="off" spellcheck="false" value=${form.ca_pem} onInput=${set('ca_pem')} aria-describedby="dir-ca_pem-help"
          placeholder="-----BEGIN CERTIFICATE-----"></textarea></${Field}>
      <div class="field check"><input id="dir-skip" type="checkbox" checked=${form.skip_tls_verify} onChange=${set('skip_tls_verify')} />
        <label for="dir-skip">Skip TLS certificate verification (insecure)</label></div>
      ${form.skip_tls_verify && html`<${TlsWarning} />`}
      <div class="grid-2">
        <${Field} id="dir-connect_timeout_secs" label="Connect timeout (s)">${input('connect_timeout_secs', { attrs: { type: 'number', min: 1, max: 120, required: true } })}</${Field}>
        <${Field} id="dir-operation_timeout_secs" label="Operation timeout (s)">${input('operation_timeout_secs', { attrs: { type: 'number', min: 1, max: 600, required: true } })}</${Field}>
      </div>

      <h3>Service account</h3>
      <${Field} id="dir-bind_dn" label="Service account DN" help="Searches for users and groups. Empty: anonymous search.">
        ${input('bind_dn', { help: true, attrs: { spellcheck: false, autocomplete: 'off' } })}</${Field}>
      <${Field} id="dir-password" label="Service account password"
        help=${editing && directory.bind_password_set ? 'A password is stored (never shown). Leave empty to keep it.' : 'Stored sealed with the instance key; never shown again.'}>
        <input id="dir-password" type="password" autocomplete="new-password" value=${form.password} onInput=${set('password')} aria-describedby="dir-password-help"
          placeholder=${editing && directory.bind_password_set ? '(stored — unchanged)' : ''} /></${Field}>
      ${editing && directory.bind_password_set && !form.password && html`
        <div class="field check"><input id="dir-remove-pw" type="checkbox" checked=${form.remove_password} onChange=${set('remove_password')} />
          <label for="dir-remove-pw">Remove the stored password</label></div>`}
      <${Field} id="dir-bind_password_file" label="Password file (instead)" help="A file on the server holding the password; it wins over a stored one.">
        ${input('bind_password_file', { help: true, attrs: { spellcheck: false, placeholder: '/etc/enclave/ldap-password' } })}</${Field}>

      <h3>Users and groups</h3>
      <${Field} id="dir-user_base" label="User base DN">${input('user_base', { attrs: { required: true, spellcheck: false, placeholder: 'ou=people,dc=example,dc=org' } })}</${Field}>
      <${Field} id="dir-user_filter" label="User filter" help="{login} is replaced by the name typed at sign-in (escaped).">
        ${input('user_filter', { help: true, attrs: { required: true, spellcheck: false } })}</${Field}>
      <div class="grid-2">
        <${Field} id="dir-attr_id" label="ID attribute" help="Stable id that keys the account (never the e-mail).">${input('attr_id', { help: true, attrs: { required: true } })}</${Field}>
        <${Field} id="dir-attr_username" label="Username attribute">${input('attr_username', { attrs: { required: true } })}</${Field}>
        <${Field} id="dir-attr_email" label="E-mail attribute">${input('attr_email')}</${Field}>
        <${Field} id="dir-attr_display_name" label="Display name attribute">${input('attr_display_name')}</${Field}>
      </div>
      <${Field} id="dir-group_base" label="Group base DN" help="Empty: the user base.">${input('group_base', { help: true, attrs: { spellcheck: false } })}</${Field}>
      <div class="grid-2">
        <${Field} id="dir-nested_group_depth" label="Nested group depth">${input('nested_group_depth', { attrs: { type: 'number', min: 0, max: 20, required: true } })}</${Field}>
        <${Field} id="dir-page_size" label="Page size">${input('page_size', { attrs: { type: 'number', min: 1, max: 5000, required: true } })}</${Field}>
      </div>
      <${Field} id="dir-required_group" label="Required group" help="Only members (nested membership counts) may sign in. Empty: every user the filter finds.">
        ${input('required_group', { help: true, attrs: { spellcheck: false } })}</${Field}>
      <${Mappings} rows=${form.mappings} tenants=${tenants} onChange=${(mappings) => { setSaved(false); setForm({ ...form, mappings }); }} />

      <h3>Synchronisation</h3>
      <div class="grid-2">
        <${Field} id="dir-sync_schedule" label="Sync schedule (cron)" help="Six fields: sec min hour day month weekday. Empty: no scheduled sync.">
          ${input('sync_schedule', { help: true, attrs: { spellcheck: false } })}</${Field}>
        <${Field} id="dir-sync_max_deactivate_percent" label="Max. deactivated per sync (%)" help="A sync that would deactivate more stops and changes nothing.">
          ${input('sync_max_deactivate_percent', { help: true, attrs: { type: 'number', min: 0, max: 100, required: true } })}</${Field}>
      </div>

      <${ErrorBanner} error=${error} />
      ${saved && html`<div class="banner banner-ok" role="status" data-testid="directory-saved">Saved the directory.</div>`}
      <div class="actions">
        <button type="submit" disabled=${busy}>${editing ? 'Save directory' : 'Add directory'}</button>
        ${editing && !confirming && html`<button type="button" class="secondary danger-outline" onClick=${() => setConfirming(true)}>Delete directory</button>`}
      </div>
      ${confirming && html`
        <div class="confirm" role="group" aria-labelledby="dir-delete-q">
          <p id="dir-delete-q"><strong>Delete the directory ${directory.name}?</strong> Its accounts are deactivated: their sessions end and their API keys are revoked.</p>
          <button type="button" class="danger" onClick=${remove}>Yes, delete the directory</button>
          <button type="button" class="secondary" onClick=${() => setConfirming(false)}>Cancel</button>
        </div>`}
    </form>`;
}

function TestResult({ result }) {
  if (!result) return null;
  return html`
    <div class=${'banner ' + (result.ok ? 'banner-ok' : 'banner-error')} role="status" data-testid="test-result" data-ok=${String(result.ok)}>
      <strong>${result.ok ? 'Success' : `Failed: ${result.error}`}</strong>
      ${result.tls_verification_disabled && html`<p><strong>Warning:</strong> TLS certificate verification is off for this directory.</p>`}
      <ol class="steps small" data-testid="test-steps">${result.steps.map((s) => html`<li><code>${s}</code></li>`)}</ol>
      ${result.user && html`
        <dl class="facts" data-testid="test-user">
          <dt>DN</dt><dd><code>${result.user.dn}</code></dd>
          <dt>ID</dt><dd><code>${result.user.external_id}</code></dd>
          <dt>Username</dt><dd>${result.user.username}</dd>
          <dt>E-mail</dt><dd>${result.user.email || '—'}</dd>
          <dt>Display name</dt><dd>${result.user.display_name || '—'}</dd>
          <dt>Groups</dt><dd>${result.user.groups.length ? html`<ul class="plain">${result.user.groups.map((g) => html`<li><code>${g}</code></li>`)}</ul>` : 'none'}</dd>
        </dl>
        ${result.roles.length
          ? html`<table class="dense" data-testid="test-roles">
              <thead><tr><th scope="col">Tenant</th><th scope="col">Role they would get</th></tr></thead>
              <tbody>${result.roles.map((r) => html`<tr><td>${r.tenant}</td><td>${r.role}</td></tr>`)}</tbody></table>`
          : html`<p data-testid="test-roles">No mapping matches: no tenant role.</p>`}`}
    </div>`;
}

function Tools({ directory }) {
  const [error, setError] = useState(null);
  const [connection, setConnection] = useState(null);
  const [login, setLogin] = useState(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(null);
  const [runs, setRuns] = useState(null);
  const [lastRun, setLastRun] = useState(null);
  const base = `/api/v1/directories/${directory.id}`;
  const loadRuns = () => api.get(`${base}/sync`).then((r) => setRuns(r.runs), setError);
  useEffect(() => { loadRuns(); }, [directory.id]);

  async function act(what, promise, done) {
    setError(null);
    setBusy(what);
    try {
      done(await promise);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  }
  function testLogin(event) {
    event.preventDefault();
    const body = { username, password };
    // The password is not kept in the page once sent.
    setPassword('');
    act('login', api.post(`${base}/test-login`, body), setLogin);
  }

  return html`
    <section class="card" aria-labelledby="dir-tools-h">
      <h2 id="dir-tools-h">Test and synchronise</h2>
      <${ErrorBanner} error=${error} />
      <h3>Connection</h3>
      <p class="small muted">Connects and binds as the service account, with the saved settings.</p>
      <button type="button" onClick=${() => act('connection', api.post(`${base}/test-connection`, {}), setConnection)} disabled=${busy !== null}>
        ${busy === 'connection' ? 'Testing…' : 'Test connection'}</button>
      <div data-testid="connection-result"><${TestResult} result=${connection} /></div>

      <h3>Login</h3>
      <form class="inline-form" onSubmit=${testLogin} aria-label="Test login">
        <label>Username <input required autocomplete="off" value=${username} onInput=${(e) => setUsername(e.currentTarget.value)} /></label>
        <label>Password <input type="password" required autocomplete="off" value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} /></label>
        <button type="submit" disabled=${busy !== null}>${busy === 'login' ? 'Testing…' : 'Test login'}</button>
      </form>
      <p class="small muted">Runs the whole sign-in without signing in or changing anything.</p>
      <div data-testid="login-result"><${TestResult} result=${login} /></div>

      <h3>Synchronisation</h3>
      <p class="small muted" data-testid="next-sync">${directory.next_sync_at
        ? html`Next scheduled run: ${formatTime(directory.next_sync_at)} (schedule <code>${directory.settings.sync_schedule}</code>, UTC).`
        : 'No scheduled run (the schedule is empty or the directory is disabled).'}</p>
      <button type="button" onClick=${() => act('sync', api.post(`${base}/sync`, {}), (run) => { setLastRun(run); loadRuns(); })} disabled=${busy !== null}>
        ${busy === 'sync' ? 'Synchronising…' : 'Sync now'}</button>
      ${lastRun && html`<div class=${'banner ' + (lastRun.status === 'ok' ? 'banner-ok' : 'banner-error')} role="status" data-testid="sync-result">
        Sync ${lastRun.status}: ${lastRun.message}</div>`}
      ${runs === null && !error ? html`<${Loading} what="sync history" />` : null}
      ${runs && runs.length === 0 && html`<p class="muted" data-testid="sync-empty">No synchronisation yet.</p>`}
      ${runs && runs.length > 0 && html`
        <table class="dense" data-testid="sync-history">
          <thead><tr><th scope="col">Started</th><th scope="col">Trigger</th><th scope="col">Outcome</th>
            <th scope="col" class="num">Checked</th><th scope="col" class="num">Updated</th><th scope="col" class="num">Deactivated</th><th scope="col">Message</th></tr></thead>
          <tbody>${runs.map((r) => html`
            <tr key=${r.id} data-status=${r.status}>
              <td>${formatTime(r.started_at)}</td><td>${r.trigger}</td>
              <td><span class=${'pill ' + (r.status === 'ok' ? 'pill-ok' : r.status === 'running' ? '' : 'pill-corrupt')}>${r.status}</span></td>
              <td class="num">${r.checked}</td><td class="num">${r.updated}</td><td class="num">${r.deactivated}</td>
              <td class="small">${r.message}</td>
            </tr>`)}
          </tbody>
        </table>`}
    </section>`;
}

export function Directories() {
  const [directories, setDirectories] = useState(null);
  const [tenants, setTenants] = useState([]);
  const [error, setError] = useState(null);
  // The directory being edited: an id, 'new', or null.
  const [selected, setSelected] = useState(null);
  // Set when a new directory was just added, so its form (mounted anew) says so.
  const [justSaved, setJustSaved] = useState(false);
  const select = (id) => { setJustSaved(false); setSelected(id); };
  function saved(d) {
    const others = (directories || []).filter((x) => x.id !== d.id);
    setDirectories([...others, d].sort((a, b) => a.priority - b.priority || a.name.localeCompare(b.name)));
    setJustSaved(true);
    setSelected(d.id);
    load();
  }
  const load = () => api.get('/api/v1/directories').then((r) => { setDirectories(r.directories); setError(null); }, setError);
  useEffect(() => {
    load();
    api.get('/api/v1/tenants').then((r) => setTenants(r.tenants), () => {});
  }, []);
  const current = directories && selected && selected !== 'new' ? directories.find((d) => d.id === selected) : null;
  const insecure = (directories || []).filter((d) => d.settings.skip_tls_verify);

  return html`
    <div class="page-head">
      <h1>Directories</h1>
      <button type="button" onClick=${() => select('new')}>Add a directory</button>
    </div>
    <p class="muted">People sign in with their LDAP or Active Directory account; local accounts are tried first.
      Directory groups decide their tenants and roles.</p>
    <${ErrorBanner} error=${error} />
    ${insecure.map((d) => html`<${TlsWarning} key=${d.id} name=${d.name} />`)}
    ${directories === null && !error ? html`<${Loading} what="directories" />` : null}
    ${directories && directories.length === 0 && html`<p class="muted" data-testid="no-directories">No directory yet: only local accounts can sign in.</p>`}
    ${directories && directories.length > 0 && html`
      <table data-testid="directory-table">
        <thead><tr><th scope="col">Priority</th><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Servers</th>
          <th scope="col">Security</th><th scope="col">State</th></tr></thead>
        <tbody>${directories.map((d) => html`
          <tr key=${d.id} aria-current=${d.id === selected ? 'true' : undefined}>
            <td>${d.priority}</td>
            <td><button type="button" class="linklike" onClick=${() => select(d.id)}>${d.name}</button></td>
            <td>${KINDS[d.settings.kind] || d.settings.kind}</td>
            <td class="small">${d.settings.urls.map((u) => html`<div><code>${u}</code></div>`)}</td>
            <td>${d.settings.security}${d.settings.skip_tls_verify ? html` <span class="pill pill-corrupt">no certificate check</span>` : null}</td>
            <td><span class=${'pill ' + (d.enabled ? 'pill-ok' : 'pill-missing')}>${d.enabled ? 'enabled' : 'disabled'}</span></td>
          </tr>`)}
        </tbody>
      </table>`}
    ${(selected === 'new' || current) && html`
      <div class="directory-detail">
        <${SettingsForm} key=${selected} directory=${current} tenants=${tenants} justSaved=${justSaved}
          onSaved=${saved} onDeleted=${() => { select(null); load(); }} />
        ${current && html`<${Tools} key=${current.id} directory=${current} />`}
      </div>`}`;
}
