// Models: the installed local models (kind, size, shape, state) and how to add one.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading, formatBytes, formatTime } from '../lib/ui.js';
import { Link } from '../lib/router.js';
import { useSession } from '../lib/session.js';

const STATE_PILL = { ready: 'pill-ok', remote: 'pill-ok', loading: '', failed: 'pill-corrupt' };

// "name=upstream (kind)" per line ⇄ the API's model list.
function parseModelLines(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const m = line.match(/^([^=\s]+)\s*=\s*(\S+)(?:\s+\((chat|embedding)\))?$/);
    if (!m) throw new Error(`"${line}": write one model per line as local-name=upstream-name (chat) or (embedding)`);
    return { name: m[1], upstream: m[2], kind: m[3] || 'chat' };
  });
}

// System administrators: the external OpenAI-compatible endpoints some model names are routed to.
function Providers({ onChange }) {
  const [providers, setProviders] = useState(null);
  const [error, setError] = useState(null);
  const empty = { name: '', base_url: '', api_key: '', models: '' };
  const [form, setForm] = useState(empty);
  const load = () => api.get('/api/v1/providers').then((r) => setProviders(r.providers), setError);
  useEffect(() => { load(); }, []);

  async function add(e) {
    e.preventDefault();
    setError(null);
    try {
      const models = parseModelLines(form.models);
      await api.post('/api/v1/providers', { name: form.name, base_url: form.base_url, api_key: form.api_key || undefined, models });
      setForm(empty);
      load();
      onChange();
    } catch (err) {
      setError(err);
    }
  }

  async function remove(p) {
    if (!confirm(`Remove the provider ${p.name}? Its models stop answering at once.`)) return;
    setError(null);
    try {
      await api.del(`/api/v1/providers/${p.id}`);
      load();
      onChange();
    } catch (err) {
      setError(err);
    }
  }

  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  return html`
    <section class="card" aria-labelledby="providers-h">
      <h2 id="providers-h">External providers</h2>
      <p class="small muted">OpenAI-compatible servers (vLLM, Ollama, another Enclave) that answer some model names, under the
        same keys, quotas and metering. Their API keys are stored encrypted and never shown again.</p>
      <${ErrorBanner} error=${error} />
      ${providers && providers.length > 0 && html`
        <table class="dense" data-testid="providers">
          <thead><tr><th scope="col">Provider</th><th scope="col">Base URL</th><th scope="col">Models</th><th scope="col">Key</th><th scope="col"></th></tr></thead>
          <tbody>${providers.map((p) => html`
            <tr key=${p.id} data-provider=${p.name}>
              <td>${p.name}</td><td><code>${p.base_url}</code></td>
              <td class="small">${p.models.map((m) => `${m.name} = ${m.upstream} (${m.kind})`).join(', ')}</td>
              <td>${p.api_key_set ? 'stored' : 'none'}</td>
              <td><button type="button" class="secondary" onClick=${() => remove(p)}>Remove</button></td>
            </tr>`)}</tbody>
        </table>`}
      <form onSubmit=${add} aria-label="Add a provider">
        <div class="inline-form">
          <label>Name <input required value=${form.name} onInput=${set('name')} /></label>
          <label>Base URL <input required value=${form.base_url} onInput=${set('base_url')} placeholder="http://gpu-box:8000/v1" size="32" /></label>
          <label>API key <input type="password" autocomplete="off" value=${form.api_key} onInput=${set('api_key')} /></label>
        </div>
        <label class="block">Models, one per line: local-name=upstream-name (chat) or (embedding)
          <textarea rows="2" required value=${form.models} onInput=${set('models')} placeholder="llama-70b=meta-llama/Llama-3.3-70B-Instruct (chat)"></textarea></label>
        <button type="submit">Add provider</button>
      </form>
    </section>`;
}

export function Models() {
  const { info } = useSession();
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);

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
  }, [version]);

  if (error) return html`<h1>Models</h1><${ErrorBanner} error=${error} />`;
  if (!answer) return html`<h1>Models</h1><${Loading} what="models" />`;
  const kinds = ['chat', 'embedding'];
  const missing = kinds.filter((k) => !answer.models.some((m) => m.kind === k && (m.state === 'ready' || m.state === 'remote')));
  return html`
    <h1>Models</h1>
    <p class="muted">Models run on this server's CPU; nothing is sent elsewhere. Use them in the <${Link} href="/playground">playground</${Link}> or
      through the OpenAI-compatible API at <code>/v1</code> with an API key that has the <code>inference</code> scope.</p>
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
            <td class="num">${m.provider ? '' : formatBytes(m.bytes)}</td>
            <td class="small">${m.provider ? `served by ${m.provider}` : m.kind === 'chat' ? `context ${m.context_length ?? '?'} tokens` : `${m.dimensions} dimensions, up to ${m.max_seq_length} tokens`}</td>
            <td class="small">${m.format}${m.quantization ? ` ${m.quantization}` : ''}</td>
            <td class="small">${m.license || ''}</td>
          </tr>`)}
      </tbody>
    </table>
    ${answer.models.length === 0 && html`<p class="muted" data-testid="models-empty">No models are installed.</p>`}
    <section class="card" aria-labelledby="models-add-h">
      <h2 id="models-add-h">Adding a model</h2>
      <p>On the server: <code>enclave models import /path/to/model.gguf</code> (a llama-family chat model) or <code>enclave models import /path/to/embedding-model/</code> (a
        sentence-transformers directory), then restart. The import checks the files, converts slow GGUF formats to Q8_0, loads the
        model once and records its checksums; <code>enclave models verify</code> checks them later.</p>
    </section>
    ${info && info.user.is_system_admin && html`<${Providers} onChange=${() => setVersion(version + 1)} />`}`;
}
