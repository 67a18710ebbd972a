// Password change. Required before anything else for the bootstrap administrator and after a reset;
// every other session of the account ends when the password changes.
import { html, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { navigate } from '../lib/router.js';
import { landingPath, setSession, useSession } from '../lib/session.js';
import { ErrorBanner } from '../lib/ui.js';

export function ChangePassword() {
  const { info } = useSession();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const forced = info && info.user.must_change_password;

  async function submit(event) {
    event.preventDefault();
    setError(null);
    if (next !== again) {
      setError({ message: 'The two new passwords differ.' });
      return;
    }
    setBusy(true);
    try {
      const updated = await api.post('/api/v1/auth/password', { current_password: current, new_password: next });
      setSession(updated);
      const after = sessionStorage.getItem('enclave.next');
      sessionStorage.removeItem('enclave.next');
      // The end of a first sign-in (a temporary password) lands where a sign-in does.
      navigate(after || (forced ? landingPath(updated) : '/'));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <div class="login">
      <form class="card form" onSubmit=${submit} aria-labelledby="pw-h">
        <h1 id="pw-h">${forced ? 'Choose your password' : 'Change password'}</h1>
        ${forced && html`<p class="banner banner-warn" role="status">This account has a temporary password. Choose your own to continue.</p>`}
        <div class="field">
          <label for="pw-current">Current password</label>
          <input id="pw-current" type="password" autocomplete="current-password" required value=${current}
            onInput=${(e) => setCurrent(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="pw-new">New password</label>
          <input id="pw-new" type="password" autocomplete="new-password" required minlength="12" maxlength="128" value=${next}
            onInput=${(e) => setNext(e.currentTarget.value)} aria-describedby="pw-help" />
          <p id="pw-help" class="small muted">At least 12 characters; a passphrase of several words works well.
            Common passwords are refused.</p>
        </div>
        <div class="field">
          <label for="pw-again">New password again</label>
          <input id="pw-again" type="password" autocomplete="new-password" required value=${again}
            onInput=${(e) => setAgain(e.currentTarget.value)} />
        </div>
        <${ErrorBanner} error=${error} />
        <button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Save password'}</button>
      </form>
    </div>`;
}
