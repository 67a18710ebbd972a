// Sign-in form. On success the session is stored and the app continues, or asks for a new password
// first when the account must change it (the bootstrap administrator, or after a reset).
import { html, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { navigate } from '../lib/router.js';
import { landingPath, setSession } from '../lib/session.js';
import { ErrorBanner } from '../lib/ui.js';

export function Login() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [needsCode, setNeedsCode] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { username, password };
      if (needsCode) body.totp_code = code;
      const info = await api.post('/api/v1/auth/login', body);
      setSession(info);
      if (info.user.must_change_password) {
        // The page the person was going to stays remembered until the password is chosen.
        navigate('/account/password');
      } else {
        const next = sessionStorage.getItem('enclave.next');
        sessionStorage.removeItem('enclave.next');
        navigate(next || landingPath(info));
      }
    } catch (e) {
      if (e.code === 'totp_required') {
        // The password was right: ask for the second factor, keep what was typed.
        setNeedsCode(true);
        setError(null);
      } else {
        setError(e);
        setCode('');
        if (e.code !== 'invalid_totp') setPassword('');
      }
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
        ${needsCode && html`
          <div class="field">
            <label for="login-code">Authentication code</label>
            <input id="login-code" name="totp" inputmode="numeric" autocomplete="one-time-code" required value=${code}
              onInput=${(e) => setCode(e.currentTarget.value)} aria-describedby="code-help" />
            <p id="code-help" class="small muted">The 6-digit code from your authenticator app, or one of your recovery codes.</p>
          </div>`}
        <${ErrorBanner} error=${error} />
        <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
        <p class="small muted">First start? The administrator's one-time password was printed by the server and
          saved in <code>bootstrap-admin.txt</code> in its data directory.</p>
      </form>
    </div>`;
}
