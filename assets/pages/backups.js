// Backups (system administrators): where they go, the settings in effect (schedule, retention, restore
// drill, alert webhook) and where they come from, whether a passphrase is configured, the last run, the
// last failure and the last restore drill; the settings form; "Back up now" and "Run restore drill now";
// the backups with Verify and Download. Restoring is a command on the server (`enclave backup restore`),
// not something the browser does.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatBytes, formatCount, formatTime } from '../lib/ui.js';

const KIND_LABEL = { manual: 'manual', scheduled: 'scheduled', 'pre-upgrade': 'pre-upgrade', secrets: 'secrets (instance key)' };

// The fields of PUT /api/v1/backups/settings, in the form's order.
const SETTINGS_FIELDS = ['schedule', 'keep_daily', 'keep_weekly', 'drill_schedule', 'alert_webhook_url'];

const fileUrl = (file) => `/api/v1/backups/${encodeURIComponent(file)}`;

function formatMillis(ms) {
  if (ms === null || ms === undefined) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} s`;
}

/** A time as the cron expressions read it: "2025-05-02 02:15 UTC". */
function formatUtc(rfc3339) {
  const t = new Date(rfc3339);
  return isNaN(t) ? rfc3339 : `${t.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** The host of a URL (the status names only where alerts go; the full URL, which may hold a token, is in the form). */
function hostOf(url) {
  try {
    return new URL(url).host;
  } catch (e) {
    return url;
  }
}

/** When a schedule fires next: local time, and UTC as the expression is written. */
function NextTime({ at, what }) {
  return html` · ${what} <time datetime=${at}>${formatTime(at)}</time> <span class="muted">(${formatUtc(at)})</span>`;
}

/**
 * The field a 400 answer names (`error.param`) and its message (without the "field: " the server
 * puts first), or null when the error is not about one field of the form.
 */
function fieldError(e) {
  const field = e.param;
  if (e.status !== 400 || !SETTINGS_FIELDS.includes(field)) return null;
  const prefix = `${field}: `;
  const message = (e.message || '').startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
  return { field, message };
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

/** What a restore drill checked (or why it failed), after "when" and the pill. */
function DrillDetail({ drill }) {
  if (!drill.ok) return html`${drill.file ? html` <code>${drill.file}</code>:` : ''} ${drill.error || 'no reason given'}`;
  const counts = [];
  if (drill.files_checked !== null && drill.files_checked !== undefined) counts.push(formatCount(drill.files_checked, 'file'));
  if (drill.databases_checked !== null && drill.databases_checked !== undefined) counts.push(formatCount(drill.databases_checked, 'database'));
  const checked = counts.length > 0 ? ` (${counts.join(', ')})` : '';
  return html`${drill.file ? html` <code>${drill.file}</code>` : ''} decrypted and checked${checked} in ${formatMillis(drill.duration_ms)}`;
}

function DrillSummary({ drill }) {
  return html`
    <span data-testid="drill-summary">
      ${formatTime(drill.finished_at || drill.started_at)}:
      ${drill.ok ? html` <span class="pill pill-tone-ok">passed</span>` : html` <span class="pill pill-tone-error">failed</span>`}
      ${' '}<${DrillDetail} drill=${drill} />
    </span>`;
}

function StatusCard({ info }) {
  const s = info.settings;
  const drill = info.last_drill;
  return html`
    <section class="card" aria-labelledby="backup-status-h">
      <h2 id="backup-status-h">Status</h2>
      ${info.last_failure && html`
        <div class="banner banner-error" role="alert" data-testid="backup-last-failure">
          <strong>The last backup failed</strong> on ${formatTime(info.last_failure.finished_at || info.last_failure.started_at)}${' '}
          (${info.last_failure.kind}): ${info.last_failure.error || 'no reason given'}
        </div>`}
      ${drill && !drill.ok && html`
        <div class="banner banner-error" role="alert" data-testid="backup-drill-failure">
          <strong>The last restore drill failed</strong> on ${formatTime(drill.finished_at || drill.started_at)}:${' '}
          ${drill.file ? html`<code>${drill.file}</code>: ` : ''}${drill.error || 'no reason given'}
        </div>`}
      <dl class="facts" data-testid="backup-status">
        <dt>Directory</dt><dd><code>${info.dir}</code></dd>
        <dt>Schedule</dt><dd data-testid="backup-schedule">${s.schedule
          ? html`<code>${s.schedule}</code> <span class="muted">(UTC)</span>${info.next_run ? html`<${NextTime} at=${info.next_run} what="next run" />` : html` · <span class="muted">no run planned</span>`}`
          : html`<span class="muted">No scheduled backups</span>`}</dd>
        <dt>Retention</dt><dd>Scheduled backups: keeps the newest of ${formatCount(s.keep_daily, 'day')} and ${formatCount(s.keep_weekly, 'week')}.${' '}
          <span class="muted">Manual and pre-upgrade backups are never removed.</span></dd>
        <dt>Restore drill</dt><dd data-testid="backup-drill-schedule">${s.drill_schedule
          ? html`<code>${s.drill_schedule}</code> <span class="muted">(UTC)</span>${info.next_drill ? html`<${NextTime} at=${info.next_drill} what="next drill" />` : html` · <span class="muted">no drill planned</span>`}
            <div class="small muted">Decrypts the newest backup and checks every file and database, without touching live data.</div>`
          : html`<span class="muted">No scheduled restore drills</span>`}</dd>
        <dt>Alerts</dt><dd data-testid="backup-alerts">${s.alert_webhook_url
          ? html`Failed backups and drills are posted to a webhook at <code>${hostOf(s.alert_webhook_url)}</code>`
          : html`<span class="muted">No alert webhook</span>`}</dd>
        <dt>Settings</dt><dd data-testid="backup-settings-source">${info.settings_source === 'saved'
          ? 'saved on this page'
          : html`from the configuration file <span class="muted">(<code>[backup]</code>; saving them here takes precedence)</span>`}</dd>
        <dt>Passphrase</dt><dd data-testid="backup-passphrase">${info.passphrase_configured
          ? html`<span class="pill pill-tone-ok">passphrase configured</span>`
          : html`<span class="pill pill-tone-warn">no passphrase configured</span>
            <div class="small">Backups are encrypted and cannot be taken without one. Set <code>[backup] passphrase_file</code> in the
              configuration, or <code>ENCLAVE_BACKUP_PASSPHRASE</code> in the server's environment, then restart Enclave.</div>`}</dd>
        <dt>Last run</dt><dd data-testid="backup-last-run">${info.last_run ? html`<${RunSummary} run=${info.last_run} />` : html`<span class="muted">None since the server started</span>`}</dd>
        <dt>Last restore drill</dt><dd data-testid="backup-last-drill">${drill ? html`<${DrillSummary} drill=${drill} />` : html`<span class="muted">None since the server started</span>`}</dd>
      </dl>
    </section>`;
}

const toForm = (s) => ({
  schedule: s.schedule, keep_daily: String(s.keep_daily), keep_weekly: String(s.keep_weekly),
  drill_schedule: s.drill_schedule, alert_webhook_url: s.alert_webhook_url || '',
});

function SettingsForm({ settings, onSaved }) {
  const [form, setForm] = useState(() => toForm(settings));
  const [invalid, setInvalid] = useState(null); // null | { field, message }
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const set = (field) => (e) => {
    setSaved(false);
    if (invalid && invalid.field === field) setInvalid(null);
    setForm({ ...form, [field]: e.currentTarget.value });
  };
  // The field the server refused takes the focus, so that its message is read out.
  useEffect(() => {
    if (invalid) document.getElementById('bs-' + invalid.field)?.focus();
  }, [invalid]);

  async function submit(event) {
    event.preventDefault();
    setError(null);
    setInvalid(null);
    setSaved(false);
    setBusy(true);
    try {
      const result = await api.put('/api/v1/backups/settings', {
        schedule: form.schedule, keep_daily: Number(form.keep_daily), keep_weekly: Number(form.keep_weekly),
        drill_schedule: form.drill_schedule, alert_webhook_url: form.alert_webhook_url.trim() || null,
      });
      setForm(toForm(result));
      setSaved(true);
      onSaved();
    } catch (e) {
      const field = fieldError(e);
      if (field) setInvalid(field);
      else setError(e);
    } finally {
      setBusy(false);
    }
  }

  // An input with its help (always) and the server's refusal (when it names this field).
  const input = (field, attrs = {}) => {
    const bad = invalid && invalid.field === field;
    return html`<input id=${'bs-' + field} name=${field} value=${form[field]} onInput=${set(field)}
      aria-invalid=${bad ? 'true' : undefined}
      aria-describedby=${`bs-${field}-help${bad ? ` bs-${field}-error` : ''}`} ...${attrs} />`;
  };
  const fieldMessage = (field) => invalid && invalid.field === field
    && html`<p id=${`bs-${field}-error`} class="small bad" data-testid=${`settings-error-${field}`}>${invalid.message}</p>`;
  const field = (name, label, help, attrs) => html`
    <div class="field"><label for=${'bs-' + name}>${label}</label>${input(name, attrs)}
      ${fieldMessage(name)}
      <p id=${`bs-${name}-help`} class="small muted">${help}</p></div>`;
  const cron = { spellcheck: false, autocomplete: 'off', placeholder: 'empty: off' };

  return html`
    <form class="card form" onSubmit=${submit} aria-labelledby="backup-settings-h" data-testid="backup-settings-form">
      <h2 id="backup-settings-h">Settings</h2>
      <p class="small muted">Saved settings apply at once and take precedence over the configuration file. The backup directory and
        the passphrase stay in the configuration.</p>
      <div class="grid-2">
        ${field('schedule', 'Backup schedule (cron)', html`Six fields, UTC: sec min hour day month weekday. <code>0 0 3 * * *</code>: daily at 03:00.
          Empty: no scheduled backups.`, cron)}
        ${field('drill_schedule', 'Restore drill schedule (cron)', html`Verifies the newest backup in full. <code>0 30 4 * * 0</code>: Sundays at 04:30 UTC.
          Empty: no scheduled drills.`, cron)}
      </div>
      <div class="grid-2">
        ${field('keep_daily', 'Keep daily', 'Scheduled backups kept: the newest of each of this many days (0–366).',
          { type: 'number', min: 0, max: 366, step: 1, required: true, inputmode: 'numeric' })}
        ${field('keep_weekly', 'Keep weekly', '…and of each of this many weeks (0–520). Manual and pre-upgrade backups are never removed.',
          { type: 'number', min: 0, max: 520, step: 1, required: true, inputmode: 'numeric' })}
      </div>
      ${field('alert_webhook_url', 'Alert webhook URL', 'Receives a JSON POST when a backup or a restore drill fails (http or https). Empty: no alerts.',
        { inputmode: 'url', spellcheck: false, autocomplete: 'off', placeholder: 'https://alerts.example.org/hooks/enclave' })}
      <${ErrorBanner} error=${error} />
      ${saved && html`<div class="banner banner-ok" role="status" data-testid="settings-saved">Saved the backup settings; they apply now.</div>`}
      <button type="submit" disabled=${busy} aria-busy=${busy ? 'true' : 'false'}>${busy ? 'Saving…' : 'Save settings'}</button>
    </form>`;
}

function RunNow({ disabled, onDone }) {
  const [busy, setBusy] = useState(null); // null | 'backup' | 'drill'
  const [error, setError] = useState(null);
  const [result, setResult] = useState(null);
  const [drill, setDrill] = useState(null);
  async function run(what) {
    setBusy(what);
    setError(null);
    setResult(null);
    setDrill(null);
    try {
      if (what === 'backup') setResult(await api.post('/api/v1/backups', {}));
      else setDrill(await api.post('/api/v1/backups/drill', {}));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
      onDone();
    }
  }
  return html`
    <section class="card" aria-labelledby="backup-now-h">
      <h2 id="backup-now-h">Run now</h2>
      <p class="small muted">Back up now: a manual backup of every database, encrypted with the configured passphrase; retention never removes
        manual backups. The restore drill decrypts the newest backup and checks every file and database, without touching live data.</p>
      <div class="actions">
        <button type="button" onClick=${() => run('backup')} disabled=${busy !== null || disabled}
          aria-busy=${busy === 'backup' ? 'true' : 'false'}>${busy === 'backup' ? 'Backing up…' : 'Back up now'}</button>
        <button type="button" class="secondary" onClick=${() => run('drill')} disabled=${busy !== null || disabled}
          aria-busy=${busy === 'drill' ? 'true' : 'false'}>${busy === 'drill' ? 'Running the drill…' : 'Run restore drill now'}</button>
      </div>
      <div aria-live="polite" data-testid="backup-result">
        ${result && (result.ok
          ? html`<p class="ok">Backup written: <code>${result.file}</code>, ${formatBytes(result.bytes)} in ${formatMillis(result.duration_ms)}.</p>`
          : html`<p class="bad">The backup failed: ${result.error}</p>`)}
      </div>
      <div aria-live="polite" data-testid="drill-result">
        ${drill && (drill.ok
          ? html`<p class="ok">Restore drill passed:<${DrillDetail} drill=${drill} />.</p>`
          : html`<p class="bad">The restore drill failed:<${DrillDetail} drill=${drill} /></p>`)}
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
  const reload = () => setVersion((v) => v + 1);

  useEffect(() => {
    api.get('/api/v1/backups').then((r) => { setInfo(r); setError(null); }, setError);
  }, [version]);

  if (error && !info) return html`<h1>Backups</h1><${ErrorBanner} error=${error} />`;
  if (!info) return html`<h1>Backups</h1><${Loading} what="backups" />`;
  return html`
    <h1>Backups</h1>
    <${ErrorBanner} error=${error} />
    <${StatusCard} info=${info} />
    <${RunNow} disabled=${!info.passphrase_configured} onDone=${reload} />
    <${SettingsForm} settings=${info.settings} onSaved=${reload} />
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
      <div class="small" data-testid="restore-note">
        <p>Restoring is a command on the server, never something the browser does:</p>
        <ul>
          <li><code>enclave backup restore FILE --into DIR</code>: the whole installation into a new data directory (DIR must be new or empty).</li>
          <li><code>enclave backup restore FILE --tenant ID</code>: one tenant of this installation in place, with the server stopped;
            other tenants are not touched.</li>
          <li><code>enclave backup export-secrets --out FILE</code>: the instance key, which data backups leave out (it opens the secrets
            sealed in the databases). Keep that file apart from the backups; <code>enclave backup import-secrets</code> puts it back after a restore.</li>
        </ul>
      </div>
    </section>`;
}
