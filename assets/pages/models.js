// Models: the installed local models (kind, size, shape, state) and how to add one.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatBytes, formatTime } from '../lib/ui.js';
import { Link } from '../lib/router.js';

const STATE_PILL = { ready: 'pill-ok', loading: '', failed: 'pill-corrupt' };

export function Models() {
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    let timer;
    const load = () => api.get('/api/v1/models').then((r) => {
      setAnswer(r);
      setError(null);
      // While a model is still loading, look again shortly.
      if (r.models.some((m) => m.state === 'loading')) timer = setTimeout(load, 2000);
    }, setError);
    load();
    return () => clearTimeout(timer);
  }, []);

  if (error) return html`<h1>Models</h1><${ErrorBanner} error=${error} />`;
  if (!answer) return html`<h1>Models</h1><${Loading} what="models" />`;
  const kinds = ['chat', 'embedding'];
  const missing = kinds.filter((k) => !answer.models.some((m) => m.kind === k && m.state === 'ready'));
  return html`
    <h1>Models</h1>
    <p class="muted">Models run on this server's CPU; nothing is sent elsewhere. Use them in the
      <${Link} href="/playground">playground</${Link}> or through the OpenAI-compatible API at <code>/v1</code>
      with an API key that has the <code>inference</code> scope.</p>
    ${missing.length > 0 && html`
      <div class="banner banner-warn" role="status" data-testid="models-unavailable">
        No ${missing.join(' or ')} model is ready: ${missing.includes('chat') ? 'chat completions ' : ''}${missing.length === 2 ? 'and ' : ''}${missing.includes('embedding') ? 'embeddings ' : ''}are unavailable until one is installed.
        On the server run <code>scripts/fetch-models.sh</code> (the defaults) or <code>enclave models import PATH</code>, then restart Enclave.
      </div>`}
    <table data-testid="models-table">
      <thead><tr><th scope="col">Model</th><th scope="col">Kind</th><th scope="col">State</th><th scope="col" class="num">Size</th>
        <th scope="col">Shape</th><th scope="col">Format</th><th scope="col">Licence</th></tr></thead>
      <tbody>
        ${answer.models.map((m) => html`
          <tr key=${m.name} data-model=${m.name}>
            <td>${m.name}${(m.name === answer.default_chat_model || m.name === answer.default_embedding_model) ? html` <span class="pill">default</span>` : null}
              ${m.imported_at && html`<div class="small muted">imported ${formatTime(m.imported_at)}</div>`}</td>
            <td>${m.kind}</td>
            <td><span class=${'pill ' + (STATE_PILL[m.state] || '')}>${m.state}</span>
              ${m.error && html`<div class="small bad">${m.error}</div>`}</td>
            <td class="num">${formatBytes(m.bytes)}</td>
            <td class="small">${m.kind === 'chat' ? `context ${m.context_length ?? '?'} tokens` : `${m.dimensions} dimensions, up to ${m.max_seq_length} tokens`}</td>
            <td class="small">${m.format}${m.quantization ? ` ${m.quantization}` : ''}</td>
            <td class="small">${m.license || ''}</td>
          </tr>`)}
      </tbody>
    </table>
    ${answer.models.length === 0 && html`<p class="muted" data-testid="models-empty">No models are installed.</p>`}
    <section class="card" aria-labelledby="models-add-h">
      <h2 id="models-add-h">Adding a model</h2>
      <p>On the server: <code>enclave models import /path/to/model.gguf</code> (a llama-family chat model) or
        <code>enclave models import /path/to/embedding-model/</code> (a sentence-transformers directory), then restart.
        The import checks the files, converts slow GGUF formats to Q8_0, loads the model once and records its checksums;
        <code>enclave models verify</code> checks them later.</p>
    </section>`;
}
