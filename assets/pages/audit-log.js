// An audit log viewer: the system log (system administrators) or one tenant's log (its admins), with
// filters and CSV / JSON Lines downloads of what the filters select.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';

export function AuditLog({ base }) {
  const [filters, setFilters] = useState({ action: '', actor: '', q: '' });
  const [entries, setEntries] = useState(null);
  const [error, setError] = useState(null);

  const query = (extra = {}) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) params.set(k, v);
    return params.toString();
  };
  const load = () => api.get(`${base}?${query({ limit: 200 })}`).then((r) => { setEntries(r.entries); setError(null); }, setError);
  useEffect(() => { load(); }, [base]);
  const set = (field) => (e) => setFilters({ ...filters, [field]: e.currentTarget.value });

  return html`
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); load(); }} aria-label="Filter the audit log">
      <label>Action <input value=${filters.action} onInput=${set('action')} placeholder="auth.login" /></label>
      <label>Actor <input value=${filters.actor} onInput=${set('actor')} placeholder="username or key:id" /></label>
      <label>Text <input value=${filters.q} onInput=${set('q')} /></label>
      <button type="submit">Filter</button>
      <a class="button-link" href=${`${base}?${query({ format: 'csv', limit: 1000 })}`} download>CSV</a>
      <a class="button-link" href=${`${base}?${query({ format: 'jsonl', limit: 1000 })}`} download>JSON Lines</a>
    </form>
    <${ErrorBanner} error=${error} />
    ${entries === null && !error ? html`<${Loading} what="the audit log" />` : null}
    ${entries && entries.length === 0 ? html`<p class="muted">No entries match.</p>` : null}
    ${entries && entries.length > 0 && html`
      <table data-testid="audit-table" class="dense">
        <thead><tr><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Result</th><th scope="col">From</th></tr></thead>
        <tbody>${entries.map((e) => html`
          <tr key=${e.hash}>
            <td>${formatTime(e.at)}</td>
            <td><code>${e.actor}</code></td>
            <td>${e.action}</td>
            <td>${e.target}${e.tenant_id && e.tenant_id !== e.target ? html` <span class="muted">(${e.tenant_id})</span>` : null}</td>
            <td><span class=${'pill ' + (e.result === 'success' ? 'pill-ok' : 'pill-corrupt')}>${e.result}</span></td>
            <td class="small">${e.ip}</td>
          </tr>`)}
        </tbody>
      </table>`}`;
}

export function SystemAudit() {
  return html`<h1>Audit log</h1><${AuditLog} base="/api/v1/audit" />`;
}
