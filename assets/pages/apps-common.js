// Chat apps: pieces the app list, the editor, the chat page, the logs, the annotations and the end users
// share — the API and UI paths, roles, the streamed chat call and the hook that asks a question and
// streams its answer into the turns of a conversation (the chat page and the editor's preview), the
// turns with their numbered citations, the modal dialog and the passage dialog, and the composer with
// the input-variable fields.
import { html, useEffect, useRef, useState } from '../vendor/htm-preact-3.1.1.js';
import { ApiError, streamEvents } from '../lib/api.js';
import { HeadingPath, ROLES } from './knowledge-common.js';

/** The tenant scope's app routes. */
export const appsApi = (tenant) => `/api/v1/tenants/${encodeURIComponent(tenant)}/apps`;
export const appApi = (tenant, app) => `${appsApi(tenant)}/${encodeURIComponent(app)}`;

/** The UI's own paths. */
export const appsPath = (tenant) => `/tenants/${tenant}/apps`;
export const appEditPath = (tenant, app) => `${appsPath(tenant)}/${encodeURIComponent(app)}/edit`;
export const appChatPath = (tenant, app) => `${appsPath(tenant)}/${encodeURIComponent(app)}/chat`;
export const appAnnotationsPath = (tenant, app) => `${appsPath(tenant)}/${encodeURIComponent(app)}/annotations`;
/** The logs, of every app of the tenant or of one. */
export const logsPath = (tenant, app) => (app ? `${appsPath(tenant)}/${encodeURIComponent(app)}/logs` : `${appsPath(tenant)}/logs`);
/** The end users of an app; with `user`, the page filtered to that end user's id. */
export const endUsersPath = (tenant, app, user) =>
  `${appsPath(tenant)}/${encodeURIComponent(app)}/end-users${user ? `?${new URLSearchParams({ user })}` : ''}`;
/** One end user of an app in the API (ids like `user:alice` or an API caller's own: any characters). */
export const endUserApi = (tenant, app, user) => `${appApi(tenant, app)}/end-users/${encodeURIComponent(user)}`;

const rank = (role) => ROLES.indexOf(role);
export const canEditApps = (role) => rank(role) >= rank('editor');
export const canSeeLogs = (role) => rank(role) >= rank('admin');

/** The app's model as people read it. */
export const modelLabel = (config) => (config && config.model ? config.model : 'default');

/** Lines of a textarea as a list: trimmed, empty ones left out. */
export const lines = (text) => String(text || '').split('\n').map((l) => l.trim()).filter(Boolean);

/**
 * Asks an app through POST /apps/{app}/chat with `response_mode: "streaming"`. `onUpdate` is called with
 * the answer so far after every event: { conversationId, messageId, answer, citations, annotation,
 * finishReason, usage, prompt, streaming }. Resolves to the final state; `stopped` is set when `signal`
 * aborted it. An error before the stream throws an ApiError; an `error` event inside the stream too.
 */
export async function streamChat(tenant, app, body, onUpdate, signal) {
  const state = {
    conversationId: body.conversation_id || null, messageId: null, answer: '', citations: [], annotation: null,
    finishReason: null, usage: null, prompt: null, model: null, streaming: true, stopped: false,
  };
  let failure = null;
  await streamEvents(`${appApi(tenant, app)}/chat`, { ...body, response_mode: 'streaming' }, {}, (event) => {
    switch (event.event) {
      case 'message_start':
        state.conversationId = event.conversation_id || state.conversationId;
        state.messageId = event.message_id || null;
        state.citations = event.citations || [];
        state.annotation = event.annotation || null;
        state.model = event.model || null;
        // A debug answer carries the rendered prompt.
        state.prompt = event.prompt || null;
        break;
      case 'message':
        state.answer += event.answer || '';
        break;
      case 'message_end':
        state.finishReason = event.finish_reason || null;
        state.usage = event.usage || null;
        break;
      case 'error':
        failure = new ApiError(200, event.code || 'stream_error', event.message || 'The answer failed.', event.request_id || null);
        break;
      default:
        break;
    }
    onUpdate({ ...state });
  }, signal);
  state.streaming = false;
  state.stopped = !!(signal && signal.aborted);
  if (state.stopped) state.finishReason = 'stopped';
  onUpdate({ ...state });
  if (failure) {
    failure.partial = state;
    throw failure;
  }
  return state;
}

/** A streamed answer's state (streamChat) as a turn: a Message of docs/apps.md, and what the preview shows. */
export const turnOf = (query, s, status) => ({
  id: s.messageId, conversation_id: s.conversationId, query, answer: s.answer, citations: s.citations, annotation: s.annotation,
  rating: null, comment: null, status, streaming: s.streaming, usage: s.usage, model: s.model, prompt: s.prompt,
  finish_reason: s.finishReason,
});

/**
 * Asking an app and streaming its answers into the turns of a conversation: the chat page's and the
 * editor's preview's. `app` is the App; `conversationId` the conversation to continue (null: a new one);
 * `onConversation(id)` hears the conversation an answer went to as soon as the stream names it;
 * `onSettled()` runs after each question, answered, stopped or failed. `debug` asks as the editor's
 * preview does (an unpublished app too, with the rendered prompt).
 *
 * Returns { turns, setTurns, query, setQuery, values, setValues, busy, error, setError, ask(text), stop(), clear() }:
 * `values` are the input variables' fields, `stop` stops the answer being streamed (kept as "stopped"),
 * `clear` forgets the turns and stops any answer without keeping it.
 */
export function useAsk({ tenant, app, conversationId = null, debug = false, onConversation, onSettled }) {
  const [turns, setTurns] = useState([]);
  const [query, setQuery] = useState('');
  const [values, setValues] = useState({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  // The AbortController of the question being answered; a question whose controller is no longer here was cleared.
  const running = useRef(null);
  useEffect(() => () => { if (running.current) running.current.abort(); }, []);

  async function ask(text) {
    const q = (text || '').trim();
    if (!q || busy || !app || !(app.published || debug)) return;
    const inputs = (app.config || {}).inputs;
    const missing = missingInputs(inputs, values);
    if (missing.length > 0) {
      setError({ message: `Please fill in: ${missing.join(', ')}.` });
      return;
    }
    setError(null);
    setQuery('');
    setBusy(true);
    const controller = new AbortController();
    running.current = controller;
    const live = () => running.current === controller;
    const index = turns.length;
    const put = (turn) => { if (live()) setTurns((all) => [...all.slice(0, index), turn]); };
    let conversation = conversationId;
    const heard = (s) => {
      if (!live() || !s.conversationId || s.conversationId === conversation) return;
      conversation = s.conversationId;
      if (onConversation) onConversation(conversation);
    };
    put({ query: q, answer: '', citations: [], streaming: true });
    const body = { query: q, conversation_id: conversationId, inputs: inputsBody(inputs, values) };
    if (debug) body.debug = true;
    try {
      const result = await streamChat(tenant, app.id, body, (s) => {
        heard(s);
        put(turnOf(q, s, s.stopped ? 'stopped' : undefined));
      }, controller.signal);
      put(turnOf(q, result, result.stopped ? 'stopped' : 'complete'));
    } catch (e) {
      if (live()) {
        if (e.partial) {
          heard(e.partial);
          put({ ...turnOf(q, e.partial, 'failed'), error: e });
        } else {
          // Refused before it started: the question goes back into the box.
          setTurns((all) => all.slice(0, index));
          setQuery(q);
        }
        setError(e);
      }
    } finally {
      if (live()) {
        running.current = null;
        setBusy(false);
      }
      if (onSettled) onSettled();
    }
  }
  const stop = () => { if (running.current) running.current.abort(); };
  function clear() {
    stop();
    running.current = null;
    setBusy(false);
    setTurns([]);
    setError(null);
  }
  return { turns, setTurns, query, setQuery, values, setValues, busy, error, setError, ask, stop, clear };
}

/** "Document title › heading › path" of a citation, as text. */
export function citationLabel(c) {
  const title = c.document_title || 'Untitled document';
  const path = c.heading_path || [];
  // A Markdown document's title is often its first heading too: named once.
  return [title, ...(path[0] === title ? path.slice(1) : path)].join(' › ');
}

/** The numbered sources under an answer; each opens the passage dialog. */
export function Citations({ citations, onOpen }) {
  if (!citations || citations.length === 0) return null;
  return html`
    <div class="app-citations" data-testid="citations">
      <span class="small muted">Sources</span>
      <ol class="app-citation-list">${citations.map((c) => html`
        <li key=${c.n}>
          <button type="button" class="linklike app-citation" data-testid="citation" data-n=${c.n} onClick=${() => onOpen(c)}
            aria-haspopup="dialog"><span class="app-citation-n">[${c.n}]</span> ${citationLabel(c)}</button>
        </li>`)}
      </ol>
    </div>`;
}

/**
 * A modal dialog, shown while `open`: Escape, a click beside it and `onClose` close it; `onClose` hears
 * every close. `children` are rendered only while it is open.
 */
export function Modal({ open, onClose, labelledby, testid, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`
    <dialog ref=${ref} class="app-dialog" aria-labelledby=${labelledby} data-testid=${testid} onClose=${onClose}
      onClick=${(e) => { if (e.target === ref.current) ref.current.close(); }}>
      ${open ? children : null}
    </dialog>`;
}

/** The passage of a citation in a modal dialog: document title, heading path, page and text. */
export function CitationDialog({ citation, onClose }) {
  return html`
    <${Modal} open=${!!citation} onClose=${onClose} labelledby="app-citation-h" testid="citation-dialog">
      ${citation && html`
        <div class="app-dialog-body">
          <div class="card-head">
            <h2 id="app-citation-h">[${citation.n}] ${citation.document_title || 'Untitled document'}</h2>
            <button type="button" class="secondary" onClick=${onClose}>Close</button>
          </div>
          <${HeadingPath} path=${citation.heading_path} testid="citation-heading-path" />
          <p class="small muted">
            ${citation.page !== null && citation.page !== undefined ? html`<span>Page ${citation.page}</span> · ` : null}
            ${typeof citation.score === 'number' ? html`<span>score ${citation.score.toFixed(3)}</span>` : null}</p>
          <blockquote class="app-passage kb-segment-text" data-testid="citation-text">${citation.text}</blockquote>
        </div>`}
    </${Modal}>`;
}

/**
 * The answer's text with its state: the cursor while it streams, "stopped" / "failed" afterwards. A stopped
 * answer may have no text at all (stopped before its first token): then only the note shows, no empty bubble.
 */
export function AnswerText({ answer, streaming, status, error }) {
  const empty = !answer && !streaming;
  return html`
    ${!empty && html`<div class="turn-text" data-testid="answer-text">${answer}${streaming ? html`<span class="cursor" aria-hidden="true">▍</span>` : null}</div>`}
    ${status === 'stopped' && html`<div class="small muted" data-testid="answer-stopped">${empty ? 'Stopped before the answer began.' : 'Stopped: the answer is incomplete.'}</div>`}
    ${status === 'failed' && html`<div class="small bad" data-testid="answer-failed">The answer failed${error ? `: ${typeof error === 'string' ? error : error.message || error.code}` : ''}.</div>`}
    ${status === 'complete' && empty && html`<div class="small muted" data-testid="answer-empty">The model gave no answer.</div>`}`;
}

/** The "Annotated answer" mark of an answer that came from an annotation. */
export function AnnotatedMark({ annotation }) {
  if (!annotation) return null;
  return html`<span class="pill pill-tone-ok" data-testid="annotated" title=${annotation.question ? `Annotated question: ${annotation.question}` : ''}>Annotated answer</span>`;
}

/** The fields of an app's input variables; `values` by name. */
export function InputFields({ inputs, values, onChange, prefix, disabled }) {
  if (!inputs || inputs.length === 0) return null;
  return html`
    <fieldset class="app-inputs" data-testid="app-inputs"><legend>Details for the assistant</legend>
      ${inputs.map((v) => html`
        <label key=${v.name}><span>${v.label || v.name}${v.required ? html` <span class="req" aria-hidden="true">*</span>` : null}</span>
          <input id=${`${prefix}-${v.name}`} value=${values[v.name] || ''} required=${!!v.required} disabled=${disabled}
            maxlength=${v.max_length || undefined} onInput=${(e) => onChange({ ...values, [v.name]: e.currentTarget.value })} /></label>`)}
    </fieldset>`;
}

/** The inputs to send: the app's variables that have a value. */
export function inputsBody(inputs, values) {
  const out = {};
  for (const v of inputs || []) {
    const value = (values[v.name] || '').trim();
    if (value) out[v.name] = value;
  }
  return out;
}

/** The required inputs without a value (labels). */
export function missingInputs(inputs, values) {
  return (inputs || []).filter((v) => v.required && !(values[v.name] || '').trim()).map((v) => v.label || v.name);
}

/**
 * One question and its answer: the answer's text and state, its "Annotated answer" mark and sources, and
 * below them `children` (the chat's feedback, the preview's tokens and prompt).
 */
export function Turn({ turn: t, testid, onCitation, children }) {
  return html`
    <li class="app-turn" data-testid=${testid} data-message=${t.id || ''} data-status=${t.status || ''}>
      <div class="turn turn-user" data-role="user"><strong>You</strong><div class="turn-text" data-testid="message-query">${t.query}</div></div>
      <div class="turn turn-assistant" data-role="assistant" aria-live=${t.streaming ? 'polite' : 'off'} aria-busy=${t.streaming ? 'true' : 'false'}>
        <strong>Assistant</strong> <${AnnotatedMark} annotation=${t.annotation} />
        <${AnswerText} answer=${t.answer} streaming=${t.streaming} status=${t.status} error=${t.error} />
        <${Citations} citations=${t.citations} onOpen=${onCitation} />
        ${children}
      </div>
    </li>`;
}

/** The suggested questions of a new conversation, each a button that asks it. */
export function SuggestedQuestions({ questions, onAsk, disabled, testid }) {
  if (!questions || questions.length === 0) return null;
  return html`
    <div class="app-chips" role="group" aria-label="Suggested questions" data-testid=${testid}>
      ${questions.map((s) => html`<button type="button" class="secondary app-chip" onClick=${() => onAsk(s)} disabled=${disabled}>${s}</button>`)}
    </div>`;
}

/**
 * The form that asks (`chat` from useAsk): the app's input fields, the question (Enter sends, Shift+Enter
 * starts a new line), Send, and Stop while an answer streams. `disabled` keeps Send off (an unpublished app).
 */
export function Composer({ chat, inputs, prefix, label, formLabel, hint, disabled = false, textareaRef, testid, className }) {
  const { query, setQuery, values, setValues, busy, ask, stop } = chat;
  return html`
    <form class=${className} onSubmit=${(e) => { e.preventDefault(); ask(query); }} aria-label=${formLabel}>
      <${InputFields} inputs=${inputs} values=${values} onChange=${setValues} prefix=${prefix} disabled=${busy} />
      <label class="block">${label}
        <textarea ref=${textareaRef} rows="2" value=${query} data-testid=${testid} onInput=${(e) => setQuery(e.currentTarget.value)}
          onKeyDown=${(e) => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ask(query); } }}></textarea></label>
      <div class="actions">
        <button type="submit" disabled=${busy || !query.trim() || disabled}>${busy ? 'Answering…' : 'Send'}</button>
        ${busy && html`<button type="button" class="secondary" onClick=${stop}>Stop</button>`}
        ${hint && html`<span class="small muted">${hint}</span>`}
      </div>
    </form>`;
}
