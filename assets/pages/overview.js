// Overview: version, uptime, readiness, tenants, open tenant databases and the default models.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatDuration, formatTime } from '../lib/ui.js';

export function Overview() {
  const [info, setInfo] = useState(null);
  const [ready, setReady] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    api.get('/api/v1/system/info').then(setInfo, setError);
    // Not ready is an answer, not a failure of the page: its reason is shown in the status card.
    api.get('/readyz').then(() => setReady({ ok: true }), (e) => setReady({ ok: false, error: e }));
  }, []);

  if (error) return html`<h1>Overview</h1><${ErrorBanner} error=${error} />`;
  if (!info) return html`<h1>Overview</h1><${Loading} what="system information" />`;
  const missing = info.models.filter((m) => m.status === 'missing');
  const corrupt = info.models.filter((m) => m.status === 'corrupt');
  return html`
    <h1>Overview</h1>
    <div class="cards">
      <section class="card" aria-labelledby="c-version">
        <h2 id="c-version">Version</h2>
        <p class="big" data-testid="version">${info.version}</p>
        <p class="small muted">Installation <code>${info.installation_id}</code></p>
      </section>
      <section class="card" aria-labelledby="c-status">
        <h2 id="c-status">Status</h2>
        <p class="big" data-testid="readiness">${ready === null ? '…' : ready.ok ? html`<span class="ok">Ready</span>` : html`<span class="bad">Not ready</span>`}</p>
        ${ready && !ready.ok && html`<${ErrorBanner} error=${ready.error} />`}
        <p class="small muted">Up ${formatDuration(info.uptime_seconds)}, since ${formatTime(info.started_at)}</p>
      </section>
      <section class="card" aria-labelledby="c-tenants">
        <h2 id="c-tenants">Tenants</h2>
        <p class="big">${info.tenants}</p>
        <p class="small muted">${info.open_tenant_pools} of at most ${info.max_open_tenant_pools} tenant databases open</p>
      </section>
    </div>
    <section aria-labelledby="models-h">
      <h2 id="models-h">Models</h2>
      ${missing.length > 0 && html`
        <div class="banner banner-warn" role="status" data-testid="models-missing">
          ${missing.length === 1 ? html`The model <strong>${missing[0].name}</strong> is` : 'Some models are'} not installed.
          On the server, run <code>scripts/fetch-models.sh</code> with the data directory, then reload this page.
        </div>`}
      ${corrupt.length > 0 && html`
        <div class="banner banner-error" role="status">
          ${corrupt.length === 1 ? html`The model <strong>${corrupt[0].name}</strong> is` : 'Some models are'} damaged: files do not
          match the pinned checksums. Run <code>scripts/fetch-models.sh</code> again to replace the damaged files.
        </div>`}
      ${info.models.length === 0 ? html`<p class="muted">No models are configured.</p>` : null}
      <table>
        <thead><tr><th scope="col">Model</th><th scope="col">Kind</th><th scope="col">Status</th></tr></thead>
        <tbody>
          ${info.models.map((m) => html`
            <tr key=${m.name}>
              <td>${m.name}</td>
              <td>${m.kind}</td>
              <td><span class=${'pill pill-' + m.status}>${m.status}</span>
                ${m.detail ? html`<div class="small muted">${m.detail}</div>` : null}</td>
            </tr>`)}
        </tbody>
      </table>
    </section>`;
}
