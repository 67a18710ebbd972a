// The chat page for employees: their conversations with an app (list, rename, delete), the opening
// statement and suggested questions of a new conversation, the app's input fields, answers streamed in
// (stop button), numbered citations that open the passage, "Annotated answer" marks, and like/dislike
// with an optional comment.
import { html, useEffect, useRef, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';
import { Crumbs, roleIn } from './knowledge-common.js';
import {
  CitationDialog, Composer, SuggestedQuestions, Turn, appApi, appEditPath, appsPath, canEditApps, useAsk,
} from './apps-common.js';

// ---------------------------------------------------------------------------------------------------
// Conversations.

function ConversationItem({ tenant, app, conversation: c, current, onOpen, onChanged, onDeleted }) {
  const [mode, setMode] = useState('view');
  const [name, setName] = useState(c.name);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const base = `${appApi(tenant, app)}/conversations/${encodeURIComponent(c.id)}`;
  async function rename(event) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const updated = await api.patch(base, { name: name.trim() });
      setMode('view');
      onChanged(updated || { ...c, name: name.trim() });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  async function remove() {
    setError(null);
    setBusy(true);
    try {
      await api.del(base);
      onDeleted(c);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  }
  return html`
    <li class=${'app-conv' + (current ? ' current' : '')} data-conversation=${c.id} data-name=${c.name}>
      ${mode === 'rename'
        ? html`
          <form class="app-conv-rename" onSubmit=${rename}>
            <label class="visually-hidden" for=${`conv-name-${c.id}`}>New name for ${c.name}</label>
            <input id=${`conv-name-${c.id}`} required maxlength="200" value=${name} onInput=${(e) => setName(e.currentTarget.value)} />
            <div class="actions">
              <button type="submit" class="secondary" disabled=${busy}>Save name</button>
              <button type="button" class="secondary" onClick=${() => { setMode('view'); setName(c.name); }}>Cancel</button>
            </div>
          </form>`
        : html`
          <button type="button" class="app-conv-open" aria-current=${current ? 'true' : undefined} onClick=${() => onOpen(c)}>
            <span class="app-conv-name">${c.name || 'Untitled'}</span>${' '}
            <span class="small muted">${formatTime(c.updated_at)}${typeof c.message_count === 'number' ? ` · ${c.message_count} ${c.message_count === 1 ? 'message' : 'messages'}` : ''}</span>
          </button>
          ${mode === 'delete'
            ? html`
              <div class="confirm small" role="group" aria-label=${`Delete ${c.name}?`}>
                <p><strong>Delete this conversation?</strong></p>
                <button type="button" class="danger" disabled=${busy} onClick=${remove}>Yes, delete it</button>
                <button type="button" class="secondary" onClick=${() => setMode('view')}>Cancel</button>
              </div>`
            : html`
              <div class="app-conv-actions">
                <button type="button" class="linklike small" onClick=${() => { setName(c.name); setMode('rename'); }}>Rename<span class="visually-hidden"> ${c.name}</span></button>
                <button type="button" class="linklike small danger-link" onClick=${() => setMode('delete')}>Delete<span class="visually-hidden"> ${c.name}</span></button>
              </div>`}`}
      <${ErrorBanner} error=${error} />
    </li>`;
}

// ---------------------------------------------------------------------------------------------------
// Feedback.

function Feedback({ tenant, app, message, onChange }) {
  const [commenting, setCommenting] = useState(false);
  const [comment, setComment] = useState(message.comment || '');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function send(rating, text) {
    setError(null);
    setBusy(true);
    try {
      const body = { rating };
      if (text !== undefined && text !== null) body.comment = text;
      const updated = await api.post(`${appApi(tenant, app)}/messages/${encodeURIComponent(message.id)}/feedback`, body);
      onChange(updated && updated.id ? updated : { ...message, rating, comment: text !== undefined ? text : message.comment });
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  }
  const rate = (r) => send(message.rating === r ? null : r, message.comment || undefined);
  async function saveComment(event) {
    event.preventDefault();
    if (await send(message.rating || null, comment.trim())) setCommenting(false);
  }
  return html`
    <div class="app-feedback" data-testid="feedback" data-rating=${message.rating || 'none'}>
      <button type="button" class=${'secondary app-rate' + (message.rating === 'like' ? ' pressed' : '')} aria-pressed=${message.rating === 'like'}
        disabled=${busy} onClick=${() => rate('like')}>Like</button>
      <button type="button" class=${'secondary app-rate' + (message.rating === 'dislike' ? ' pressed' : '')} aria-pressed=${message.rating === 'dislike'}
        disabled=${busy} onClick=${() => rate('dislike')}>Dislike</button>
      ${!commenting && html`<button type="button" class="linklike small" onClick=${() => { setComment(message.comment || ''); setCommenting(true); }}>
        ${message.comment ? 'Edit comment' : 'Add a comment'}</button>`}
      ${message.comment && !commenting && html`<p class="small app-comment" data-testid="feedback-comment">Your comment: ${message.comment}</p>`}
      ${commenting && html`
        <form class="app-comment-form" onSubmit=${saveComment}>
          <label class="block">Comment <span class="muted">(optional: what was good or wrong)</span>
            <textarea rows="2" maxlength="2000" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)}></textarea></label>
          <div class="actions">
            <button type="submit" class="secondary" disabled=${busy}>Send feedback</button>
            <button type="button" class="secondary" onClick=${() => setCommenting(false)}>Cancel</button>
          </div>
        </form>`}
      <${ErrorBanner} error=${error} />
    </div>`;
}

// ---------------------------------------------------------------------------------------------------
// The page.

/** /tenants/{t}/apps/{app}/chat */
export function ChatPage({ tenant, app: id }) {
  const { info } = useSession();
  const [app, setApp] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [conversations, setConversations] = useState(null);
  const [convError, setConvError] = useState(null);
  const [current, setCurrent] = useState(null);
  const [messagesError, setMessagesError] = useState(null);
  const [loadingMessages, setLoadingMessages] = useState(false);
  const [citation, setCitation] = useState(null);
  const input = useRef(null);

  const loadConversations = () => api.get(`${appApi(tenant, id)}/conversations`).then((r) => {
    setConversations(r.conversations);
    setConvError(null);
  }, setConvError);
  // A new conversation is named after its first question; counts and times change with every answer.
  const chat = useAsk({ tenant, app, conversationId: current, onConversation: setCurrent, onSettled: loadConversations });
  const { turns: messages, setTurns: setMessages, busy } = chat;
  useEffect(() => {
    api.get(appApi(tenant, id)).then(setApp, setLoadError);
    loadConversations();
  }, [tenant, id]);

  async function open(c) {
    if (busy) return;
    setCurrent(c.id);
    chat.setError(null);
    setMessagesError(null);
    setLoadingMessages(true);
    try {
      const r = await api.get(`${appApi(tenant, id)}/conversations/${encodeURIComponent(c.id)}/messages`);
      setMessages(r.messages);
    } catch (e) {
      setMessagesError(e);
      setMessages([]);
    } finally {
      setLoadingMessages(false);
    }
  }
  function startNew() {
    if (busy) return;
    setCurrent(null);
    chat.clear();
    setMessagesError(null);
    if (input.current) input.current.focus();
  }

  const role = roleIn(info, tenant);
  const trail = (name) => html`<${Crumbs} items=${[[appsPath(tenant), 'Apps'], [null, name]]} />`;
  if (loadError) return html`${trail('Chat')}<h1>Chat</h1><${ErrorBanner} error=${loadError} />`;
  if (!app) return html`${trail('Chat')}<h1>Chat</h1><${Loading} what="the app" />`;
  const config = app.config || {};
  const fresh = messages.length === 0 && !loadingMessages;
  // A conversation whose first answer was stopped is stored when the server notices (at its next token),
  // often after the list was fetched again: the conversation being had is listed meanwhile all the same.
  const listed = conversations && current && messages.length > 0 && !conversations.some((c) => c.id === current)
    ? [{ id: current, name: messages[0].query.slice(0, 60), updated_at: new Date().toISOString() }, ...conversations]
    : conversations;
  const replace = (updated) => setMessages((all) => all.map((m) => (m.id === updated.id ? { ...m, ...updated } : m)));
  return html`
    ${trail(app.name)}
    <div class="page-head">
      <h1>${app.name}</h1>
      ${canEditApps(role) && html`<${Link} href=${appEditPath(tenant, app.id)} class="button-link">Edit app</${Link}>`}
    </div>
    ${app.description && html`<p class="muted">${app.description}</p>`}
    ${!app.published && html`<div class="banner banner-warn" role="status" data-testid="app-unpublished">This app is not published yet, so it cannot be used here.${canEditApps(role)
      ? html` Try it in the editor's <${Link} href=${appEditPath(tenant, app.id)}>debug and preview</${Link}>, or publish it there.` : ''}</div>`}
    <div class="app-chat">
      <aside class="app-conversations card" aria-labelledby="app-conv-h">
        <div class="card-head"><h2 id="app-conv-h">Conversations</h2></div>
        <button type="button" class="secondary app-new" onClick=${startNew} disabled=${busy}>New conversation</button>
        <${ErrorBanner} error=${convError} />
        ${conversations === null && !convError && html`<${Loading} what="conversations" />`}
        ${listed && listed.length === 0 && html`<p class="small muted" data-testid="no-conversations">No conversations yet.</p>`}
        ${listed && listed.length > 0 && html`
          <ul class="app-conv-list" data-testid="conversations">
            ${listed.map((c) => html`
              <${ConversationItem} key=${c.id} tenant=${tenant} app=${id} conversation=${c} current=${c.id === current} onOpen=${open}
                onChanged=${(u) => setConversations(listed.map((x) => (x.id === u.id ? { ...x, ...u } : x)))}
                onDeleted=${(d) => { if (d.id === current) startNew(); setConversations(listed.filter((x) => x.id !== d.id)); }} />`)}
          </ul>`}
      </aside>
      <section class="app-chat-main card" aria-label="Chat">
        ${fresh && html`
          <div class="app-welcome" data-testid="welcome">
            ${config.opening_statement && html`<p class="app-opening" data-testid="opening-statement">${config.opening_statement}</p>`}
            <${SuggestedQuestions} questions=${config.suggested_questions} onAsk=${chat.ask} disabled=${busy || !app.published} testid="suggested-questions" />
            ${!config.opening_statement && !(config.suggested_questions || []).length && html`<p class="muted">Ask a question to start.</p>`}
          </div>`}
        ${loadingMessages && html`<${Loading} what="messages" />`}
        <${ErrorBanner} error=${messagesError} />
        <ol class="app-messages" data-testid="messages">
          ${messages.map((m, i) => html`
            <${Turn} key=${m.id || `new-${i}`} turn=${m} testid="message" onCitation=${setCitation}>
              ${!m.streaming && m.id && html`<${Feedback} key=${m.id} tenant=${tenant} app=${id} message=${m} onChange=${replace} />`}
            </${Turn}>`)}
        </ol>
        <${ErrorBanner} error=${chat.error} />
        <${Composer} chat=${chat} className="app-composer" formLabel="Ask" inputs=${config.inputs} prefix="chat-input" label="Your question"
          textareaRef=${input} disabled=${!app.published} hint="Enter sends, Shift+Enter starts a new line." />
      </section>
    </div>
    <${CitationDialog} citation=${citation} onClose=${() => setCitation(null)} />`;
}
