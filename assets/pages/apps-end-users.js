// The end users of an app (admins): who chatted with it, when first and last, how much; a search by id
// (kept in the URL's `?user=`, so the logs link to one end user); each one's data as a JSON file (GDPR
// access) and their erasure (GDPR erasure) after a dialog that says what goes and what stays and asks
// for the id to be typed.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link, replaceSearch, useSearch } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatCount, formatNumber, formatTime } from '../lib/ui.js';
import { Crumbs, roleIn } from './knowledge-common.js';
import { Modal, appApi, appEditPath, appsPath, canSeeLogs, endUserApi, logsPath } from './apps-common.js';

// The server lists at most this many, the most recently seen first.
const LISTED = 1000;

/** The file name an export is offered under. */
const exportName = (id) => `end-user-${id.replace(/[^A-Za-z0-9._-]+/g, '_')}.json`;

/** The dialog that erases an end user (`user`; closed while null) once their id is typed. */
function EraseDialog({ tenant, app, user: u, onErased, onClose }) {
  const [typed, setTyped] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const id = u ? u.id : null;
  useEffect(() => {
    setTyped('');
    setError(null);
    setBusy(false);
  }, [id]);
  async function erase(event) {
    event.preventDefault();
    if (typed !== id || busy) return;
    setError(null);
    setBusy(true);
    try {
      await api.del(endUserApi(tenant, app.id, id));
      onErased(u);
    } catch (e) {
      // Erased meanwhile (by another administrator): gone all the same.
      if (e.code === 'end_user_not_found') onErased(u);
      else {
        setError(e);
        setBusy(false);
      }
    }
  }
  return html`
    <${Modal} open=${!!u} onClose=${onClose} labelledby="app-erase-h" testid="erase-dialog">
      ${u && html`
        <form class="app-dialog-body form" onSubmit=${erase}>
          <h2 id="app-erase-h">Erase the end user <code>${id}</code>?</h2>
          <p>Everything ${app.name} stored of this end user is deleted for good (and overwritten in the database file):</p>
          <ul data-testid="erase-what">
            <li>their ${formatCount(u.conversation_count, 'conversation')} and ${formatCount(u.message_count, 'message')}: the questions and the answers;</li>
            <li>the citations stored with those answers (the copies of the passages);</li>
            <li>their feedback: ratings and comments;</li>
            <li>the record of the end user (first and last seen). Annotations made from their messages keep their text, without the link to the message.</li>
          </ul>
          <p>What stays: the usage totals (per tenant, key and day; they never held the end user). The audit log records the erasure with
            only a hash of the id, not the id itself.</p>
          <p class="small muted">If the person asked for a copy of their data, export it before erasing.</p>
          <div class="field"><label for="app-erase-confirm">Type the end user's id, <code>${id}</code>, to confirm</label>
            <input id="app-erase-confirm" value=${typed} autocomplete="off" spellcheck="false" onInput=${(e) => setTyped(e.currentTarget.value)} /></div>
          <${ErrorBanner} error=${error} />
          <div class="actions">
            <button type="submit" class="danger" disabled=${busy || typed !== id}>${busy ? 'Erasing…' : 'Erase end user'}</button>
            <button type="button" class="secondary" onClick=${onClose}>Cancel</button>
          </div>
        </form>`}
    </${Modal}>`;
}

/** /tenants/{t}/apps/{app}/end-users, `?user=` filtering by id */
export function EndUsersPage({ tenant, app: id }) {
  const { info } = useSession();
  const allowed = canSeeLogs(roleIn(info, tenant));
  const [app, setApp] = useState(null);
  const [users, setUsers] = useState(null);
  const [error, setError] = useState(null);
  // The end user whose erasure is being confirmed, and the one erased last.
  const [erasing, setErasing] = useState(null);
  const [erased, setErased] = useState(null);
  const search = useSearch().get('user') || '';
  useEffect(() => {
    if (!allowed) return;
    api.get(appApi(tenant, id)).then(setApp, setError);
    api.get(`${appApi(tenant, id)}/end-users`).then((r) => setUsers(r.end_users), setError);
  }, [tenant, id]);

  const name = app ? app.name : 'App';
  const crumbs = html`<${Crumbs} items=${[[appsPath(tenant), 'Apps'], [appEditPath(tenant, id), name], [null, 'End users']]} />`;
  if (!allowed) return html`${crumbs}<h1>End users</h1><p class="muted">Tenant administrators see the end users.</p>`;
  const needle = search.trim().toLowerCase();
  const shown = (users || []).filter((u) => u.id.toLowerCase().includes(needle));
  function onErased(u) {
    setErasing(null);
    setUsers((all) => all.filter((x) => x.id !== u.id));
    setErased(u);
  }
  return html`
    ${crumbs}
    <div class="page-head">
      <h1>End users <span class="muted small">${name}</span></h1>
      <${Link} href=${logsPath(tenant, id)} class="button-link">Logs</${Link}>
    </div>
    <p class="muted">The people and systems that chatted with this app: people signed in as <code>user:</code> and their username,
      API callers as the <code>user</code> they pass, or as <code>key:</code> and the key's id. Export gives everything stored of one
      (their right of access); erasing deletes it (their right to erasure).</p>
    <div class="filters" role="search" aria-label="End users">
      <label>Search by id <input type="search" value=${search} placeholder="user:alice" size="24"
        onInput=${(e) => replaceSearch(e.currentTarget.value ? { user: e.currentTarget.value } : {})} /></label>
      ${users && html`<span class="small muted" data-testid="end-user-count">${shown.length === users.length
        ? formatCount(users.length, 'end user') : `${shown.length} of ${formatCount(users.length, 'end user')}`}</span>`}
    </div>
    ${erased && html`
      <div class="banner banner-ok" role="status" data-testid="end-user-erased">Erased <code>${erased.id}</code>: their
        ${formatCount(erased.conversation_count, 'conversation')} and ${formatCount(erased.message_count, 'message')}, with their citations
        and feedback, are deleted.</div>`}
    <${ErrorBanner} error=${error} />
    ${users === null && !error && html`<${Loading} what="end users" />`}
    ${users && users.length === 0 && html`<p class="muted" data-testid="end-users-empty">Nobody has chatted with this app yet.</p>`}
    ${users && users.length > 0 && shown.length === 0 && html`<p class="muted" data-testid="end-users-none">No end user's id contains “${search.trim()}”.</p>`}
    ${shown.length > 0 && html`
      <div class="table-scroll">
        <table class="dense app-end-users" data-testid="end-user-table">
          <caption class="visually-hidden">End users of ${name}</caption>
          <thead><tr><th scope="col">End user</th><th scope="col">First seen</th><th scope="col">Last seen</th>
            <th scope="col" class="num">Messages</th><th scope="col" class="num">Conversations</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>${shown.map((u) => html`
            <tr key=${u.id} data-end-user=${u.id}>
              <th scope="row"><code>${u.id}</code></th>
              <td class="small">${formatTime(u.first_seen)}</td>
              <td class="small">${formatTime(u.last_seen)}</td>
              <td class="num" data-testid="end-user-messages">${formatNumber(u.message_count)}</td>
              <td class="num" data-testid="end-user-conversations">${formatNumber(u.conversation_count)}</td>
              <td><div class="actions">
                <a class="button-link" href=${`${endUserApi(tenant, id, u.id)}/export`} download=${exportName(u.id)}
                  data-testid="end-user-export">Export<span class="visually-hidden"> ${u.id}</span></a>
                <button type="button" class="secondary danger-outline" aria-haspopup="dialog"
                  onClick=${() => { setErased(null); setErasing(u); }}>Erase…<span class="visually-hidden"> ${u.id}</span></button>
              </div></td>
            </tr>`)}
          </tbody>
        </table>
      </div>`}
    ${users && users.length >= LISTED && html`<p class="small muted">The ${formatCount(LISTED, 'most recently seen end user')} are listed.</p>`}
    ${app && html`<${EraseDialog} tenant=${tenant} app=${app} user=${erasing} onErased=${onErased} onClose=${() => setErasing(null)} />`}`;
}
