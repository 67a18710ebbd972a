// Retrieval test: search one or several knowledge bases as an application would (keyword, semantic or
// hybrid, top k, score threshold, hybrid fusion and weights) and see each hit's document, heading path, page,
// scores and text with the query's terms marked. Highlights are [start, end) offsets in Unicode code
// points, so the text is sliced as code points (Array.from), and everything is built as text nodes.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link } from '../lib/router.js';
import { ErrorBanner, Loading, formatNumber } from '../lib/ui.js';
import { Crumbs, HeadingPath, datasetPath, documentPath, kbApi, kbPath } from './knowledge-common.js';

const FUSIONS = [
  ['relative_score', 'Relative score', 'each hit\'s BM25 and cosine, normalised and weighted'],
  ['rrf', 'Reciprocal rank', 'only the ranks in both lists count'],
];

const MODES = [
  ['hybrid', 'Hybrid', 'keywords and meaning, fused'],
  ['keyword', 'Keyword', 'BM25 full-text'],
  ['semantic', 'Semantic', 'embedding similarity'],
];

/**
 * The text as strings and <mark>s: ranges are [start, end) in code points; overlapping or unordered
 * ranges are merged, ranges outside the text are clipped.
 */
export function highlightParts(text, ranges) {
  const chars = Array.from(text || '');
  const valid = (ranges || [])
    .filter((r) => Array.isArray(r) && r.length === 2 && Number.isInteger(r[0]) && Number.isInteger(r[1]))
    .map(([s, e]) => [Math.max(0, s), Math.min(chars.length, e)])
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0]);
  const parts = [];
  let at = 0;
  for (const [s, e] of valid) {
    const start = Math.max(s, at);
    if (e <= start) continue;
    if (start > at) parts.push(chars.slice(at, start).join(''));
    parts.push(html`<mark>${chars.slice(start, e).join('')}</mark>`);
    at = e;
  }
  if (at < chars.length) parts.push(chars.slice(at).join(''));
  return parts;
}

const score = (n) => (n === null || n === undefined ? null : Number(n).toFixed(Math.abs(n) >= 10 ? 2 : 3));

function Hit({ tenant, hit, rank, datasetName }) {
  const meta = [];
  if (hit.document_title && hit.document_title !== hit.filename) meta.push(html`<code>${hit.filename}</code>`);
  if (datasetName) meta.push(datasetName);
  if (hit.page !== null && hit.page !== undefined) meta.push(`page ${hit.page}`);
  meta.push(`segment #${hit.position + 1}`);
  return html`
    <li class="kb-hit card" data-testid="kb-hit" data-document=${hit.filename} data-rank=${rank}>
      <div class="kb-hit-head">
        <span class="kb-rank" aria-hidden="true">${rank}</span>
        <div class="kb-hit-title">
          <${Link} href=${documentPath(tenant, hit.dataset_id, hit.document_id)}>${hit.document_title || hit.filename}</${Link}>
          <span class="small muted">${' '}${meta.map((m, i) => html`${i > 0 ? ' · ' : ''}${m}`)}</span>
        </div>
        <div class="kb-scores small" data-testid="kb-hit-scores">
          <span class="kb-score" title="Score">score <strong>${score(hit.score)}</strong></span>
          ${hit.keyword_score !== null && hit.keyword_score !== undefined && html`<span>keyword ${score(hit.keyword_score)}</span>`}
          ${hit.semantic_score !== null && hit.semantic_score !== undefined && html`<span>semantic ${score(hit.semantic_score)}</span>`}
        </div>
      </div>
      <${HeadingPath} path=${hit.heading_path} />
      <p class="kb-segment-text" data-testid="kb-hit-text">${highlightParts(hit.text, hit.highlights)}</p>
    </li>`;
}

/** /tenants/{t}/retrieval and /tenants/{t}/knowledge/{dataset}/retrieval. */
export function RetrievalTest({ tenant, dataset }) {
  const [datasets, setDatasets] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [chosen, setChosen] = useState(dataset ? [dataset] : []);
  const [query, setQuery] = useState('');
  const [mode, setMode] = useState('hybrid');
  const [topK, setTopK] = useState('5');
  const [threshold, setThreshold] = useState('');
  const [weights, setWeights] = useState({ keyword: '0.5', semantic: '0.5' });
  const [fusion, setFusion] = useState('relative_score');
  const [answer, setAnswer] = useState(null);
  const [asked, setAsked] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.get(`${kbApi(tenant)}/datasets`).then((r) => {
      setDatasets(r.datasets);
      // Without a dataset in the path: all of them.
      if (!dataset) setChosen(r.datasets.map((d) => d.id));
    }, setLoadError);
  }, [tenant]);

  async function search(event) {
    event.preventDefault();
    if (!query.trim() || chosen.length === 0) return;
    setError(null);
    setBusy(true);
    const body = { query: query.trim(), dataset_ids: chosen, mode, top_k: Number(topK) };
    if (threshold.trim() !== '') body.score_threshold = Number(threshold);
    if (mode === 'hybrid') {
      body.weights = { keyword: Number(weights.keyword), semantic: Number(weights.semantic) };
      body.fusion = fusion;
    }
    try {
      setAnswer(await api.post(`${kbApi(tenant)}/datasets/search`, body));
      setAsked(body);
    } catch (e) {
      setError(e);
      setAnswer(null);
    } finally {
      setBusy(false);
    }
  }

  const one = dataset && datasets ? datasets.find((d) => d.id === dataset) : null;
  const crumbs = html`<${Crumbs} items=${[[kbPath(tenant), 'Knowledge'], ...(one ? [[datasetPath(tenant, one.id), one.name]] : []), [null, 'Retrieval test']]} />`;
  if (loadError) return html`${crumbs}<h1>Retrieval test</h1><${ErrorBanner} error=${loadError} />`;
  if (!datasets) return html`${crumbs}<h1>Retrieval test</h1><${Loading} what="knowledge bases" />`;
  if (datasets.length === 0) {
    return html`${crumbs}<h1>Retrieval test</h1><p class="muted">No knowledge bases yet: <${Link} href=${kbPath(tenant)}>create one</${Link}> and upload documents first.</p>`;
  }
  const names = Object.fromEntries(datasets.map((d) => [d.id, d.name]));
  const toggle = (id, on) => setChosen(on ? [...new Set([...chosen, id])] : chosen.filter((c) => c !== id));
  return html`
    ${crumbs}
    <h1>Retrieval test</h1>
    <p class="muted">Search as an application would through <code>POST /datasets/search</code>: only ready documents are found.</p>
    <form class="card kb-search" onSubmit=${search} aria-label="Retrieval test" data-testid="kb-search">
      <fieldset class="kb-datasets"><legend>Knowledge bases</legend>
        ${datasets.map((d) => html`
          <label class="check" key=${d.id}><input type="checkbox" checked=${chosen.includes(d.id)} onChange=${(e) => toggle(d.id, e.currentTarget.checked)} />
            ${d.name} <span class="small muted">(${formatNumber(d.ready_count)} ready)</span></label>`)}
      </fieldset>
      <label class="block">Query
        <textarea rows="2" value=${query} required onInput=${(e) => setQuery(e.currentTarget.value)}
          onKeyDown=${(e) => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) search(e); }}
          placeholder="How do I rotate an API key?"></textarea></label>
      <div class="inline-form">
        <fieldset class="kb-modes"><legend>Mode</legend>
          ${MODES.map(([value, label, help]) => html`
            <label class="check" key=${value} title=${help}><input type="radio" name="kb-mode" value=${value} checked=${mode === value}
              onChange=${() => setMode(value)} /> ${label}</label>`)}
        </fieldset>
        <label>Top k <input type="number" min="1" max="100" step="1" required size="4" value=${topK} onInput=${(e) => setTopK(e.currentTarget.value)} /></label>
        <label>Score threshold <input type="number" step="any" size="6" value=${threshold} placeholder="none"
          onInput=${(e) => setThreshold(e.currentTarget.value)} /></label>
        ${mode === 'hybrid' && html`
          <label>Fusion <select value=${fusion} onChange=${(e) => setFusion(e.currentTarget.value)}>
            ${FUSIONS.map(([value, label, help]) => html`<option key=${value} value=${value} title=${help}>${label}</option>`)}
          </select></label>
          <label>Keyword weight <input type="number" min="0" max="1" step="0.05" size="5" value=${weights.keyword}
            onInput=${(e) => setWeights({ ...weights, keyword: e.currentTarget.value })} /></label>
          <label>Semantic weight <input type="number" min="0" max="1" step="0.05" size="5" value=${weights.semantic}
            onInput=${(e) => setWeights({ ...weights, semantic: e.currentTarget.value })} /></label>`}
        <button type="submit" disabled=${busy || !query.trim() || chosen.length === 0}>${busy ? 'Searching…' : 'Search'}</button>
      </div>
      ${chosen.length === 0 && html`<p class="small bad">Choose at least one knowledge base.</p>`}
    </form>
    <${ErrorBanner} error=${error} />
    <div aria-live="polite" class="kb-results">
      ${answer && html`
        <p class="small muted" data-testid="kb-took">${answer.hits.length} ${answer.hits.length === 1 ? 'hit' : 'hits'} in ${answer.took_ms} ms
          (${answer.mode}${asked && asked.score_threshold !== undefined ? `, score ≥ ${asked.score_threshold}` : ''}).</p>
        ${answer.hits.length === 0
          ? html`<p class="muted" data-testid="kb-no-hits">Nothing matched. Try other words, another mode or a lower threshold.</p>`
          : html`<ol class="kb-hits" data-testid="kb-hits">${answer.hits.map((h, i) => html`
              <${Hit} key=${h.segment_id} tenant=${tenant} hit=${h} rank=${i + 1} datasetName=${chosen.length > 1 ? names[h.dataset_id] : null} />`)}
            </ol>`}`}
    </div>`;
}
