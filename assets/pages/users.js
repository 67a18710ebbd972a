// Accounts (system administrators): list, create with a temporary password, suspend and reactivate.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';

function CreateUser({ onCreated }) {
  const [form, setForm] = useState({ username: '', display_name: '', password: '', is_system_admin: false });
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(null);
  const set = (field) => (e) => setForm({ ...form, [field]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });

  async function submit(event) {
    event.preventDefault();
    setError(null);
    setCreated(null);
    try {
      const user = await api.post('/api/v1/users', { ...form, display_name: form.display_name || null });
      setCreated(user);
      setForm({ username: '', display_name: '', password: '', is_system_admin: false });
      onCreated();
    } catch (e) {
      setError(e);
    }
  }

  return html`
    <form class="card form" onSubmit=${submit} aria-labelledby="new-user-h">
      <h2 id="new-user-h">Create an account</h2>
      <div class="field"><label for="u-name">Username</label>
        <input id="u-name" required value=${form.username} onInput=${set('username')} autocomplete="off" /></div>
      <div class="field"><label for="u-display">Display name <span class="muted">(optional)</span></label>
        <input id="u-display" value=${form.display_name} onInput=${set('display_name')} /></div>
      <div class="field"><label for="u-pass">Temporary password</label>
        <input id="u-pass" type="password" required minlength="12" value=${form.password} onInput=${set('password')} autocomplete="new-password" aria-describedby="u-pass-help" />
        <p id="u-pass-help" class="small muted">Give it to the person; they must choose their own at first sign-in.</p></div>
      <div class="field check"><input id="u-admin" type="checkbox" checked=${form.is_system_admin} onChange=${set('is_system_admin')} />
        <label for="u-admin">System administrator</label></div>
      <${ErrorBanner} error=${error} />
      ${created && html`<div class="banner banner-ok" role="status">Created account <code>${created.username}</code>.</div>`}
      <button type="submit">Create account</button>
    </form>`;
}

export function Users() {
  const { info } = useSession();
  const [users, setUsers] = useState(null);
  const [error, setError] = useState(null);
  const load = () => api.get('/api/v1/users').then((r) => setUsers(r.users), setError);
  useEffect(() => { load(); }, []);

  async function setState(user, state) {
    setError(null);
    try {
      await api.patch(`/api/v1/users/${encodeURIComponent(user.username)}`, { state });
      load();
    } catch (e) {
      setError(e);
    }
  }

  return html`
    <h1>Accounts</h1>
    <div class="split">
      <section aria-label="All accounts">
        <${ErrorBanner} error=${error} />
        ${users === null && !error ? html`<${Loading} what="accounts" />` : null}
        ${users && html`
          <table data-testid="user-table">
            <thead><tr><th scope="col">Username</th><th scope="col">Name</th><th scope="col">State</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>${users.map((u) => html`
              <tr key=${u.id}>
                <td><code>${u.username}</code>${u.is_system_admin ? html` <span class="pill">admin</span>` : null}</td>
                <td>${u.display_name}</td>
                <td><span class=${'pill pill-' + u.state}>${u.state}</span>${u.must_change_password ? html`<div class="small muted">temporary password</div>` : null}</td>
                <td>${formatTime(u.created_at)}</td>
                <td>${info && u.id !== info.user.id && (u.state === 'active'
                  ? html`<button type="button" class="secondary" onClick=${() => setState(u, 'suspended')}>Suspend</button>`
                  : html`<button type="button" class="secondary" onClick=${() => setState(u, 'active')}>Reactivate</button>`)}</td>
              </tr>`)}
            </tbody>
          </table>`}
      </section>
      <${CreateUser} onCreated=${load} />
    </div>`;
}
