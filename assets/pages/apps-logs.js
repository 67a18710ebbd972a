// The logs of everyone's conversations with a tenant's apps (admins): filters, paging, CSV export, the
// full question, answer and citations of a message (its end user links to the app's end users), and
// "Annotate" to store a corrected answer. And an app's annotations (editors): list with hit counts,
// add, edit, delete.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link, navigate } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatNumber, formatTime } from '../lib/ui.js';
import { Crumbs, roleIn } from './knowledge-common.js';
import {
  AnnotatedMark, appAnnotationsPath, appApi, appEditPath, appsApi, appsPath, canEditApps, canSeeLogs, citationLabel, endUsersPath,
  logsPath,
} from './apps-common.js';

const PAGE = 50;
const RATINGS = [['', 'Any'], ['like', 'Liked'], ['dislike', 'Disliked'], ['none', 'Not rated']];

const endUserOf = (m) => {
  const u = m.end_user;
  if (u === null || u === undefined) return '—';
  if (typeof u === 'object') return u.name || u.username || u.id || JSON.stringify(u);
  return String(u);
};
const short = (text, n = 140) => {
  const t = String(text || '');
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
};

function RatingPill({ rating }) {
  if (rating === 'like') return html`<span class="pill pill-tone-ok" data-rating="like">Liked</span>`;
  if (rating === 'dislike') return html`<span class="pill pill-tone-error" data-rating="dislike">Disliked</span>`;
  return html`<span class="muted small" data-rating="none">—</span>`;
}

/** The annotation form: a question and its corrected answer. */
function AnnotationForm({ initial, submitLabel, onSubmit, onCancel, idPrefix }) {
  const [question, setQuestion] = useState(initial.question || '');
  const [answer, setAnswer] = useState(initial.answer || '');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await onSubmit({ question: question.trim(), answer: answer.trim() });
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  }
  return html`
    <form class="form app-annotation-form" onSubmit=${submit} data-testid="annotation-form">
      <div class="field"><label for=${`${idPrefix}-question`}>Question</label>
        <textarea id=${`${idPrefix}-question`} rows="2" required value=${question} onInput=${(e) => setQuestion(e.currentTarget.value)}></textarea></div>
      <div class="field"><label for=${`${idPrefix}-answer`}>Answer</label>
        <textarea id=${`${idPrefix}-answer`} rows="4" required value=${answer} onInput=${(e) => setAnswer(e.currentTarget.value)}></textarea></div>
      <${ErrorBanner} error=${error} />
      <div class="actions">
        <button type="submit" disabled=${busy}>${busy ? 'Saving…' : submitLabel}</button>
        ${onCancel && html`<button type="button" class="secondary" onClick=${onCancel}>Cancel</button>`}
      </div>
    </form>`;
}

function MessageDetail({ tenant, message: m, onClose }) {
  const [annotating, setAnnotating] = useState(false);
  const [annotated, setAnnotated] = useState(null);
  async function annotate(body) {
    const created = await api.post(`${appApi(tenant, m.app_id)}/annotations`, { ...body, message_id: m.id });
    setAnnotated(created || body);
    setAnnotating(false);
  }
  return html`
    <div class="app-log-detail" data-testid="log-detail">
      <div class="card-head">
        <h3>Message <span class="small muted"><code>${m.id}</code></span></h3>
        <button type="button" class="secondary" onClick=${onClose}>Close</button>
      </div>
      <dl class="facts">
        <dt>App</dt><dd>${m.app_name || m.app_id}</dd>
        <dt>End user</dt><dd>${typeof m.end_user === 'string' && m.end_user
          ? html`<${Link} href=${endUsersPath(tenant, m.app_id, m.end_user)}>${m.end_user}</${Link}>` : endUserOf(m)}</dd>
        <dt>Time</dt><dd>${formatTime(m.created_at)}</dd>
        <dt>Source</dt><dd>${m.source || '—'}</dd>
        <dt>Status</dt><dd>${m.status}${m.error ? html` <span class="bad small">${typeof m.error === 'string' ? m.error : m.error.message || m.error.code}</span>` : null}</dd>
        <dt>Rating</dt><dd><${RatingPill} rating=${m.rating} />${m.comment ? html` <span data-testid="log-comment">“${m.comment}”</span>` : null}</dd>
        ${m.usage && html`<dt>Tokens</dt><dd>${formatNumber(m.usage.prompt_tokens)} prompt + ${formatNumber(m.usage.completion_tokens)} completion</dd>`}
        ${typeof m.latency_ms === 'number' && html`<dt>Latency</dt><dd>${formatNumber(m.latency_ms)} ms</dd>`}
      </dl>
      <h4>Question</h4>
      <p class="turn-text" data-testid="log-question">${m.query}</p>
      <h4>Answer <${AnnotatedMark} annotation=${m.annotation} /></h4>
      <p class="turn-text" data-testid="log-answer">${m.answer || html`<span class="muted">${m.status === 'stopped' ? '(stopped before the answer began)' : '(none)'}</span>`}</p>
      ${m.citations && m.citations.length > 0 && html`
        <h4>Citations</h4>
        <ol class="app-log-citations" data-testid="log-citations">${m.citations.map((c) => html`
          <li key=${c.n} value=${c.n}><strong>${citationLabel(c)}</strong>${c.page !== null && c.page !== undefined ? html` <span class="small muted">page ${c.page}</span>` : null}
            <div class="small kb-segment-text">${c.text}</div></li>`)}
        </ol>`}
      ${annotated && html`
        <div class="banner banner-ok" role="status" data-testid="annotated-ok">Annotated: questions close to this one are now answered with the corrected answer.${' '}
          <${Link} href=${appAnnotationsPath(tenant, m.app_id)}>Annotations of ${m.app_name || 'the app'}</${Link}></div>`}
      ${annotated ? null : annotating
        ? html`<${AnnotationForm} idPrefix=${`annotate-${m.id}`} initial=${{ question: m.query, answer: m.answer }} submitLabel="Save annotation"
            onSubmit=${annotate} onCancel=${() => setAnnotating(false)} />`
        : html`<button type="button" onClick=${() => setAnnotating(true)}>Annotate</button>`}
    </div>`;
}

function queryOf(filters, before) {
  const q = new URLSearchParams();
  if (filters.app_id) q.set('app_id', filters.app_id);
  if (filters.rating) q.set('rating', filters.rating);
  if (filters.from) q.set('from', filters.from);
  if (filters.to) q.set('to', filters.to);
  if (filters.user.trim()) q.set('user', filters.user.trim());
  if (before) q.set('before', before);
  return q;
}

/** /tenants/{t}/apps/logs and /tenants/{t}/apps/{app}/logs */
export function LogsPage({ tenant, app }) {
  const { info } = useSession();
  const role = roleIn(info, tenant);
  const empty = { app_id: app || '', rating: '', from: '', to: '', user: '' };
  const [form, setForm] = useState(empty);
  const [filters, setFilters] = useState(empty);
  const [apps, setApps] = useState(null);
  const [messages, setMessages] = useState(null);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [open, setOpen] = useState(null);
  const allowed = canSeeLogs(role);

  useEffect(() => {
    if (allowed) api.get(appsApi(tenant)).then((r) => setApps(r.apps), setError);
  }, [tenant]);
  async function load(f, before) {
    setError(null);
    setBusy(true);
    try {
      const q = queryOf(f, before);
      q.set('limit', String(PAGE));
      const r = await api.get(`${appsApi(tenant)}/logs?${q}`);
      setMessages((old) => (before && old ? [...old, ...r.messages] : r.messages));
      setNext(r.next_before || null);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  useEffect(() => { if (allowed) load(filters, null); }, [tenant, filters]);

  const one = app && apps ? apps.find((a) => a.id === app) : null;
  // The app the logs are filtered to: its end users are one click away.
  const chosen = filters.app_id && apps ? apps.find((a) => a.id === filters.app_id) : null;
  const crumbs = html`<${Crumbs} items=${[[appsPath(tenant), 'Apps'], ...(one ? [[appEditPath(tenant, one.id), one.name]] : []), [null, 'Logs']]} />`;
  if (!allowed) return html`${crumbs}<h1>Logs</h1><p class="muted">Tenant administrators see the logs.</p>`;
  const set = (key) => (e) => setForm({ ...form, [key]: e.currentTarget.value });
  const csv = `${appsApi(tenant)}/logs.csv?${queryOf(filters, null)}`;
  return html`
    ${crumbs}
    <div class="page-head">
      <h1>Logs</h1>
      <div class="actions">
        ${chosen && html`<${Link} href=${endUsersPath(tenant, chosen.id)} class="button-link">End users<span class="visually-hidden"> of ${chosen.name}</span></${Link}>`}
        <a class="button-link" href=${csv} download="app-logs.csv" data-testid="logs-csv">Export CSV</a>
      </div>
    </div>
    <p class="muted">Every question asked of the tenant's apps, by people in the browser and through the API, with its answer, sources and feedback.</p>
    <form class="filters" aria-label="Filters" data-testid="log-filters"
      onSubmit=${(e) => { e.preventDefault(); setOpen(null); setFilters({ ...form }); }}>
      <label>App <select value=${form.app_id} onChange=${set('app_id')}>
        <option value="">All apps</option>
        ${(apps || []).map((a) => html`<option value=${a.id}>${a.name}</option>`)}</select></label>
      <label>Rating <select value=${form.rating} onChange=${set('rating')}>
        ${RATINGS.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></label>
      <label>From <input type="date" value=${form.from} onInput=${set('from')} /></label>
      <label>To <input type="date" value=${form.to} onInput=${set('to')} /></label>
      <label>End user <input value=${form.user} onInput=${set('user')} placeholder="any" size="14" /></label>
      <button type="submit">Apply filters</button>
      <button type="button" class="secondary" onClick=${() => { setForm(empty); setOpen(null); setFilters(empty); if (app) navigate(logsPath(tenant)); }}>Reset</button>
    </form>
    <${ErrorBanner} error=${error} />
    ${messages === null && !error && html`<${Loading} what="the logs" />`}
    ${messages && messages.length === 0 && html`<p class="muted" data-testid="logs-empty">No messages match.</p>`}
    ${messages && messages.length > 0 && html`
      <div class="table-scroll">
        <table class="dense app-logs" data-testid="log-table">
          <caption class="visually-hidden">Messages</caption>
          <thead><tr><th scope="col">Time</th><th scope="col">App</th><th scope="col">End user</th><th scope="col">Question</th>
            <th scope="col">Answer</th><th scope="col">Rating</th></tr></thead>
          <tbody>${messages.map((m) => html`
            <tr key=${m.id} data-message=${m.id} data-rating=${m.rating || 'none'} aria-current=${open === m.id ? 'true' : undefined}>
              <td class="small nowrap">${formatTime(m.created_at)}</td>
              <td class="small">${m.app_name || m.app_id}</td>
              <td class="small">${endUserOf(m)}${m.source && m.source !== 'web' ? html` <span class="pill">${m.source}</span>` : null}</td>
              <td><button type="button" class="linklike" aria-expanded=${open === m.id} onClick=${() => setOpen(open === m.id ? null : m.id)}
                data-testid="log-open">${short(m.query, 100)}</button></td>
              <td class="small">${short(m.answer)}${m.annotation ? html` <${AnnotatedMark} annotation=${m.annotation} />` : null}
                ${m.status && m.status !== 'complete' ? html` <span class="pill pill-tone-warn">${m.status}</span>` : null}</td>
              <td><${RatingPill} rating=${m.rating} />${m.comment ? html`<div class="small muted">${short(m.comment, 60)}</div>` : null}</td>
            </tr>
            ${open === m.id && html`<tr key=${m.id + '-detail'} class="app-log-detail-row"><td colspan="6">
              <${MessageDetail} tenant=${tenant} message=${m} onClose=${() => setOpen(null)} /></td></tr>`}`)}
          </tbody>
        </table>
      </div>
      ${next && html`<div class="kb-pager"><button type="button" class="secondary" disabled=${busy} onClick=${() => load(filters, next)}>Older messages</button></div>`}`}`;
}

// ---------------------------------------------------------------------------------------------------
// Annotations.

function AnnotationRow({ tenant, app, annotation: a, onChanged }) {
  const [mode, setMode] = useState('view');
  const [error, setError] = useState(null);
  const base = `${appApi(tenant, app)}/annotations/${encodeURIComponent(a.id)}`;
  async function save(body) {
    await api.patch(base, body);
    setMode('view');
    onChanged();
  }
  async function remove() {
    setError(null);
    try {
      await api.del(base);
      onChanged();
    } catch (e) {
      setError(e);
    }
  }
  if (mode === 'edit') {
    return html`<tr data-annotation=${a.id}><td colspan="5">
      <${AnnotationForm} idPrefix=${`edit-${a.id}`} initial=${a} submitLabel="Save" onSubmit=${save} onCancel=${() => setMode('view')} /></td></tr>`;
  }
  return html`
    <tr data-annotation=${a.id} data-question=${a.question}>
      <td>${a.question}</td>
      <td class="turn-text small">${a.answer}</td>
      <td class="num" data-testid="hit-count">${formatNumber(a.hit_count || 0)}</td>
      <td class="small">${formatTime(a.updated_at || a.created_at)}${a.message_id ? html`<div class="muted">from a logged message</div>` : null}</td>
      <td>${mode === 'delete'
        ? html`<div class="confirm small" role="group" aria-label="Delete this annotation?">
            <p><strong>Delete this annotation?</strong></p>
            <${ErrorBanner} error=${error} />
            <button type="button" class="danger" onClick=${remove}>Yes, delete it</button>
            <button type="button" class="secondary" onClick=${() => setMode('view')}>Cancel</button></div>`
        : html`<div class="actions">
            <button type="button" class="secondary" onClick=${() => setMode('edit')}>Edit<span class="visually-hidden"> annotation ${a.question}</span></button>
            <button type="button" class="secondary danger-outline" onClick=${() => setMode('delete')}>Delete<span class="visually-hidden"> annotation ${a.question}</span></button></div>`}</td>
    </tr>`;
}

/** /tenants/{t}/apps/{app}/annotations */
export function AnnotationsPage({ tenant, app: id }) {
  const { info } = useSession();
  const [app, setApp] = useState(null);
  const [annotations, setAnnotations] = useState(null);
  const [error, setError] = useState(null);
  const [adding, setAdding] = useState(false);
  const [formKey, setFormKey] = useState(0);
  const load = () => api.get(`${appApi(tenant, id)}/annotations`).then((r) => { setAnnotations(r.annotations); setError(null); }, setError);
  useEffect(() => {
    api.get(appApi(tenant, id)).then(setApp, setError);
    load();
  }, [tenant, id]);
  const role = roleIn(info, tenant);
  const name = app ? app.name : 'App';
  const crumbs = html`<${Crumbs} items=${[[appsPath(tenant), 'Apps'], [appEditPath(tenant, id), name], [null, 'Annotations']]} />`;
  if (!canEditApps(role)) return html`${crumbs}<h1>Annotations</h1><p class="muted">Editors manage annotations.</p>`;
  async function add(body) {
    await api.post(`${appApi(tenant, id)}/annotations`, body);
    setFormKey((k) => k + 1);
    setAdding(false);
    load();
  }
  return html`
    ${crumbs}
    <div class="page-head">
      <h1>Annotations <span class="muted small">${name}</span></h1>
      ${canSeeLogs(role) && html`<${Link} href=${logsPath(tenant, id)} class="button-link">Logs</${Link}>`}
    </div>
    <p class="muted">An annotation is a question with the answer the app must give. A question close enough to it
      (similarity ≥ the app's annotation threshold${app && app.config ? `, now ${app.config.annotation_threshold}` : ''}) gets that answer directly, without the model.</p>
    <${ErrorBanner} error=${error} />
    ${adding
      ? html`<section class="card" aria-labelledby="ann-add-h"><h2 id="ann-add-h">New annotation</h2>
          <${AnnotationForm} key=${formKey} idPrefix="ann-new" initial=${{}} submitLabel="Add annotation" onSubmit=${add} onCancel=${() => setAdding(false)} /></section>`
      : html`<button type="button" onClick=${() => setAdding(true)}>Add annotation</button>`}
    ${annotations === null && !error && html`<${Loading} what="annotations" />`}
    ${annotations && annotations.length === 0 && html`<p class="muted" data-testid="annotations-empty">No annotations yet. Add one, or annotate an answer in the logs.</p>`}
    ${annotations && annotations.length > 0 && html`
      <div class="table-scroll">
        <table class="dense" data-testid="annotation-table">
          <caption class="visually-hidden">Annotations</caption>
          <thead><tr><th scope="col">Question</th><th scope="col">Answer</th><th scope="col" class="num">Hits</th><th scope="col">Updated</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>${annotations.map((a) => html`<${AnnotationRow} key=${a.id} tenant=${tenant} app=${id} annotation=${a} onChanged=${load} />`)}</tbody>
        </table>
      </div>`}`;
}
