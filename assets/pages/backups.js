// Backups (system administrators): where they go, the schedule and retention, whether a passphrase is
// configured, the last run and the last failure, "Back up now", and the backups with Verify and Download.
// Restoring is a command on the server (`enclave backup restore`), not something the browser does.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatBytes, formatCount, formatTime } from '../lib/ui.js';

const KIND_LABEL = { manual: 'manual', scheduled: 'scheduled', 'pre-upgrade': 'pre-upgrade' };

const fileUrl = (file) => `/api/v1/backups/${encodeURIComponent(file)}`;

function formatMillis(ms) {
  if (ms === null || ms === undefined) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} s`;
}

/** One run's outcome in a sentence: when, ok or failed, how long, how large. */
function RunSummary({ run }) {
  return html`
    <span data-testid="run-summary">
      ${formatTime(run.finished_at || run.started_at)} (${run.kind}):
      ${run.ok ? html` <span class="pill pill-tone-ok">succeeded</span>` : html` <span class="pill pill-tone-error">failed</span>`}
      ${' '}in ${formatMillis(run.duration_ms)}${run.ok && run.bytes !== null && run.bytes !== undefined ? `, ${formatBytes(run.bytes)}` : ''}
      ${run.ok && run.file ? html`, <code>${run.file}</code>` : ''}
      ${run.pruned && run.pruned.length > 0 ? html` <span class="muted">· removed ${formatCount(run.pruned.length, 'old backup')}</span>` : ''}
    </span>`;
}

function StatusCard({ info }) {
  return html`
    <section class="card" aria-labelledby="backup-status-h">
      <h2 id="backup-status-h">Status</h2>
      ${info.last_failure && html`
        <div class="banner banner-error" role="alert" data-testid="backup-last-failure">
          <strong>The last backup failed</strong> on ${formatTime(info.last_failure.finished_at || info.last_failure.started_at)}
          (${info.last_failure.kind}): ${info.last_failure.error || 'no reason given'}
        </div>`}
      <dl class="facts" data-testid="backup-status">
        <dt>Directory</dt><dd><code>${info.dir}</code></dd>
        <dt>Schedule</dt><dd>${info.schedule
          ? html`<code>${info.schedule}</code> <span class="muted">(UTC)</span>${info.next_run ? html` · next run ${formatTime(info.next_run)}` : html` · <span class="muted">no run planned</span>`}`
          : html`<span class="muted">No scheduled backups</span>`}</dd>
        <dt>Retention</dt><dd>Scheduled backups: keeps the newest of ${formatCount(info.keep_daily, 'day')} and ${formatCount(info.keep_weekly, 'week')}.${' '}
          <span class="muted">Manual and pre-upgrade backups are never removed.</span></dd>
        <dt>Passphrase</dt><dd data-testid="backup-passphrase">${info.passphrase_configured
          ? html`<span class="pill pill-tone-ok">passphrase configured</span>`
          : html`<span class="pill pill-tone-warn">no passphrase configured</span>
            <div class="small">Backups are encrypted and cannot be taken without one. Set <code>[backup] passphrase_file</code> in the
              configuration, or <code>ENCLAVE_BACKUP_PASSPHRASE</code> in the server's environment, then restart Enclave.</div>`}</dd>
        <dt>Last run</dt><dd data-testid="backup-last-run">${info.last_run ? html`<${RunSummary} run=${info.last_run} />` : html`<span class="muted">None since the server started</span>`}</dd>
      </dl>
    </section>`;
}

function BackUpNow({ disabled, onDone }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [result, setResult] = useState(null);
  async function run() {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const report = await api.post('/api/v1/backups', {});
      setResult(report);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
      onDone();
    }
  }
  return html`
    <section class="card" aria-labelledby="backup-now-h">
      <h2 id="backup-now-h">Back up now</h2>
      <p class="small muted">A manual backup of every database, encrypted with the configured passphrase. Retention never removes manual backups.</p>
      <button type="button" onClick=${run} disabled=${busy || disabled} aria-busy=${busy ? 'true' : 'false'}>${busy ? 'Backing up…' : 'Back up now'}</button>
      <div aria-live="polite" data-testid="backup-result">
        ${result && (result.ok
          ? html`<p class="ok">Backup written: <code>${result.file}</code>, ${formatBytes(result.bytes)} in ${formatMillis(result.duration_ms)}.</p>`
          : html`<p class="bad">The backup failed: ${result.error}</p>`)}
      </div>
      <${ErrorBanner} error=${error} />
    </section>`;
}

function BackupRow({ backup }) {
  const [state, setState] = useState(null); // null | 'busy' | { ok: answer } | { error }
  async function verify() {
    setState('busy');
    try {
      setState({ ok: await api.post(`${fileUrl(backup.file)}/verify`, {}) });
    } catch (e) {
      setState({ error: e });
    }
  }
  return html`
    <tr data-file=${backup.file}>
      <td>${formatTime(backup.created_at)}<div class="small muted"><code>${backup.file}</code></div></td>
      <td data-cell="kind">${KIND_LABEL[backup.kind] || backup.kind}</td>
      <td class="num">${formatBytes(backup.bytes)}</td>
      <td>${backup.app_version}</td>
      <td>
        <button type="button" class="secondary" onClick=${verify} disabled=${state === 'busy'}>${state === 'busy' ? 'Verifying…' : 'Verify'}</button>
        ${' '}<a class="button-link" href=${fileUrl(backup.file)} download=${backup.file}>Download</a>
        <div aria-live="polite" data-testid="verify-result">
          ${state && state.ok && html`<p class="small ok">Verified: ${formatCount(state.ok.entries, 'file')}, ${formatCount(state.ok.databases, 'database')}</p>`}
          ${state && state.error && html`<p class="small bad" role="alert">Not valid: ${state.error.message}${state.error.code ? html` <span class="muted">(${state.error.code})</span>` : ''}</p>`}
        </div>
      </td>
    </tr>`;
}

export function Backups() {
  const [info, setInfo] = useState(null);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    api.get('/api/v1/backups').then((r) => { setInfo(r); setError(null); }, setError);
  }, [version]);

  if (error && !info) return html`<h1>Backups</h1><${ErrorBanner} error=${error} />`;
  if (!info) return html`<h1>Backups</h1><${Loading} what="backups" />`;
  return html`
    <h1>Backups</h1>
    <${ErrorBanner} error=${error} />
    <${StatusCard} info=${info} />
    <${BackUpNow} disabled=${!info.passphrase_configured} onDone=${() => setVersion((v) => v + 1)} />
    <section class="card" aria-labelledby="backup-list-h">
      <h2 id="backup-list-h">Backups</h2>
      ${info.backups.length === 0
        ? html`<p class="muted" data-testid="no-backups">No backups yet.</p>`
        : html`
          <table data-testid="backups-table">
            <thead><tr><th scope="col">Created</th><th scope="col">Kind</th><th scope="col" class="num">Size</th>
              <th scope="col">Version</th><th scope="col">Actions</th></tr></thead>
            <tbody>${info.backups.map((b) => html`<${BackupRow} key=${b.file} backup=${b} />`)}</tbody>
          </table>`}
      <p class="small" data-testid="restore-note">Restoring is a command on the server: <code>enclave backup restore FILE --into DIR</code>${' '}
        (DIR must be new or empty).</p>
    </section>`;
}
