// Accepting an invitation link (/invite/<token>): the signed-in person it names joins the tenant.
import { html, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { Link } from '../lib/router.js';
import { loadSession } from '../lib/session.js';
import { ErrorBanner } from '../lib/ui.js';

export function AcceptInvitation({ id: token }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [accepted, setAccepted] = useState(null);

  async function accept() {
    setBusy(true);
    setError(null);
    try {
      const invitation = await api.post('/api/v1/invitations/accept', { token });
      setAccepted(invitation);
      await loadSession();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <div class="login">
      <div class="card form">
        <h1>Invitation</h1>
        ${accepted
          ? html`<div class="banner banner-ok" role="status">You joined <strong>${accepted.tenant_id}</strong> as ${accepted.role}.</div>
              <p><${Link} href=${`/tenants/${accepted.tenant_id}`}>Open the tenant</${Link}></p>`
          : html`<p>You were invited to join a tenant. Accept to become a member.</p>
              <${ErrorBanner} error=${error} />
              <button type="button" onClick=${accept} disabled=${busy}>${busy ? 'Accepting…' : 'Accept invitation'}</button>`}
      </div>
    </div>`;
}
