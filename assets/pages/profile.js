// The signed-in person's own account: password, two-factor authentication, browser sessions, signing
// out everywhere.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link, navigate } from '../lib/router.js';
import { signOut, useSession } from '../lib/session.js';
import { ErrorBanner, Loading, formatTime } from '../lib/ui.js';

function TwoFactor({ initiallyEnabled }) {
  const [enabled, setEnabled] = useState(initiallyEnabled);
  const [setup, setSetup] = useState(null);
  const [code, setCode] = useState('');
  const [password, setPassword] = useState('');
  const [recovery, setRecovery] = useState(null);
  const [error, setError] = useState(null);

  async function start() {
    setError(null);
    try {
      setSetup(await api.post('/api/v1/auth/totp/setup', {}));
    } catch (e) {
      setError(e);
    }
  }
  async function confirm(event) {
    event.preventDefault();
    setError(null);
    try {
      const r = await api.post('/api/v1/auth/totp/enable', { code: code.trim() });
      setRecovery(r.recovery_codes);
      setSetup(null);
      setEnabled(true);
    } catch (e) {
      setError(e);
    }
  }
  async function disable(event) {
    event.preventDefault();
    setError(null);
    try {
      await api.post('/api/v1/auth/totp/disable', { password });
      setEnabled(false);
      setRecovery(null);
      setPassword('');
    } catch (e) {
      setError(e);
    }
  }

  return html`
    <section class="card form" aria-labelledby="tfa-h">
      <h2 id="tfa-h">Two-factor authentication</h2>
      <${ErrorBanner} error=${error} />
      ${recovery && html`
        <div class="banner banner-ok" role="status" data-testid="recovery-codes">
          <p><strong>Two-factor sign-in is on.</strong> Save these recovery codes now; each works once if you lose your device.</p>
          <p><code class="secret">${recovery.join('  ')}</code></p>
        </div>`}
      ${!setup && enabled !== true && html`
        <p class="small muted">Sign in with a code from an authenticator app as well as your password.</p>
        <button type="button" onClick=${start}>Set up two-factor authentication</button>`}
      ${setup && html`
        <p>Add this key to your authenticator app, then enter the code it shows.</p>
        <p><code class="secret" data-testid="totp-secret">${setup.secret}</code></p>
        <p class="small muted">Or open: <code class="secret">${setup.otpauth_uri}</code></p>
        <form onSubmit=${confirm} aria-label="Confirm two-factor setup">
          <div class="field"><label for="tfa-code">Code from the app</label>
            <input id="tfa-code" inputmode="numeric" autocomplete="one-time-code" required value=${code} onInput=${(e) => setCode(e.currentTarget.value)} /></div>
          <button type="submit">Turn on</button>
        </form>`}
      ${enabled === true && !setup && html`
        <form onSubmit=${disable} aria-label="Turn off two-factor authentication">
          <div class="field"><label for="tfa-pass">Password</label>
            <input id="tfa-pass" type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} /></div>
          <button type="submit" class="secondary">Turn off two-factor authentication</button>
        </form>`}
    </section>`;
}

function Sessions() {
  const [sessions, setSessions] = useState(null);
  const [error, setError] = useState(null);
  async function load() {
    try {
      setSessions((await api.get('/api/v1/auth/sessions')).sessions);
    } catch (e) {
      setError(e);
    }
  }
  useEffect(() => { load(); }, []);
  async function end(s) {
    setError(null);
    try {
      await api.del('/api/v1/auth/sessions/' + encodeURIComponent(s.id));
      if (s.current) {
        await signOut().catch(() => {});
        navigate('/login');
        return;
      }
      await load();
    } catch (e) {
      setError(e);
    }
  }
  return html`
    <section class="card wide" aria-labelledby="sessions-h">
      <h2 id="sessions-h">Where you are signed in</h2>
      <${ErrorBanner} error=${error} />
      ${sessions === null && !error && html`<${Loading} what="sessions" />`}
      ${sessions && html`
        <table data-testid="session-table">
          <thead><tr><th>Signed in</th><th>Last active</th><th>Address</th><th>Browser</th><th></th></tr></thead>
          <tbody>
            ${sessions.map((s) => html`
              <tr key=${s.id}>
                <td>${formatTime(s.created_at)}</td>
                <td>${formatTime(s.last_seen_at)}</td>
                <td><code>${s.ip}</code></td>
                <td class="small">${s.user_agent}${s.current ? html` <strong>(this browser)</strong>` : null}</td>
                <td><button type="button" class="secondary" onClick=${() => end(s)}>${s.current ? 'End this session' : 'End session'}</button></td>
              </tr>`)}
          </tbody>
        </table>`}
    </section>`;
}

export function Profile() {
  const { info } = useSession();
  const [error, setError] = useState(null);
  if (!info) return null;
  async function everywhere() {
    try {
      await api.post('/api/v1/auth/logout-all', {});
      await signOut().catch(() => {});
      navigate('/login');
    } catch (e) {
      setError(e);
    }
  }
  return html`
    <h1>Your account</h1>
    <div class="cards">
      <section class="card" aria-labelledby="acct-h">
        <h2 id="acct-h">Account</h2>
        <p class="big">${info.user.display_name}</p>
        <p class="small muted"><code>${info.user.username}</code>${info.user.is_system_admin ? ' · system administrator' : ''}</p>
        <p><${Link} href="/account/password">Change password</${Link}></p>
        <${ErrorBanner} error=${error} />
        <button type="button" class="secondary" onClick=${everywhere}>Sign out everywhere</button>
      </section>
      <${TwoFactor} initiallyEnabled=${info.totp_enabled} />
      <${Sessions} />
    </div>`;
}
