// Usage: a tenant's monthly quotas (bars, alerts, its own settings), its daily usage over the last 30
// days as a bar chart drawn here in SVG, who used it (API keys and users), the CSV download, and its
// chargeback statements (this month's preview, the closed months); and, for system administrators, every
// tenant's totals for a month and the internal prices the statements use.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link } from '../lib/router.js';
import { ErrorBanner, Loading, formatDuration, formatMoney, formatNumber } from '../lib/ui.js';

// Every metric counted per month, in the order shown: its name, its label, and its noun in a sentence.
const METRICS = [
  ['api_requests', 'API requests', 'API requests'],
  ['chat_tokens_in', 'Chat tokens in', 'chat tokens in'],
  ['chat_tokens_out', 'Chat tokens out', 'chat tokens out'],
  ['embedding_tokens', 'Embedding tokens', 'embedding tokens'],
  ['messages', 'Messages', 'messages'],
  ['documents_ingested', 'Documents ingested', 'documents ingested'],
  ['workflow_runs', 'Workflow runs', 'workflow runs'],
];
const entryOf = (metric) => METRICS.find(([m]) => m === metric) || [metric, metric, metric];
const labelOf = (metric) => entryOf(metric)[1];
const nounOf = (metric) => entryOf(metric)[2];
const isSet = (n) => n !== null && n !== undefined;

function resetsIn(seconds) {
  if (seconds < 86400) return `in ${formatDuration(seconds)}`;
  const days = Math.ceil(seconds / 86400);
  return `in ${days} ${days === 1 ? 'day' : 'days'}`;
}

/** One metric against its effective limit: amber from 80 %, red when used up. */
function QuotaMeter({ quota }) {
  const { metric, used_this_month: used, effective_limit: limit } = quota;
  const labelId = `quota-${metric}-label`;
  const percent = limit > 0 ? (used * 100) / limit : 100;
  const level = percent >= 100 ? 'full' : percent >= 80 ? 'high' : 'ok';
  const shown = used > 0 && percent < 1 ? '< 1' : String(Math.floor(percent));
  const text = `${formatNumber(used)} of ${formatNumber(limit)} (${shown} %)`;
  return html`
    <div class=${'meter meter-' + level} data-testid=${'quota-' + metric} data-level=${level}>
      <div class="meter-head"><span id=${labelId}>${labelOf(metric)}</span>
        <span class="meter-value">${formatNumber(used)} of ${formatNumber(limit)} <span class="muted">(${shown} %)</span></span></div>
      <progress max=${limit > 0 ? limit : 1} value=${limit > 0 ? Math.min(used, limit) : 1} aria-labelledby=${labelId} aria-valuetext=${text}></progress>
      <div class="quota-facts small">
        <span>Tenant limit: ${isSet(quota.tenant_limit) ? formatNumber(quota.tenant_limit) : html`<span class="muted">none</span>`}</span>
        <span>Licence cap: ${isSet(quota.licence_limit) ? formatNumber(quota.licence_limit) : html`<span class="muted">unlimited</span>`}</span>
        ${quota.alerts.map((p) => html`
          <span class=${'pill ' + (p >= 100 ? 'pill-tone-error' : 'pill-tone-warn')} data-testid=${`alert-${metric}-${p}`}>${p} % alert</span>`)}
      </div>
      ${level === 'full' && html`<p class="small bad">Used up: requests that need more are refused until the month resets.</p>`}
    </div>`;
}

function QuotaForm({ tenantId, quotas, onSaved }) {
  const initial = () => Object.fromEntries(quotas.quotas.map((q) => [q.metric, isSet(q.tenant_limit) ? String(q.tenant_limit) : '']));
  const [values, setValues] = useState(initial);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => setValues(initial()), [quotas]);

  async function save(event) {
    event.preventDefault();
    setError(null);
    setSaved(null);
    // Only what changed, so that the audit log records what was meant.
    const body = {};
    for (const q of quotas.quotas) {
      const text = values[q.metric].trim();
      const next = text === '' ? null : Number(text);
      if (next !== (isSet(q.tenant_limit) ? q.tenant_limit : null)) body[q.metric] = next;
    }
    if (Object.keys(body).length === 0) {
      setSaved('Nothing changed.');
      return;
    }
    setBusy(true);
    try {
      onSaved(await api.put(`/api/v1/tenants/${tenantId}/quotas`, body));
      setSaved('Saved the quotas.');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <form class="card" onSubmit=${save} aria-labelledby="quota-form-h">
      <h2 id="quota-form-h">Tenant limits</h2>
      <p class="small muted">Monthly limits this tenant sets for itself. Empty: no limit of its own. The licence's cap applies either way.</p>
      <table class="dense quota-form">
        <thead><tr><th scope="col">Metric</th><th scope="col" class="num">Used this month</th><th scope="col" class="num">Licence cap</th><th scope="col">Tenant limit</th></tr></thead>
        <tbody>${quotas.quotas.map((q) => html`
          <tr key=${q.metric}>
            <th scope="row"><label for=${'own-' + q.metric}>${labelOf(q.metric)}</label></th>
            <td class="num">${formatNumber(q.used_this_month)}</td>
            <td class="num">${isSet(q.licence_limit) ? formatNumber(q.licence_limit) : html`<span class="muted">unlimited</span>`}</td>
            <td><input id=${'own-' + q.metric} type="number" min="0" step="1" inputmode="numeric" placeholder="none"
              value=${values[q.metric] || ''} onInput=${(e) => setValues({ ...values, [q.metric]: e.currentTarget.value })} /></td>
          </tr>`)}
        </tbody>
      </table>
      <${ErrorBanner} error=${error} />
      ${saved && html`<div class="banner banner-ok" role="status">${saved}</div>`}
      <button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Save limits'}</button>
    </form>`;
}

function Quotas({ tenantId }) {
  const [quotas, setQuotas] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { api.get(`/api/v1/tenants/${tenantId}/quotas`).then(setQuotas, setError); }, [tenantId]);
  if (error) return html`<${ErrorBanner} error=${error} />`;
  if (!quotas) return html`<${Loading} what="the quotas" />`;
  const limited = quotas.quotas.filter((q) => isSet(q.effective_limit));
  return html`
    <div class="usage-row">
      <section class="card" aria-labelledby="quota-h">
        <h2 id="quota-h">Quotas for ${quotas.month}</h2>
        <p class="small muted" data-testid="quota-reset">Resets ${resetsIn(quotas.resets_in_seconds)}, at the start of next month (UTC).</p>
        ${limited.length === 0
          ? html`<p class="muted" data-testid="no-quotas">No metric is limited: neither the licence nor the tenant sets a monthly quota.</p>`
          : html`<div class="meters usage-meters">${limited.map((q) => html`<${QuotaMeter} key=${q.metric} quota=${q} />`)}</div>`}
      </section>
      <${QuotaForm} tenantId=${tenantId} quotas=${quotas} onSaved=${setQuotas} />
    </div>`;
}

/** The days from `from` to `to` (YYYY-MM-DD, both included). */
function daysBetween(from, to) {
  const days = [];
  const end = Date.parse(`${to}T00:00:00Z`);
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= end && days.length < 1200; t += 86400000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

/** A round step for about four grid lines up to `max`, never below 1 (the counts are whole). */
function niceStep(max) {
  const raw = Math.max(max / 4, 1);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
}

const shortDay = (day) => new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });

function compact(n) {
  if (n >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${+(n / 1e3).toFixed(0)}k`;
  return formatNumber(n);
}

/** Daily totals as bars: a y axis with round grid lines, a date every few days, today marked. */
function Chart({ days, values, metric, to }) {
  const W = 760, H = 240, left = 52, right = 12, top = 14, bottom = 34;
  const plotW = W - left - right, plotH = H - top - bottom;
  const max = Math.max(0, ...values);
  const step = niceStep(max);
  const ceiling = Math.max(step, Math.ceil(max / step) * step);
  const ticks = [];
  for (let v = 0; v <= ceiling; v += step) ticks.push(v);
  const slot = plotW / days.length;
  const barW = Math.max(2, slot * 0.68);
  const y = (v) => top + plotH - (v / ceiling) * plotH;
  const every = Math.ceil(days.length / 8);
  const total = values.reduce((a, b) => a + b, 0);
  const busiest = max > 0 ? days[values.indexOf(max)] : null;
  const label = labelOf(metric);
  return html`
    <svg class="chart" viewBox=${`0 0 ${W} ${H}`} role="img" aria-labelledby="usage-chart-title usage-chart-desc"
      data-testid="usage-chart" data-from=${days[0]} data-to=${to} preserveAspectRatio="xMidYMid meet">
      <title id="usage-chart-title">${label} per day, ${days[0]} to ${to}</title>
      <desc id="usage-chart-desc">${total === 0
        ? `No ${nounOf(metric)} in these ${days.length} days.`
        : `${formatNumber(total)} in ${days.length} days; the most on ${busiest}: ${formatNumber(max)}.`}</desc>
      <g class="chart-grid" aria-hidden="true">
        ${ticks.map((v) => html`
          <line x1=${left} x2=${W - right} y1=${y(v)} y2=${y(v)} class=${v === 0 ? 'chart-axis' : ''} />
          <text x=${left - 8} y=${y(v) + 4} text-anchor="end">${compact(v)}</text>`)}
      </g>
      <g class="chart-bars">
        ${days.map((day, i) => values[i] > 0 && html`
          <rect key=${day} class=${day === to ? 'chart-bar chart-today' : 'chart-bar'} data-period=${day} data-value=${values[i]}
            x=${left + i * slot + (slot - barW) / 2} y=${y(values[i])} width=${barW} height=${Math.max(1, top + plotH - y(values[i]))} rx="2">
            <title>${shortDay(day)}: ${formatNumber(values[i])} ${nounOf(metric)}</title>
          </rect>`)}
      </g>
      <g class="chart-labels" aria-hidden="true">
        ${days.map((day, i) => (days.length - 1 - i) % every === 0 && html`
          <text key=${day} x=${day === to ? W - 2 : left + i * slot + slot / 2} y=${H - bottom + 18} text-anchor=${day === to ? 'end' : 'middle'}
            class=${day === to ? 'chart-today-label' : ''}>
            ${day === to ? 'Today' : shortDay(day)}</text>`)}
      </g>
    </svg>`;
}

/** Who the principal is: an API key (by its name, if it is still listed) or a user. */
function describePrincipal(principal, keys) {
  if (principal && principal.startsWith('key:')) {
    const id = principal.slice(4);
    const key = keys.find((k) => k.id === id);
    return key ? html`API key <strong>${key.name}</strong> <code class="muted">${key.prefix}…</code>` : html`API key <code>${id}</code>`;
  }
  if (principal && principal.startsWith('user:')) return html`User <strong>${principal.slice(5)}</strong>`;
  return html`<span class="muted">${principal || 'unknown'}</span>`;
}

function History({ tenantId }) {
  const [series, setSeries] = useState(null);
  const [keys, setKeys] = useState([]);
  const [error, setError] = useState(null);
  const [metric, setMetric] = useState('api_requests');
  const base = `/api/v1/tenants/${tenantId}/usage`;
  useEffect(() => {
    api.get(`${base}?granularity=day&by_principal=true`).then(setSeries, setError);
    // Only for the keys' names: without them the table shows the key ids.
    api.get(`/api/v1/tenants/${tenantId}/api-keys`).then((r) => setKeys(r.keys), () => {});
  }, [tenantId]);
  if (error) return html`<${ErrorBanner} error=${error} />`;
  if (!series) return html`<${Loading} what="the usage history" />`;

  const points = series.points.filter((p) => p.metric === metric);
  const days = daysBetween(series.from, series.to);
  const perDay = new Map();
  const perPrincipal = new Map();
  for (const p of points) {
    perDay.set(p.period, (perDay.get(p.period) || 0) + p.quantity);
    perPrincipal.set(p.principal || '', (perPrincipal.get(p.principal || '') || 0) + p.quantity);
  }
  const values = days.map((d) => perDay.get(d) || 0);
  const total = values.reduce((a, b) => a + b, 0);
  const who = [...perPrincipal.entries()].sort((a, b) => b[1] - a[1]);
  const csv = `${base}?granularity=day&from=${series.from}&to=${series.to}&metric=${metric}&by_principal=true&format=csv`;
  return html`
    <section class="card usage-history" aria-labelledby="history-h">
      <div class="card-head">
        <h2 id="history-h">Daily usage</h2>
        <div class="chart-controls">
          <label>Metric <select value=${metric} onChange=${(e) => setMetric(e.currentTarget.value)}>
            ${METRICS.map(([m, l]) => html`<option value=${m}>${l}</option>`)}</select></label>
          <a class="button-link" href=${csv} download data-testid="usage-csv">Download CSV</a>
        </div>
      </div>
      <p class="small muted" data-testid="usage-total">${formatNumber(total)} ${nounOf(metric)} from ${shortDay(series.from)} to ${shortDay(series.to)} (UTC days).</p>
      <${Chart} days=${days} values=${values} metric=${metric} to=${series.to} />
      <h3>By key or user</h3>
      ${who.length === 0
        ? html`<p class="muted" data-testid="principal-empty">Nothing used in this period.</p>`
        : html`
          <table class="dense" data-testid="principal-table">
            <thead><tr><th scope="col">Key or user</th><th scope="col" class="num">${labelOf(metric)}</th><th scope="col" class="num">Share</th></tr></thead>
            <tbody>${who.map(([principal, n]) => html`
              <tr key=${principal} data-principal=${principal}>
                <td>${describePrincipal(principal, keys)}</td>
                <td class="num">${formatNumber(n)}</td>
                <td class="num">${Math.round((n * 100) / total)} %</td>
              </tr>`)}
            </tbody>
          </table>`}
    </section>`;
}

/** A price as people read it: "0.10 per 1,000". */
function describePrice(price) {
  if (!price) return html`<span class="muted">no price</span>`;
  return html`${formatMoney(price.unit_price_micros)} <span class="muted">per ${formatNumber(price.unit_size)}</span>`;
}

/** The links to a month's statement as a printable page (new tab) and as CSV. */
function StatementLinks({ tenantId, month, testid }) {
  const url = `/api/v1/tenants/${tenantId}/statements/${month}`;
  return html`
    <span class="statement-links">
      <a class="button-link" href=${`${url}?format=html`} target="_blank" rel="noopener" data-testid=${`${testid}-print`}>View (printable)<span class="visually-hidden"> ${month}, opens in a new tab</span></a>
      <a class="button-link" href=${`${url}?format=csv`} download=${`statement-${tenantId}-${month}.csv`} data-testid=${`${testid}-csv`}>CSV<span class="visually-hidden"> ${month}</span></a>
    </span>`;
}

/** This month's statement so far (priced with today's prices) and the closed months' statements. */
function Statements({ tenantId }) {
  const [index, setIndex] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { api.get(`/api/v1/tenants/${tenantId}/statements`).then(setIndex, setError); }, [tenantId]);
  const head = html`<h2 id="statements-h">Statements</h2>`;
  if (error) return html`<section class="card" aria-labelledby="statements-h">${head}<${ErrorBanner} error=${error} /></section>`;
  if (!index) return html`<section class="card" aria-labelledby="statements-h">${head}<${Loading} what="the statements" /></section>`;
  const s = index.current;
  return html`
    <section class="card statements" aria-labelledby="statements-h" data-testid="statements">
      <div class="card-head">
        ${head}
        <${StatementLinks} tenantId=${tenantId} month=${s.month} testid="statement-current" />
      </div>
      <p class="small muted" data-testid="statement-preview-note">
        <span class="pill pill-tone-warn">Preview</span> ${s.month} so far: the month is not over, so quantities and
        amounts still change. Its statement is closed, with the prices of that moment, once the month has ended.</p>
      <div class="table-scroll">
        <table class="dense statement-table" data-testid="statement-current">
          <caption class="visually-hidden">Statement preview for ${s.month} in ${s.currency}</caption>
          <thead><tr><th scope="col">Metric</th><th scope="col" class="num">Quantity</th>
            <th scope="col" class="num">Price (${s.currency})</th><th scope="col" class="num">Amount (${s.currency})</th></tr></thead>
          <tbody>${s.lines.map((l) => html`
            <tr key=${l.metric} data-metric=${l.metric} class=${l.quantity === 0 && !l.price ? 'muted' : ''}>
              <th scope="row">${labelOf(l.metric)}</th>
              <td class="num" data-cell="quantity">${formatNumber(l.quantity)}</td>
              <td class="num" data-cell="price">${describePrice(l.price)}</td>
              <td class="num" data-cell="amount">${formatMoney(l.amount_micros)}</td>
            </tr>`)}
          </tbody>
          <tfoot><tr><th scope="row" colspan="3">Total</th>
            <td class="num" data-testid="statement-total">${formatMoney(s.total_micros)} ${s.currency}</td></tr></tfoot>
        </table>
      </div>
      <h3>Closed months</h3>
      ${index.closed_months.length === 0
        ? html`<p class="muted small" data-testid="statements-none-closed">No closed statements yet: a month's statement is closed after the month ends.</p>`
        : html`<ul class="statement-months" data-testid="statements-closed">${index.closed_months.map((m) => html`
            <li key=${m} data-month=${m}><span class="statement-month">${m}</span>
              <${StatementLinks} tenantId=${tenantId} month=${m} testid=${`statement-${m}`} /></li>`)}
          </ul>`}
    </section>`;
}

/** /tenants/{id}/usage: quotas, limits form, history, statements (tenant administrators). */
export function TenantUsage({ id }) {
  const [tenant, setTenant] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { setTenant(null); setError(null); api.get(`/api/v1/tenants/${id}`).then(setTenant, setError); }, [id]);
  if (error) return html`<h1>Usage</h1><${ErrorBanner} error=${error} />`;
  if (!tenant) return html`<h1>Usage</h1><${Loading} what="the tenant" />`;
  return html`
    <nav class="crumbs small" aria-label="Breadcrumb"><${Link} href=${`/tenants/${id}`}>${tenant.name}</${Link}> <span aria-hidden="true">/</span> Usage</nav>
    <h1>Usage <span class="muted small"><code>${tenant.id}</code></span></h1>
    <div class="usage-layout">
      <${Quotas} tenantId=${id} />
      <${History} tenantId=${id} />
      <${Statements} tenantId=${id} />
    </div>`;
}

const thisMonth = () => new Date().toISOString().slice(0, 7);

// The unit size offered for a metric that has no price yet: tokens are priced per thousand.
const defaultUnitSize = (metric) => (metric.includes('tokens') ? '1000' : '1');

/** The form's text for a price list: the price as an exact decimal, the unit size; empty: no price. */
function priceFields(list) {
  return Object.fromEntries(METRICS.map(([m]) => {
    const p = list.prices[m];
    return [m, p ? { price: formatMoney(p.unit_price_micros), size: String(p.unit_size) } : { price: '', size: defaultUnitSize(m) }];
  }));
}

/** The internal prices statements use: a currency, and per metric a price per unit size (system administrators). */
function PriceSettings() {
  const [list, setList] = useState(null);
  const [currency, setCurrency] = useState('');
  const [fields, setFields] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  const [busy, setBusy] = useState(false);
  const show = (answer) => {
    setList(answer);
    setCurrency(answer.currency);
    setFields(priceFields(answer));
  };
  useEffect(() => { api.get('/api/v1/billing/prices').then(show, setLoadError); }, []);
  const head = html`<h2 id="prices-h">Internal prices</h2>`;
  if (loadError) return html`<section class="card" aria-labelledby="prices-h">${head}<${ErrorBanner} error=${loadError} /></section>`;
  if (!list) return html`<section class="card" aria-labelledby="prices-h">${head}<${Loading} what="the prices" /></section>`;
  const setField = (metric, key, value) => setFields({ ...fields, [metric]: { ...fields[metric], [key]: value } });

  async function save(event) {
    event.preventDefault();
    setError(null);
    setSaved(null);
    // Only what changed, so that the audit log records what was meant. The server checks the values.
    const before = priceFields(list);
    const body = { prices: {} };
    if (currency.trim() !== list.currency) body.currency = currency.trim();
    for (const [m] of METRICS) {
      const price = fields[m].price.trim();
      const size = fields[m].size.trim();
      if (price === before[m].price && (price === '' || size === before[m].size)) continue;
      if (price === '') body.prices[m] = null;
      else body.prices[m] = { unit_size: size === '' ? 0 : Number(size), unit_price: price };
    }
    if (body.currency === undefined && Object.keys(body.prices).length === 0) {
      setSaved('Nothing changed.');
      return;
    }
    setBusy(true);
    try {
      show(await api.put('/api/v1/billing/prices', body));
      setSaved('Saved the prices. Statements of the current month use them now; closed months keep theirs.');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <form class="card price-form" onSubmit=${save} aria-labelledby="prices-h" data-testid="price-form">
      ${head}
      <p class="small muted">What each tenant's monthly statement charges for its usage. An empty price: that metric costs nothing.
        Prices are exact decimals with at most six decimals, e.g. 0.50 per 1000 tokens.</p>
      <div class="price-currency">
        <label for="price-currency">Currency</label>
        <input id="price-currency" type="text" required maxlength="8" autocomplete="off" spellcheck="false" value=${currency}
          onInput=${(e) => setCurrency(e.currentTarget.value)} />
      </div>
      <div class="table-scroll">
        <table class="dense">
          <thead><tr><th scope="col">Metric</th><th scope="col">Price (${list.currency})</th><th scope="col">Unit size</th><th scope="col" class="num">Now</th></tr></thead>
          <tbody>${METRICS.map(([m, label]) => html`
            <tr key=${m} data-metric=${m}>
              <th scope="row"><label for=${'price-' + m}>${label}</label></th>
              <td><input id=${'price-' + m} type="text" inputmode="decimal" autocomplete="off" placeholder="no price"
                aria-label=${`${label} price`} value=${fields[m].price} onInput=${(e) => setField(m, 'price', e.currentTarget.value)} /></td>
              <td><input id=${'unit-' + m} type="number" min="1" step="1" inputmode="numeric" aria-label=${`${label} unit size`}
                value=${fields[m].size} onInput=${(e) => setField(m, 'size', e.currentTarget.value)} /></td>
              <td class="num small">${list.prices[m]
                ? html`${formatMoney(list.prices[m].unit_price_micros)} ${list.currency} <span class="muted">per ${formatNumber(list.prices[m].unit_size)}</span>`
                : html`<span class="muted">no price</span>`}</td>
            </tr>`)}
          </tbody>
        </table>
      </div>
      <${ErrorBanner} error=${error} />
      ${saved && html`<div class="banner banner-ok" role="status">${saved}</div>`}
      <button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Save prices'}</button>
    </form>`;
}

/** /usage: every tenant's totals for a month, most API requests first, and the internal prices (system administrators). */
export function UsageOverview() {
  const [month, setMonth] = useState('');
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setError(null);
    api.get(month ? `/api/v1/usage?month=${month}` : '/api/v1/usage').then((r) => {
      setAnswer(r);
      if (!month) setMonth(r.month);
    }, setError);
  }, [month]);
  const cols = METRICS;
  return html`
    <h1>Usage</h1>
    <div class="filters">
      <label>Month <input type="month" value=${month} max=${thisMonth()} required
        onChange=${(e) => e.currentTarget.value && setMonth(e.currentTarget.value)} /></label>
    </div>
    <${ErrorBanner} error=${error} />
    ${!answer && !error && html`<${Loading} what="usage" />`}
    ${answer && answer.tenants.length === 0 && html`<p class="muted">No tenants yet.</p>`}
    ${answer && answer.tenants.length > 0 && html`
      <div class="table-scroll">
        <table data-testid="usage-overview-table">
          <caption class="visually-hidden">Usage of every tenant in ${answer.month}, most API requests first</caption>
          <thead><tr><th scope="col">Tenant</th>${cols.map(([m, l]) => html`<th scope="col" class="num">${l}</th>`)}</tr></thead>
          <tbody>${answer.tenants.map((t) => html`
            <tr key=${t.tenant_id} data-tenant=${t.tenant_id}>
              <th scope="row"><${Link} href=${`/tenants/${t.tenant_id}/usage`}>${t.name}</${Link}> <code class="muted small">${t.tenant_id}</code></th>
              ${cols.map(([m]) => html`<td class=${'num' + (t.totals[m] ? '' : ' muted')} data-metric=${m}>${formatNumber(t.totals[m] || 0)}</td>`)}
            </tr>`)}
          </tbody>
        </table>
      </div>
      <p class="small muted">Totals for ${answer.month} (UTC). Sign-ins and browser sessions are not counted; API keys are.</p>`}
    <${PriceSettings} />`;
}
