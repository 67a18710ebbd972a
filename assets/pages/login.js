// Sign-in form. On success the session is stored and the app continues, or asks for a new password
// first when the account must change it (the bootstrap administrator, or after a reset).
import { html, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { navigate } from '../lib/router.js';
import { setSession } from '../lib/session.js';
import { ErrorBanner } from '../lib/ui.js';

export function Login() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const info = await api.post('/api/v1/auth/login', { username, password });
      setSession(info);
      if (info.user.must_change_password) {
        // The page the person was going to stays remembered until the password is chosen.
        navigate('/account/password');
      } else {
        const next = sessionStorage.getItem('enclave.next');
        sessionStorage.removeItem('enclave.next');
        navigate(next || '/');
      }
    } catch (e) {
      setError(e);
      setPassword('');
    } finally {
      setBusy(false);
    }
  }

  return html`
    <div class="login">
      <form class="card form" onSubmit=${submit} aria-labelledby="login-h">
        <h1 id="login-h">Sign in to Enclave</h1>
        <div class="field">
          <label for="login-user">Username</label>
          <input id="login-user" name="username" autocomplete="username" required value=${username}
            onInput=${(e) => setUsername(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="login-pass">Password</label>
          <input id="login-pass" name="password" type="password" autocomplete="current-password" required value=${password}
            onInput=${(e) => setPassword(e.currentTarget.value)} />
        </div>
        <${ErrorBanner} error=${error} />
        <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
        <p class="small muted">First start? The administrator's one-time password was printed by the server and
          saved in <code>bootstrap-admin.txt</code> in its data directory.</p>
      </form>
    </div>`;
}
