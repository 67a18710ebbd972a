// The licence (system administrators): its state and dates, limits against current usage, features,
// seat counting, the activation request for the vendor (text, file and QR code), installing a licence
// file, the signed usage report, and removing the licence.
import { html, useEffect, useRef, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { describeState, setLicenseStatus } from '../lib/license.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatBytes, formatNumber, formatTime, saveTextFile } from '../lib/ui.js';

// Every feature a licence can grant, in the order shown.
const FEATURES = [
  ['multi_tenant', 'More than one tenant'],
  ['audit_export', 'Audit log export'],
  ['scheduled_backups', 'Scheduled backups'],
  ['ldap', 'LDAP directory sign-in'],
  ['sso', 'Single sign-on (SSO)'],
  ['branding', 'Custom branding'],
];

// Limits counted per calendar month.
const QUOTAS = [
  ['api_requests', 'API requests'],
  ['chat_tokens', 'Chat tokens'],
  ['embedding_tokens', 'Embedding tokens'],
  ['messages', 'Messages'],
  ['workflow_runs', 'Workflow runs'],
];

// A licence file is at most 64 KiB (the server refuses more); anything much larger is not one.
const MAX_LICENSE_BYTES = 64 * 1024;

function StateBadge({ state }) {
  const { text, tone } = describeState(state);
  return html`<span class=${'pill pill-tone-' + tone} data-testid="license-state">${text}</span>`;
}

/** One limit against what is in use: a bar that turns amber from 80 % and red when full. */
function Meter({ id, label, used, limit, format = formatNumber }) {
  const labelId = `limit-${id}-label`;
  if (limit === null || limit === undefined) {
    return html`
      <div class="meter" data-testid=${'limit-' + id} data-level="unlimited">
        <div class="meter-head"><span id=${labelId}>${label}</span>
          <span class="meter-value">${format(used)} <span class="muted">· unlimited</span></span></div>
      </div>`;
  }
  const percent = limit > 0 ? (used * 100) / limit : 100;
  const level = percent >= 100 ? 'full' : percent >= 80 ? 'high' : 'ok';
  const shown = used > 0 && percent < 1 ? '< 1' : String(Math.floor(percent));
  return html`
    <div class=${'meter meter-' + level} data-testid=${'limit-' + id} data-level=${level}>
      <div class="meter-head"><span id=${labelId}>${label}</span>
        <span class="meter-value">${format(used)} of ${format(limit)} <span class="muted">(${shown} %)</span></span></div>
      <progress max=${limit > 0 ? limit : 1} value=${limit > 0 ? Math.min(used, limit) : 1} aria-labelledby=${labelId}
        aria-valuetext=${`${format(used)} of ${format(limit)} (${shown} %)`}></progress>
      ${level === 'full' && html`<p class="small bad">The limit is reached: new ones are refused.</p>`}
    </div>`;
}

function StateCard({ info }) {
  const l = info.license;
  const bound = l && l.installation_id;
  return html`
    <section class="card" aria-labelledby="lic-state-h">
      <h2 id="lic-state-h">State</h2>
      <p class="big" data-testid="license-edition">${info.edition}</p>
      <p><${StateBadge} state=${info.state} /></p>
      ${info.state.state === 'clock_anomaly' && html`<p class="small">The server clock went back on ${formatTime(info.state.since)}.</p>`}
      ${info.restricted && html`<p class="small bad">New users, tenants and licensed changes are refused until a renewed licence is installed. Sign-in, reading, export and backup keep working.</p>`}
      ${l
        ? html`
          <dl class="facts" data-testid="license-facts">
            <dt>Customer</dt><dd data-testid="license-customer">${l.customer}</dd>
            <dt>Licence id</dt><dd><code>${l.license_id}</code></dd>
            ${l.trial && html`<dt>Trial</dt><dd>yes</dd>`}
            <dt>Issued</dt><dd>${formatTime(l.issued_at)}</dd>
            <dt>Valid</dt><dd>${formatTime(l.starts_at)} to ${formatTime(l.expires_at)}</dd>
            <dt>Grace period</dt><dd>${l.grace_days} ${l.grace_days === 1 ? 'day' : 'days'} after expiry</dd>
            <dt>Installation</dt><dd>${bound
              ? html`<code>${l.installation_id}</code>${l.installation_id === info.installation_id ? html` <span class="muted">(this one)</span>` : html` <span class="bad">(not this one)</span>`}`
              : 'Site licence (any installation)'}</dd>
            <dt>Signing key</dt><dd><code>${l.key_id}</code></dd>
          </dl>`
        : html`<p>No licence is installed: the free community plan is in force.</p>`}
      <p class="small muted">Checked ${formatTime(info.evaluated_at)}.</p>
    </section>`;
}

function LimitsCard({ info }) {
  const { limits, usage } = info;
  const features = new Set(info.features);
  const extra = info.features.filter((f) => !FEATURES.some(([name]) => name === f));
  return html`
    <section class="card" aria-labelledby="lic-limits-h">
      <h2 id="lic-limits-h">Limits and usage</h2>
      <div class="meters">
        <${Meter} id="users" label="Users (active accounts)" used=${usage.users} limit=${limits.users} />
        <${Meter} id="tenants" label="Tenants" used=${usage.tenants} limit=${limits.tenants} />
        <${Meter} id="users-per-tenant" label="Members of the largest tenant" used=${usage.largest_tenant_members} limit=${limits.users_per_tenant} />
        <${Meter} id="storage" label="Storage" used=${usage.storage_bytes}
          limit=${limits.storage_gb === null || limits.storage_gb === undefined ? null : limits.storage_gb * 1e9} format=${formatBytes} />
      </div>
      <div class="license-columns">
        <div>
          <h3>Monthly quotas</h3>
          <table class="dense" data-testid="quota-table">
            <tbody>${QUOTAS.map(([key, label]) => html`
              <tr key=${key} data-testid=${'quota-' + key}>
                <th scope="row">${label}</th>
                <td class="num">${limits[key] === null || limits[key] === undefined ? 'unlimited' : formatNumber(limits[key])}</td>
              </tr>`)}
            </tbody>
          </table>
          <p class="small muted">Per calendar month.</p>
        </div>
        <div>
          <h3>Features</h3>
          <ul class="features" data-testid="feature-list">
            ${FEATURES.map(([name, label]) => {
              const on = features.has(name);
              return html`
                <li key=${name} class=${on ? 'feature-on' : 'feature-off'} data-testid=${'feature-' + name} data-included=${on ? 'yes' : 'no'}>
                  <span class="feature-mark" aria-hidden="true">${on ? '✓' : '–'}</span>
                  <span class="feature-name">${label} <code class="muted">${name}</code></span>
                  <span class="small feature-state">${on ? 'included' : 'not included'}</span>
                </li>`;
            })}
            ${extra.map((name) => html`
              <li key=${name} class="feature-on"><span class="feature-mark" aria-hidden="true">✓</span>
                <span class="feature-name"><code>${name}</code></span><span class="small feature-state">included</span></li>`)}
          </ul>
        </div>
      </div>
    </section>`;
}

function SeatsCard({ info }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const p = info.period_max;
  async function downloadReport() {
    setError(null);
    setBusy(true);
    try {
      saveTextFile('enclave-usage-report.txt', await api.getText('/api/v1/license/usage-report'));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <section class="card" aria-labelledby="lic-seats-h">
      <h2 id="lic-seats-h">Seat counting</h2>
      <p class="small muted">The largest daily counts ${info.license ? 'since the licence period started' : 'of the last 365 days'}, as the signed usage report gives them to the vendor.</p>
      <dl class="facts" data-testid="period-max">
        <dt>Billable users</dt><dd>${formatNumber(p.billable_users)}</dd>
        <dt>Active users (30 days)</dt><dd>${formatNumber(p.active_users_30d)}</dd>
        <dt>Tenants</dt><dd>${formatNumber(p.tenants)}</dd>
        <dt>Storage</dt><dd>${formatBytes(p.storage_bytes)}</dd>
      </dl>
      <p class="small">Now: ${formatNumber(info.usage.active_users_30d)} of ${formatNumber(info.usage.users)} accounts active in the last 30 days.</p>
      <${ErrorBanner} error=${error} />
      <button type="button" class="secondary" onClick=${downloadReport} disabled=${busy}>Download usage report</button>
    </section>`;
}

/** The server's SVG as an image: an <img> never runs anything inside the SVG, and `img-src data:` allows it. */
function svgDataUrl(svg) {
  const bytes = new TextEncoder().encode(svg);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
  return 'data:image/svg+xml;base64,' + btoa(binary);
}

function ActivationCard({ installationId }) {
  const [request, setRequest] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState('');
  const idRef = useRef(null);

  async function copy() {
    try {
      await navigator.clipboard.writeText(installationId);
      setCopied('Copied.');
    } catch (e) {
      // No clipboard access (plain http, or the browser said no): select the id for a manual copy.
      const range = document.createRange();
      range.selectNodeContents(idRef.current);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      let done = false;
      try {
        done = document.execCommand('copy');
      } catch (ignored) {
        done = false;
      }
      setCopied(done ? 'Copied.' : 'Selected: press Ctrl+C to copy it.');
    }
  }

  async function create() {
    setError(null);
    setBusy(true);
    try {
      const r = await api.get('/api/v1/license/activation-request');
      setRequest({ ...r, image: svgDataUrl(r.qr_svg) });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <section class="card" aria-labelledby="lic-activation-h">
      <h2 id="lic-activation-h">Activation</h2>
      <p class="small muted">A licence is issued for one installation. Send the vendor this installation's id, or its signed activation request as a file or through the QR code.</p>
      <dl class="facts">
        <dt>Installation id</dt>
        <dd class="copy-row">
          <code class="secret" ref=${idRef} data-testid="installation-id">${installationId}</code>
          <button type="button" class="secondary" onClick=${copy} aria-label="Copy the installation id">Copy</button>
        </dd>
      </dl>
      <p class="small" role="status">${copied}</p>
      <${ErrorBanner} error=${error} />
      <button type="button" onClick=${create} disabled=${busy}>${request ? 'Create a new activation request' : 'Create activation request'}</button>
      ${request && html`
        <div class="activation" data-testid="activation">
          <img class="qr" src=${request.image} width="240" height="240" data-testid="activation-qr"
            alt="QR code of the activation request: scan it with a phone to send it to the vendor" />
          <div class="form">
            <label for="activation-text">Activation request</label>
            <textarea id="activation-text" class="armour" readonly rows="9" wrap="off" spellcheck="false" value=${request.request}></textarea>
            <button type="button" class="secondary" onClick=${() => saveTextFile('enclave-activation-request.txt', request.request)}>Download request</button>
          </div>
        </div>`}
    </section>`;
}

function InstallCard({ onInstalled }) {
  const [text, setText] = useState('');
  const [fileName, setFileName] = useState('');
  const [dragging, setDragging] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);
  const fileRef = useRef(null);

  async function read(file) {
    setError(null);
    setDone(null);
    if (!file) return;
    if (file.size > MAX_LICENSE_BYTES) {
      setError({ message: `${file.name} is larger than 64 KiB: it is not an Enclave licence file.` });
      return;
    }
    setFileName(file.name);
    setText(await file.text());
  }

  function drop(event) {
    event.preventDefault();
    setDragging(false);
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) read(file);
  }

  async function install(event) {
    event.preventDefault();
    setError(null);
    setDone(null);
    setBusy(true);
    try {
      const info = await api.post('/api/v1/license', { license: text });
      setText('');
      setFileName('');
      if (fileRef.current) fileRef.current.value = '';
      setDone(info);
      onInstalled(info);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <form class="card form" onSubmit=${install} aria-labelledby="lic-install-h">
      <h2 id="lic-install-h">Install a licence</h2>
      <div class=${'dropzone' + (dragging ? ' dragging' : '')} data-testid="license-dropzone"
        onDragOver=${(e) => { e.preventDefault(); setDragging(true); }}
        onDragLeave=${() => setDragging(false)} onDrop=${drop}>
        <label for="license-file">Licence file</label>
        <input id="license-file" type="file" accept=".lic,.txt,.license,text/plain" ref=${fileRef}
          onChange=${(e) => read(e.currentTarget.files[0])} aria-describedby="license-file-help" />
        <p id="license-file-help" class="small muted">${fileName ? html`Read <code>${fileName}</code>: check it below, then install it.` : 'Choose the file from the vendor, or drop it here.'}</p>
      </div>
      <div class="field"><label for="license-text">Licence text</label>
        <textarea id="license-text" class="armour" rows="7" wrap="off" spellcheck="false" value=${text}
          placeholder="-----BEGIN ENCLAVE LICENSE-----" onInput=${(e) => setText(e.currentTarget.value)}></textarea>
        <p class="small muted">Or paste the whole file here. The current licence stays until a new one is accepted.</p></div>
      <${ErrorBanner} error=${error} />
      ${done && html`<div class="banner banner-ok" role="status" data-testid="license-installed">Installed the ${done.edition} licence${done.license ? ` for ${done.license.customer}` : ''}.</div>`}
      <button type="submit" disabled=${busy || !text.trim()}>Install licence</button>
    </form>`;
}

function RemoveCard({ info, onRemoved }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function remove() {
    setError(null);
    setBusy(true);
    try {
      const answer = await api.del('/api/v1/license');
      setConfirming(false);
      onRemoved(answer);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <section class="card" aria-labelledby="lic-remove-h">
      <h2 id="lic-remove-h">Remove the licence</h2>
      <p class="small muted">Without a licence the free community plan applies: one tenant, five users, no licensed features. Nothing is deleted, but what goes beyond the plan can no longer grow.</p>
      <${ErrorBanner} error=${error} />
      ${confirming
        ? html`
          <div class="confirm" role="group" aria-labelledby="lic-remove-q">
            <p id="lic-remove-q"><strong>Remove the ${info.edition} licence of ${info.license.customer}?</strong></p>
            <button type="button" class="danger" onClick=${remove} disabled=${busy}>Yes, remove the licence</button>
            <button type="button" class="secondary" onClick=${() => setConfirming(false)}>Cancel</button>
          </div>`
        : html`<button type="button" class="secondary danger-outline" onClick=${() => setConfirming(true)}>Remove licence</button>`}
    </section>`;
}

export function License() {
  const { info: session } = useSession();
  const owner = session ? session.user.id : null;
  const [info, setInfo] = useState(null);
  const [error, setError] = useState(null);

  // Every answer also updates the banner that the whole app shows.
  function show(answer) {
    setInfo(answer);
    setLicenseStatus(answer, owner);
  }
  async function load() {
    try {
      show(await api.get('/api/v1/license'));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }
  useEffect(() => { load(); }, []);

  return html`
    <h1>Licence</h1>
    <${ErrorBanner} error=${error} />
    ${info === null && !error && html`<${Loading} what="the licence" />`}
    ${info && html`
      <div class="license-layout">
        <div class="license-row">
          <${StateCard} info=${info} />
          <${SeatsCard} info=${info} />
        </div>
        <${LimitsCard} info=${info} />
        <div class="license-row">
          <div class="license-stack">
            <${InstallCard} onInstalled=${show} />
            ${info.license && html`<${RemoveCard} info=${info} onRemoved=${show} />`}
          </div>
          <${ActivationCard} installationId=${info.installation_id} />
        </div>
      </div>`}`;
}
