// The app editor (editors): settings (model, generation, knowledge bases, retrieval, opening statement,
// suggested questions, input variables, history, annotation threshold, published), the prompt editor
// with its version history (diff against the pinned version, restore), export, an "API access" panel
// that issues an app key, deletion — and beside them a live "Debug and preview" chat with the saved app.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link, navigate } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';
import { Crumbs, kbApi, kbPath, roleIn } from './knowledge-common.js';
import {
  CitationDialog, Composer, SuggestedQuestions, Turn, appAnnotationsPath, appApi, appChatPath, appsPath, canEditApps, canSeeLogs,
  lines, logsPath, useAsk,
} from './apps-common.js';

const MODES = [['hybrid', 'Hybrid'], ['keyword', 'Keyword'], ['semantic', 'Semantic']];
const str = (v) => (v === null || v === undefined ? '' : String(v));

// ---------------------------------------------------------------------------------------------------
// Settings.

function toForm(app) {
  const c = app.config || {};
  const r = c.retrieval || {};
  return {
    name: app.name, description: app.description || '', published: !!app.published,
    model: c.model || '', temperature: str(c.temperature), max_tokens: str(c.max_tokens), stop: (c.stop || []).join('\n'),
    dataset_ids: [...(c.dataset_ids || [])],
    mode: r.mode || 'hybrid', top_k: str(r.top_k), score_threshold: str(r.score_threshold),
    opening_statement: c.opening_statement || '', suggested_questions: (c.suggested_questions || []).join('\n'),
    inputs: (c.inputs || []).map((v) => ({ ...v, label: v.label || '', required: !!v.required })),
    history_tokens: str(c.history_tokens), annotation_threshold: str(c.annotation_threshold),
  };
}

const num = (text) => (String(text).trim() === '' ? null : Number(text));

/** The PATCH body: the configuration GET returned, changed (config replaces the whole configuration). */
function toBody(form, app) {
  const c = app.config || {};
  return {
    name: form.name.trim(), description: form.description.trim(), published: form.published,
    config: {
      ...c,
      model: form.model || null,
      temperature: num(form.temperature), max_tokens: num(form.max_tokens), stop: form.stop.split('\n').filter((s) => s !== ''),
      dataset_ids: form.dataset_ids,
      retrieval: { ...(c.retrieval || {}), mode: form.mode, top_k: num(form.top_k), score_threshold: num(form.score_threshold) },
      opening_statement: form.opening_statement, suggested_questions: lines(form.suggested_questions),
      inputs: form.inputs.map((v) => ({ ...v, name: v.name.trim(), label: v.label.trim() || v.name.trim(), required: !!v.required })),
      history_tokens: num(form.history_tokens), annotation_threshold: num(form.annotation_threshold),
    },
  };
}

function InputVariables({ inputs, onChange }) {
  const set = (i, key, value) => onChange(inputs.map((v, j) => (j === i ? { ...v, [key]: value } : v)));
  return html`
    <fieldset class="app-vars" data-testid="app-vars"><legend>Input variables</legend>
      <p class="small muted">Fields people fill in before chatting; the prompt uses them as <code>{{name}}</code>.</p>
      ${inputs.map((v, i) => html`
        <div class="app-var-row" key=${i} data-var=${v.name}>
          <label>Name <input value=${v.name} required pattern="[a-z][a-z0-9_]{0,31}" maxlength="32" aria-label=${`Variable ${i + 1} name`}
            onInput=${(e) => set(i, 'name', e.currentTarget.value)} placeholder="department" /></label>
          <label>Label <input value=${v.label} maxlength="100" aria-label=${`Variable ${i + 1} label`}
            onInput=${(e) => set(i, 'label', e.currentTarget.value)} placeholder="Department" /></label>
          <label class="check"><input type="checkbox" checked=${v.required} onChange=${(e) => set(i, 'required', e.currentTarget.checked)} /> Required</label>
          <button type="button" class="secondary" onClick=${() => onChange(inputs.filter((_, j) => j !== i))}>Remove<span class="visually-hidden"> variable ${v.name || i + 1}</span></button>
        </div>`)}
      <button type="button" class="secondary" disabled=${inputs.length >= 20}
        onClick=${() => onChange([...inputs, { name: '', label: '', required: false }])}>Add variable</button>
    </fieldset>`;
}

function Settings({ tenant, app, datasets, models, onSaved }) {
  const [form, setForm] = useState(() => toForm(app));
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const update = (patch) => { setSaved(false); setForm({ ...form, ...patch }); };
  const set = (key) => (e) => update({ [key]: e.currentTarget.value });
  const chat = models ? models.models.filter((m) => m.kind === 'chat') : [];

  async function save(event) {
    event.preventDefault();
    setError(null);
    setSaved(false);
    setBusy(true);
    try {
      const updated = await api.patch(appApi(tenant, app.id), toBody(form, app));
      setForm(toForm(updated));
      setSaved(true);
      onSaved(updated);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  const toggleDataset = (id, on) => update({ dataset_ids: on ? [...new Set([...form.dataset_ids, id])] : form.dataset_ids.filter((d) => d !== id) });
  // Knowledge bases named by the app that no longer exist (skipped at answer time).
  const gone = datasets ? form.dataset_ids.filter((id) => !datasets.some((d) => d.id === id)) : [];
  return html`
    <form class="card form app-settings" onSubmit=${save} aria-labelledby="app-settings-h" data-testid="app-settings">
      <h2 id="app-settings-h">Settings</h2>
      <div class="field"><label for="app-name">Name</label>
        <input id="app-name" required maxlength="100" value=${form.name} onInput=${set('name')} /></div>
      <div class="field"><label for="app-description">Description</label>
        <textarea id="app-description" rows="2" maxlength="2000" value=${form.description} onInput=${set('description')}></textarea></div>

      <h3>Model</h3>
      <div class="grid-2">
        <div class="field"><label for="app-model">Model</label>
          <select id="app-model" value=${form.model} onChange=${set('model')}>
            <option value="">Default${models && models.default_chat_model ? ` (${models.default_chat_model})` : ''}</option>
            ${chat.map((m) => html`<option value=${m.name}>${m.name}${m.provider ? ` (${m.provider})` : m.state === 'ready' || m.state === 'remote' ? '' : ` (${m.state})`}</option>`)}
            ${form.model && !chat.some((m) => m.name === form.model) && html`<option value=${form.model}>${form.model} (not installed)</option>`}
          </select></div>
        <div class="field"><label for="app-temperature">Temperature</label>
          <input id="app-temperature" type="number" min="0" max="2" step="any" required value=${form.temperature} onInput=${set('temperature')}
            aria-describedby="app-temperature-help" />
          <p id="app-temperature-help" class="small muted">0 answers the same way every time; up to 2.</p></div>
        <div class="field"><label for="app-max-tokens">Max tokens</label>
          <input id="app-max-tokens" type="number" min="1" step="1" required value=${form.max_tokens} onInput=${set('max_tokens')} /></div>
        <div class="field"><label for="app-stop">Stop strings <span class="muted">(one per line, up to 4)</span></label>
          <textarea id="app-stop" rows="2" value=${form.stop} onInput=${set('stop')}></textarea></div>
      </div>

      <h3>Knowledge</h3>
      <fieldset class="app-datasets" data-testid="app-datasets"><legend>Knowledge bases</legend>
        ${datasets === null && html`<span class="small muted">Loading…</span>`}
        ${datasets && datasets.length === 0 && html`<span class="small muted">No knowledge bases yet: <${Link} href=${kbPath(tenant)}>create one</${Link}>.</span>`}
        ${datasets && datasets.map((d) => html`
          <label class="check" key=${d.id}><input type="checkbox" checked=${form.dataset_ids.includes(d.id)}
            onChange=${(e) => toggleDataset(d.id, e.currentTarget.checked)} /> ${d.name}
            <span class="small muted">(${d.ready_count} ready)</span></label>`)}
        ${gone.length > 0 && html`<span class="small bad">${gone.length} linked knowledge ${gone.length === 1 ? 'base no longer exists' : 'bases no longer exist'} (skipped when answering).</span>`}
      </fieldset>
      <div class="grid-3">
        <div class="field"><label for="app-mode">Retrieval mode</label>
          <select id="app-mode" value=${form.mode} onChange=${set('mode')}>
            ${MODES.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></div>
        <div class="field"><label for="app-top-k">Top k</label>
          <input id="app-top-k" type="number" min="1" max="20" step="1" required value=${form.top_k} onInput=${set('top_k')} /></div>
        <div class="field"><label for="app-threshold">Score threshold</label>
          <input id="app-threshold" type="number" step="any" value=${form.score_threshold} placeholder="none" onInput=${set('score_threshold')} /></div>
      </div>

      <h3>Conversation</h3>
      <div class="field"><label for="app-opening">Opening statement</label>
        <textarea id="app-opening" rows="2" value=${form.opening_statement} onInput=${set('opening_statement')}
          placeholder="Ask me about leave, expenses and travel."></textarea></div>
      <div class="field"><label for="app-suggested">Suggested questions <span class="muted">(one per line, up to 10)</span></label>
        <textarea id="app-suggested" rows="3" value=${form.suggested_questions} onInput=${set('suggested_questions')}></textarea></div>
      <${InputVariables} inputs=${form.inputs} onChange=${(inputs) => update({ inputs })} />
      <div class="grid-2">
        <div class="field"><label for="app-history">History tokens</label>
          <input id="app-history" type="number" min="0" max="8192" step="1" required value=${form.history_tokens} onInput=${set('history_tokens')}
            aria-describedby="app-history-help" />
          <p id="app-history-help" class="small muted">Earlier turns kept for context (0 forgets them).</p></div>
        <div class="field"><label for="app-annotation-threshold">Annotation threshold</label>
          <input id="app-annotation-threshold" type="number" min="0.5" max="1" step="any" required value=${form.annotation_threshold}
            onInput=${set('annotation_threshold')} aria-describedby="app-annotation-help" />
          <p id="app-annotation-help" class="small muted">How close a question must be to an annotated one (0.5–1) for its answer to be used.</p></div>
      </div>

      <div class="field check"><input id="app-published" type="checkbox" checked=${form.published}
        onChange=${(e) => update({ published: e.currentTarget.checked })} />
        <label for="app-published">Published <span class="small muted">(employees and app keys can use it)</span></label></div>
      <${ErrorBanner} error=${error} />
      ${saved && html`<div class="banner banner-ok" role="status" data-testid="app-settings-saved">Saved the settings.</div>`}
      <button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Save settings'}</button>
    </form>`;
}

// ---------------------------------------------------------------------------------------------------
// Prompt and versions.

function Diff({ diff }) {
  const parts = ['system', 'user'];
  return html`
    <div class="app-diff" data-testid="prompt-diff">
      <p class="small muted">Version ${diff.from} → version ${diff.to}: <span class="app-diff-del">− removed</span> <span class="app-diff-ins">+ added</span></p>
      ${parts.map((part) => {
        const own = diff.lines.filter((l) => (l.part || 'system') === part);
        if (own.length === 0) return null;
        return html`
          <h4>${part === 'system' ? 'System' : 'User'}</h4>
          <pre class="app-diff-lines">${own.map((l, i) => html`<div key=${i} class=${'app-diff-line app-diff-' + l.op} data-op=${l.op}><span aria-hidden="true">${l.op === 'insert' ? '+ ' : l.op === 'delete' ? '− ' : '  '}</span><span class="visually-hidden">${l.op === 'insert' ? 'added: ' : l.op === 'delete' ? 'removed: ' : ''}</span>${l.text}</div>`)}</pre>`;
      })}
      ${diff.lines.every((l) => l.op === 'equal') && html`<p class="small muted">The two versions are the same.</p>`}
    </div>`;
}

function Versions({ tenant, app, versions, error, onRestored }) {
  const [diff, setDiff] = useState(null);
  const [diffError, setDiffError] = useState(null);
  const [actionError, setActionError] = useState(null);
  const [busy, setBusy] = useState(false);
  const pinned = app.prompt_version;
  async function showDiff(version) {
    setDiffError(null);
    try {
      setDiff(await api.get(`${appApi(tenant, app.id)}/prompt/diff?from=${version}&to=${pinned}`));
    } catch (e) {
      setDiffError(e);
      setDiff(null);
    }
  }
  async function restore(version) {
    setActionError(null);
    setBusy(true);
    try {
      const updated = await api.post(`${appApi(tenant, app.id)}/prompt/pin`, { version });
      setDiff(null);
      onRestored(updated);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <section aria-labelledby="app-versions-h" data-testid="prompt-versions">
      <h3 id="app-versions-h">Version history</h3>
      <${ErrorBanner} error=${error} />
      <${ErrorBanner} error=${actionError} />
      ${!versions && !error && html`<${Loading} what="versions" />`}
      ${versions && html`
        <div class="table-scroll">
          <table class="dense" data-testid="version-table">
            <caption class="visually-hidden">Prompt versions</caption>
            <thead><tr><th scope="col" class="num">Version</th><th scope="col">Note</th><th scope="col">Saved</th>
              <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>${versions.map((v) => html`
              <tr key=${v.version} data-version=${v.version} aria-current=${v.version === pinned ? 'true' : undefined}>
                <td class="num">${v.version}</td>
                <td>${v.note || html`<span class="muted">—</span>`}
                  ${v.version === pinned && html` <span class="pill pill-tone-ok" data-testid="pinned">pinned</span>`}</td>
                <td class="small">${formatTime(v.created_at)}${v.created_by ? html`<div class="muted">${v.created_by}</div>` : null}</td>
                <td><div class="actions">${v.version !== pinned && html`
                  <button type="button" class="secondary" onClick=${() => showDiff(v.version)}>Diff<span class="visually-hidden"> version ${v.version} against the pinned version</span></button>
                  <button type="button" class="secondary" disabled=${busy} onClick=${() => restore(v.version)}>Restore<span class="visually-hidden"> version ${v.version}</span></button>`}
                </div></td>
              </tr>`)}
            </tbody>
          </table>
        </div>`}
      <${ErrorBanner} error=${diffError} />
      ${diff && html`
        <div class="app-diff-box">
          <div class="card-head"><span></span><button type="button" class="secondary" onClick=${() => setDiff(null)}>Close diff</button></div>
          <${Diff} diff=${diff} />
        </div>`}
    </section>`;
}

function PromptEditor({ tenant, app, onSaved }) {
  const [system, setSystem] = useState((app.prompt && app.prompt.system) || '');
  const [user, setUser] = useState((app.prompt && app.prompt.user) || '');
  const [note, setNote] = useState('');
  const [error, setError] = useState(null);
  const [message, setMessage] = useState(null);
  const [busy, setBusy] = useState(false);
  const [versions, setVersions] = useState(null);
  const [versionsError, setVersionsError] = useState(null);
  const loadVersions = () => api.get(`${appApi(tenant, app.id)}/prompt/versions`).then((r) => { setVersions(r.versions); setVersionsError(null); }, setVersionsError);
  useEffect(() => { loadVersions(); }, [app.id, app.prompt_version]);
  // Another version pinned (restored): the editor shows its text.
  useEffect(() => {
    setSystem((app.prompt && app.prompt.system) || '');
    setUser((app.prompt && app.prompt.user) || '');
  }, [app.prompt_version]);

  const variables = ['question', 'context', ...((app.config && app.config.inputs) || []).map((v) => v.name)];
  const changed = !app.prompt || system !== app.prompt.system || user !== app.prompt.user;

  async function save(event) {
    event.preventDefault();
    setError(null);
    setMessage(null);
    setBusy(true);
    try {
      const body = { system, user };
      if (note.trim()) body.note = note.trim();
      const version = await api.post(`${appApi(tenant, app.id)}/prompt/versions`, body);
      setNote('');
      // Shown while that version is the one in use (a restore replaces it).
      setMessage({
        version: version.version,
        text: version.version === app.prompt_version
          ? `Nothing new: the text is that of version ${version.version}.`
          : `Saved as version ${version.version}, now in use.`,
      });
      onSaved(await api.get(appApi(tenant, app.id)));
      loadVersions();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <section class="card form app-prompt" aria-labelledby="app-prompt-h" data-testid="app-prompt">
      <h2 id="app-prompt-h">Prompt <span class="pill" data-testid="prompt-version">version ${app.prompt_version}</span></h2>
      <p class="small muted" data-testid="prompt-variables">Variables you can use:${' '}
        ${variables.map((v, i) => html`${i > 0 ? ' ' : ''}<code>${`{{${v}}}`}</code>`)}${' '}
        — <code>{{context}}</code> is the numbered passages found for the question. Input variables come from the saved settings.</p>
      <form onSubmit=${save}>
        <div class="field"><label for="app-system">System prompt</label>
          <textarea id="app-system" class="app-template" rows="8" value=${system} onInput=${(e) => { setMessage(null); setSystem(e.currentTarget.value); }}></textarea></div>
        <div class="field"><label for="app-user">User message</label>
          <textarea id="app-user" class="app-template" rows="2" value=${user} onInput=${(e) => { setMessage(null); setUser(e.currentTarget.value); }}></textarea></div>
        <div class="field"><label for="app-note">Note <span class="muted">(optional: what changed)</span></label>
          <input id="app-note" maxlength="200" value=${note} onInput=${(e) => setNote(e.currentTarget.value)} /></div>
        <${ErrorBanner} error=${error} />
        ${message && message.version === app.prompt_version && html`<div class="banner banner-ok" role="status" data-testid="prompt-saved">${message.text}</div>`}
        <div class="actions">
          <button type="submit" disabled=${busy || !changed}>${busy ? 'Saving…' : 'Save as new version'}</button>
          ${changed && html`<button type="button" class="secondary" onClick=${() => { setSystem(app.prompt.system); setUser(app.prompt.user); }}>Discard changes</button>`}
        </div>
      </form>
      <${Versions} tenant=${tenant} app=${app} versions=${versions} error=${versionsError} onRestored=${onSaved} />
    </section>`;
}

// ---------------------------------------------------------------------------------------------------
// API access, export, deletion.

function ApiAccess({ tenant, app, isAdmin }) {
  const [name, setName] = useState(`${app.name} app key`.slice(0, 100));
  const [issued, setIssued] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState(false);
  async function create(event) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      setIssued(await api.post(`${kbApi(tenant)}/api-keys`, { name: name.trim(), scopes: [`app:${app.id}`] }));
      setCopied(false);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  const url = `${location.origin}${appApi(tenant, app.id)}/chat`;
  const secret = issued ? issued.secret : 'ek_live_…';
  const curl = `curl ${url} \\\n  -H 'Authorization: Bearer ${secret}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{"query": "What can you help me with?", "user": "emp-4711", "response_mode": "blocking"}'`;
  const openai = `curl ${location.origin}/v1/chat/completions \\\n  -H 'Authorization: Bearer ${secret}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{"model": "app:${app.id}", "messages": [{"role": "user", "content": "What can you help me with?"}]}'`;
  async function copy() {
    try {
      await navigator.clipboard.writeText(issued.secret);
      setCopied(true);
    } catch (e) {
      setCopied(false);
    }
  }
  return html`
    <section class="card form app-access" aria-labelledby="app-access-h" data-testid="app-access">
      <h2 id="app-access-h">API access</h2>
      <p class="small muted">An app key reaches this app's chat, conversations and feedback, and the OpenAI-compatible API with${' '}
        <code>model: "app:${app.id}"</code> — nothing else of the tenant. The app must be published.</p>
      ${!app.published && html`<p class="small bad">This app is not published: its keys are refused until it is.</p>`}
      ${isAdmin
        ? html`
          <form class="inline-form" onSubmit=${create}>
            <label>Key name <input required maxlength="100" value=${name} onInput=${(e) => setName(e.currentTarget.value)} /></label>
            <button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create app key'}</button>
          </form>`
        : html`<p class="small muted">Tenant administrators create app keys.</p>`}
      <${ErrorBanner} error=${error} />
      ${issued && html`
        <div class="banner banner-ok" role="status" data-testid="app-key-secret">
          <p><strong>Copy the key "${issued.key ? issued.key.name : name}" now.</strong> It is shown only this once; Enclave keeps just its hash.</p>
          <p><code class="secret">${issued.secret}</code></p>
          <button type="button" onClick=${copy}>${copied ? 'Copied' : 'Copy'}</button>
          <button type="button" class="secondary" onClick=${() => setIssued(null)}>Done</button>
        </div>`}
      <h3>Example</h3>
      <pre class="app-code" data-testid="app-curl">${curl}</pre>
      <details><summary class="small">OpenAI-compatible</summary><pre class="app-code">${openai}</pre></details>
    </section>`;
}

function DeleteApp({ tenant, app }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function remove() {
    setError(null);
    setBusy(true);
    try {
      await api.del(appApi(tenant, app.id));
      navigate(appsPath(tenant));
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  }
  return html`
    <section class="card" aria-labelledby="app-delete-h">
      <h2 id="app-delete-h">Delete the app</h2>
      <p class="small muted">Its conversations, messages, annotations and end users are removed. This cannot be undone.</p>
      ${confirming
        ? html`
          <div class="confirm" role="group" aria-labelledby="app-delete-q">
            <p id="app-delete-q"><strong>Delete ${app.name}?</strong></p>
            <${ErrorBanner} error=${error} />
            <button type="button" class="danger" onClick=${remove} disabled=${busy}>Yes, delete it</button>
            <button type="button" class="secondary" onClick=${() => setConfirming(false)}>Cancel</button>
          </div>`
        : html`<button type="button" class="secondary danger-outline" onClick=${() => setConfirming(true)}>Delete app</button>`}
    </section>`;
}

// ---------------------------------------------------------------------------------------------------
// Debug and preview.

function PromptShown({ prompt }) {
  if (!prompt) return null;
  let text;
  if (typeof prompt === 'string') text = prompt;
  else if (Array.isArray(prompt)) text = prompt.map((m) => (m && m.role ? `[${m.role}]\n${m.content}` : JSON.stringify(m))).join('\n\n');
  else if (prompt.messages && Array.isArray(prompt.messages)) text = prompt.messages.map((m) => `[${m.role}]\n${m.content}`).join('\n\n');
  else if (prompt.system !== undefined || prompt.user !== undefined) text = `[system]\n${prompt.system || ''}\n\n[user]\n${prompt.user || ''}`;
  else text = JSON.stringify(prompt, null, 2);
  return html`<details class="app-rendered"><summary class="small">Rendered prompt</summary><pre class="app-code" data-testid="rendered-prompt">${text}</pre></details>`;
}

function DebugPreview({ tenant, app }) {
  const [conversationId, setConversationId] = useState(null);
  const [citation, setCitation] = useState(null);
  const chat = useAsk({ tenant, app, conversationId, debug: true, onConversation: setConversationId });
  const { turns, busy } = chat;
  const config = app.config || {};
  function reset() {
    chat.clear();
    setConversationId(null);
  }
  return html`
    <section class="card app-preview" aria-labelledby="app-preview-h" data-testid="app-preview">
      <div class="card-head">
        <h2 id="app-preview-h">Debug and preview</h2>
        <button type="button" class="secondary" onClick=${reset} disabled=${turns.length === 0 && !conversationId}>Reset conversation</button>
      </div>
      <p class="small muted">Chats with the saved app${app.published ? '' : ' (unpublished: only editors can)'}; save the settings or a prompt version to try a change. Kept apart from employees' conversations.</p>
      ${turns.length === 0 && html`
        ${config.opening_statement && html`<p class="app-opening" data-testid="preview-opening">${config.opening_statement}</p>`}
        <${SuggestedQuestions} questions=${config.suggested_questions} onAsk=${chat.ask} disabled=${busy} />`}
      <ol class="conversation app-turns" data-testid="preview-conversation">
        ${turns.map((t, i) => html`
          <${Turn} key=${i} turn=${t} testid="preview-turn" onCitation=${setCitation}>
            ${!t.streaming && t.usage && html`<div class="small muted" data-testid="preview-usage">${t.usage.prompt_tokens} prompt + ${t.usage.completion_tokens} completion tokens${t.finish_reason ? ` · ${t.finish_reason}` : ''}${t.model ? ` · ${t.model}` : ''}</div>`}
            <${PromptShown} prompt=${t.prompt} />
          </${Turn}>`)}
      </ol>
      <${ErrorBanner} error=${chat.error} />
      <${Composer} chat=${chat} formLabel="Debug chat" inputs=${config.inputs} prefix="preview-input" label="Question" testid="preview-question" />
      <${CitationDialog} citation=${citation} onClose=${() => setCitation(null)} />
    </section>`;
}

// ---------------------------------------------------------------------------------------------------
// The page.

/** /tenants/{t}/apps/{app}/edit */
export function AppEditor({ tenant, app: id }) {
  const { info } = useSession();
  const [app, setApp] = useState(null);
  const [error, setError] = useState(null);
  const [datasets, setDatasets] = useState(null);
  const [models, setModels] = useState(null);
  const [sideError, setSideError] = useState(null);
  useEffect(() => {
    api.get(appApi(tenant, id)).then(setApp, setError);
    api.get(`${kbApi(tenant)}/datasets`).then((r) => setDatasets(r.datasets), setSideError);
    api.get('/api/v1/models').then(setModels, setSideError);
  }, [tenant, id]);
  const role = roleIn(info, tenant);
  const trail = (name) => html`<${Crumbs} items=${[[appsPath(tenant), 'Apps'], [null, name]]} />`;
  if (error && !app) return html`${trail('App')}<h1>App</h1><${ErrorBanner} error=${error} />`;
  if (!app) return html`${trail('App')}<h1>App</h1><${Loading} what="the app" />`;
  if (!canEditApps(role)) {
    return html`${trail(app.name)}<h1>${app.name}</h1><p class="muted">Editors change apps. <${Link} href=${appChatPath(tenant, app.id)}>Chat with it</${Link}>.</p>`;
  }
  return html`
    ${trail(app.name)}
    <div class="page-head">
      <h1>${app.name} ${app.published
        ? html`<span class="pill pill-tone-ok" data-testid="app-state">Published</span>`
        : html`<span class="pill pill-tone-neutral" data-testid="app-state">Draft</span>`}</h1>
      <div class="actions">
        <${Link} href=${appChatPath(tenant, app.id)} class="button-link">Chat</${Link}>
        <${Link} href=${appAnnotationsPath(tenant, app.id)} class="button-link">Annotations</${Link}>
        ${canSeeLogs(role) && html`<${Link} href=${logsPath(tenant, app.id)} class="button-link">Logs</${Link}>`}
        <a class="button-link" href=${`${appApi(tenant, app.id)}/export`} download=${`${app.name}.enclave-app.json`} data-testid="app-export">Export</a>
      </div>
    </div>
    ${app.description && html`<p>${app.description}</p>`}
    <${ErrorBanner} error=${sideError} />
    <div class="app-editor">
      <div class="app-editor-main">
        <${Settings} tenant=${tenant} app=${app} datasets=${datasets} models=${models} onSaved=${setApp} />
        <${PromptEditor} tenant=${tenant} app=${app} onSaved=${setApp} />
        <${ApiAccess} tenant=${tenant} app=${app} isAdmin=${canSeeLogs(role)} />
        <${DeleteApp} tenant=${tenant} app=${app} />
      </div>
      <div class="app-editor-side">
        <${DebugPreview} tenant=${tenant} app=${app} />
      </div>
    </div>`;
}
