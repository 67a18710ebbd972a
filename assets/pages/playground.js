// Playground: chat with a local model (streamed token by token, with its parameters and token counts)
// and an embeddings similarity tester. It calls the same OpenAI-compatible /v1 API that API keys use,
// naming the tenant in the Enclave-Tenant header, so usage is metered and quotas apply as for any client.
import { html, useEffect, useRef, useState } from '../vendor/htm-preact-3.1.1.js';
import { api, streamEvents } from '../lib/api.js';
import { ErrorBanner, Loading } from '../lib/ui.js';

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb) || 1);
}

function numberOrUndefined(text) {
  const t = String(text).trim();
  return t === '' ? undefined : Number(t);
}

function Chat({ tenant, models }) {
  const chatModels = models.filter((m) => m.kind === 'chat' && m.state === 'ready');
  const [model, setModel] = useState(chatModels[0] ? chatModels[0].name : '');
  const [system, setSystem] = useState('You are a helpful assistant.');
  const [turns, setTurns] = useState([]);
  const [input, setInput] = useState('');
  const [params, setParams] = useState({ temperature: '0.7', top_p: '0.95', max_tokens: '256', seed: '' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [usage, setUsage] = useState(null);
  const abort = useRef(null);

  if (chatModels.length === 0) {
    return html`<p class="muted" data-testid="no-chat-model">No chat model is ready (see Models).</p>`;
  }

  async function send(e) {
    e.preventDefault();
    if (!input.trim() || busy) return;
    setError(null);
    setUsage(null);
    const history = [...turns, { role: 'user', content: input }];
    const messages = [...(system.trim() ? [{ role: 'system', content: system }] : []), ...history];
    setTurns([...history, { role: 'assistant', content: '', streaming: true }]);
    setInput('');
    setBusy(true);
    const controller = new AbortController();
    abort.current = controller;
    let answer = '';
    let finish = null;
    const body = {
      model, messages, stream: true, stream_options: { include_usage: true },
      temperature: numberOrUndefined(params.temperature), top_p: numberOrUndefined(params.top_p),
      max_tokens: numberOrUndefined(params.max_tokens), seed: numberOrUndefined(params.seed),
    };
    try {
      await streamEvents('/v1/chat/completions', body, { 'Enclave-Tenant': tenant }, (event) => {
        if (event.error) throw Object.assign(new Error(event.error.message), { code: event.error.code });
        if (event.usage) setUsage(event.usage);
        const choice = event.choices && event.choices[0];
        if (!choice) return;
        if (choice.delta && choice.delta.content) {
          answer += choice.delta.content;
          setTurns([...history, { role: 'assistant', content: answer, streaming: true }]);
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }, controller.signal);
    } catch (err) {
      setError(err);
    } finally {
      setTurns([...history, { role: 'assistant', content: answer, finish: controller.signal.aborted ? 'stopped' : finish }]);
      setBusy(false);
      abort.current = null;
    }
  }

  const field = (name, label, attrs = {}) => html`
    <label>${label}<input value=${params[name]} inputmode="decimal" size="6" aria-label=${label}
      onInput=${(e) => setParams({ ...params, [name]: e.currentTarget.value })} ...${attrs} /></label>`;

  return html`
    <form class="card" onSubmit=${send} aria-label="Chat">
      <div class="inline-form">
        <label>Model <select value=${model} onChange=${(e) => setModel(e.currentTarget.value)} aria-label="Chat model">
          ${chatModels.map((m) => html`<option value=${m.name}>${m.name}</option>`)}</select></label>
        ${field('temperature', 'Temperature')}
        ${field('top_p', 'Top p')}
        ${field('max_tokens', 'Max tokens')}
        ${field('seed', 'Seed', { placeholder: 'random' })}
      </div>
      <label class="block">System prompt
        <textarea rows="2" value=${system} onInput=${(e) => setSystem(e.currentTarget.value)}></textarea></label>
      <div class="conversation" data-testid="conversation" aria-live="polite">
        ${turns.map((t, i) => html`
          <div key=${i} class=${'turn turn-' + t.role} data-role=${t.role}>
            <strong>${t.role === 'user' ? 'You' : 'Model'}</strong>
            <div class="turn-text">${t.content}${t.streaming ? html`<span class="cursor">▍</span>` : null}</div>
            ${t.finish && html`<div class="small muted" data-testid="finish">finish: ${t.finish}</div>`}
          </div>`)}
      </div>
      <${ErrorBanner} error=${error} />
      <label class="block">Message
        <textarea rows="3" value=${input} onInput=${(e) => setInput(e.currentTarget.value)} aria-label="Message"
          onKeyDown=${(e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send(e); }}></textarea></label>
      <div class="inline-form">
        <button type="submit" disabled=${busy || !input.trim()}>${busy ? 'Generating…' : 'Send'}</button>
        ${busy && html`<button type="button" onClick=${() => abort.current && abort.current.abort()}>Stop</button>`}
        <button type="button" disabled=${busy || turns.length === 0} onClick=${() => { setTurns([]); setUsage(null); }}>New conversation</button>
        ${usage && html`<span class="small muted" data-testid="usage">${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens</span>`}
      </div>
    </form>`;
}

function Similarity({ tenant, models }) {
  const embeddingModels = models.filter((m) => m.kind === 'embedding' && m.state === 'ready');
  const [model, setModel] = useState(embeddingModels[0] ? embeddingModels[0].name : '');
  const [text, setText] = useState('The cat sits on the mat.\nA kitten is resting on a rug.\nQuarterly revenue grew by 8 percent.');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  if (embeddingModels.length === 0) {
    return html`<p class="muted" data-testid="no-embedding-model">No embedding model is ready (see Models).</p>`;
  }

  async function compare(e) {
    e.preventDefault();
    const inputs = text.split('\n').map((l) => l.trim()).filter(Boolean);
    setError(null);
    setBusy(true);
    try {
      const r = await api.postWith('/v1/embeddings', { model, input: inputs }, { 'Enclave-Tenant': tenant });
      setResult({ inputs, vectors: r.data.map((d) => d.embedding), truncated: r.data.map((d) => d.truncated), tokens: r.usage.prompt_tokens });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <form class="card" onSubmit=${compare} aria-label="Similarity">
      <div class="inline-form">
        <label>Model <select value=${model} onChange=${(e) => setModel(e.currentTarget.value)} aria-label="Embedding model">
          ${embeddingModels.map((m) => html`<option value=${m.name}>${m.name}</option>`)}</select></label>
      </div>
      <label class="block">Texts, one per line
        <textarea rows="4" value=${text} onInput=${(e) => setText(e.currentTarget.value)} aria-label="Texts"></textarea></label>
      <button type="submit" disabled=${busy}>${busy ? 'Embedding…' : 'Compare'}</button>
      <${ErrorBanner} error=${error} />
      ${result && html`
        <table class="dense" data-testid="similarity">
          <thead><tr><th scope="col">Cosine similarity</th>${result.inputs.map((_, j) => html`<th scope="col" class="num">#${j + 1}</th>`)}</tr></thead>
          <tbody>${result.inputs.map((t, i) => html`
            <tr key=${i}><th scope="row" class="small">#${i + 1} ${t}${result.truncated[i] ? ' (truncated)' : ''}</th>
              ${result.inputs.map((_, j) => html`<td class="num">${cosine(result.vectors[i], result.vectors[j]).toFixed(3)}</td>`)}</tr>`)}
          </tbody>
        </table>
        <p class="small muted">${result.tokens} tokens, ${result.vectors[0].length} dimensions.</p>`}
    </form>`;
}

export function Playground() {
  const [tenants, setTenants] = useState(null);
  const [models, setModels] = useState(null);
  const [tenant, setTenant] = useState('');
  const [tab, setTab] = useState('chat');
  const [error, setError] = useState(null);

  useEffect(() => {
    api.get('/api/v1/tenants').then((r) => {
      setTenants(r.tenants);
      if (r.tenants.length > 0) setTenant(r.tenants[0].id);
    }, setError);
    api.get('/api/v1/models').then((r) => setModels(r.models), setError);
  }, []);

  if (error) return html`<h1>Playground</h1><${ErrorBanner} error=${error} />`;
  if (!tenants || !models) return html`<h1>Playground</h1><${Loading} what="tenants and models" />`;
  if (tenants.length === 0) {
    return html`<h1>Playground</h1><p class="muted" data-testid="no-tenant">You are not a member of a tenant yet: usage is counted per tenant, so the playground needs one.</p>`;
  }
  return html`
    <h1>Playground</h1>
    <div class="inline-form">
      <label>Tenant (usage is counted here) <select value=${tenant} onChange=${(e) => setTenant(e.currentTarget.value)} aria-label="Tenant">
        ${tenants.map((t) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>
      <div role="tablist" class="tabs">
        <button type="button" role="tab" class=${'tab' + (tab === 'chat' ? ' active' : '')} aria-selected=${tab === 'chat'} onClick=${() => setTab('chat')}>Chat</button>
        <button type="button" role="tab" class=${'tab' + (tab === 'similarity' ? ' active' : '')} aria-selected=${tab === 'similarity'} onClick=${() => setTab('similarity')}>Embeddings similarity</button>
      </div>
    </div>
    ${tab === 'chat' ? html`<${Chat} tenant=${tenant} models=${models} />` : html`<${Similarity} tenant=${tenant} models=${models} />`}`;
}
