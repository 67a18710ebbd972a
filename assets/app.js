// Enclave's web UI: the layout (header, navigation, content) and the client-side routes.
// Plain ES modules: no build step; the one library (preact + htm) is vendored under vendor/.
import { html, render, useEffect, useRef } from './vendor/htm-preact-3.1.1.js';
import { Link, navigate, usePath } from './lib/router.js';
import { loadSession, signOut, useSession, wasSignedOutOnPurpose } from './lib/session.js';
import { clearLicenseStatus, refreshLicenseStatus, useLicenseStatus } from './lib/license.js';
import { ChangePassword } from './pages/password.js';
import { Tenant } from './pages/tenant.js';
import { TenantUsage, UsageOverview } from './pages/usage.js';
import { AcceptInvitation } from './pages/invite.js';
import { Profile } from './pages/profile.js';
import { Users } from './pages/users.js';
import { Directories } from './pages/directories.js';
import { SystemAudit } from './pages/audit-log.js';
import { Overview } from './pages/overview.js';
import { Tenants } from './pages/tenants.js';
import { ApiDocs } from './pages/api-docs.js';
import { License } from './pages/license.js';
import { Login } from './pages/login.js';
import { NotFound } from './pages/not-found.js';
import { Models } from './pages/models.js';
import { Playground } from './pages/playground.js';
import { Knowledge } from './pages/knowledge.js';
import { Apps } from './pages/apps.js';
import { Backups } from './pages/backups.js';

const ROUTES = [
  { path: '/', title: 'Overview', view: Overview, nav: true },
  { path: '/tenants', title: 'Tenants', view: Tenants, nav: true },
  { path: '/knowledge', title: 'Knowledge', view: Knowledge, nav: true },
  { path: '/apps', title: 'Apps', view: Apps, nav: true },
  { path: '/playground', title: 'Playground', view: Playground, nav: true },
  { path: '/models', title: 'Models', view: Models, nav: true },
  { path: '/users', title: 'Accounts', view: Users, nav: true, admin: true },
  { path: '/directories', title: 'Directories', view: Directories, nav: true, admin: true },
  { path: '/usage', title: 'Usage', view: UsageOverview, nav: true, admin: true },
  { path: '/audit', title: 'Audit log', view: SystemAudit, nav: true, admin: true },
  { path: '/license', title: 'Licence', view: License, nav: true, admin: true },
  { path: '/backups', title: 'Backups', view: Backups, nav: true, admin: true },
  { path: '/api-docs', title: 'API reference', view: ApiDocs, nav: true },
  { path: '/login', title: 'Sign in', view: Login, nav: false, public: true },
  { path: '/account/password', title: 'Password', view: ChangePassword, nav: false },
  { path: '/account', title: 'Your account', view: Profile, nav: false },
];

// The document title of a page under /tenants/{t}/apps.
function appTitle(path) {
  const sub = path.match(/\/(edit|chat|logs|annotations|end-users)$/);
  return { edit: 'App editor', chat: 'Chat', logs: 'Logs', annotations: 'Annotations', 'end-users': 'End users' }[sub && sub[1]] || 'Apps';
}

// The licence's banner (expiring, grace, restricted, invalid, clock) above every page's content.
function LicenseBanner({ owner, isAdmin }) {
  const { status, owner: loadedFor } = useLicenseStatus();
  if (!status || !status.banner || loadedFor !== owner) return null;
  const error = status.banner.level === 'error';
  return html`
    <div class=${'banner license-banner ' + (error ? 'banner-error' : 'banner-warn')} role=${error ? 'alert' : 'status'} data-testid="license-banner">
      <span>${status.banner.message}</span>
      ${isAdmin && html` <${Link} href="/license">Licence</${Link}>`}
    </div>`;
}

function App() {
  const path = usePath();
  const { loaded, info } = useSession();
  const tenantMatch = path.match(/^\/tenants\/([a-z0-9-]+)$/);
  const usageMatch = path.match(/^\/tenants\/([a-z0-9-]+)\/usage$/);
  const inviteMatch = path.match(/^\/invite\/([0-9a-f]+)$/);
  // Knowledge bases and the retrieval test: the view reads the rest of the path itself.
  const knowledgeMatch = path.match(/^\/tenants\/([a-z0-9-]+)\/(knowledge|retrieval)(\/.*)?$/);
  // Chat apps: the list, editor, chat, logs, annotations and end users (the view reads the rest of the path itself).
  const appsMatch = path.match(/^\/tenants\/([a-z0-9-]+)\/apps(\/.*)?$/);
  const tenantId = tenantMatch ? tenantMatch[1] : usageMatch ? usageMatch[1] : knowledgeMatch ? knowledgeMatch[1] : appsMatch ? appsMatch[1] : undefined;
  const routeId = tenantId || (inviteMatch ? inviteMatch[1] : undefined);
  const route = tenantMatch
    ? { path, title: 'Tenant', view: Tenant }
    : usageMatch
      ? { path, title: 'Tenant usage', view: TenantUsage }
      : inviteMatch
        ? { path, title: 'Invitation', view: AcceptInvitation }
        : knowledgeMatch
          ? { path, title: knowledgeMatch[2] === 'retrieval' || /\/retrieval$/.test(path) ? 'Retrieval test' : 'Knowledge', view: Knowledge }
          : appsMatch
            ? { path, title: appTitle(path), view: Apps }
            : ROUTES.find((r) => r.path === path);

  // Where the session says the person must be: signed out → sign-in; temporary password → change it.
  useEffect(() => {
    if (!loaded) return;
    if (!info && !(route && route.public)) {
      // Come back here after signing in (an invitation link, a deep link).
      if (path !== '/' && path !== '/login' && !wasSignedOutOnPurpose()) sessionStorage.setItem('enclave.next', path + location.search);
      navigate('/login');
    }
    else if (info && info.user.must_change_password && path !== '/account/password') navigate('/account/password');
    else if (info && path === '/login') navigate('/');
  }, [loaded, info, path]);

  // The licence status for the banner: after sign-in, then on navigation at most once a minute. Not
  // while a temporary password must be changed (the server answers nothing else then).
  const licenseOwner = info && !info.user.must_change_password ? info.user.id : null;
  useEffect(() => {
    if (!loaded) return;
    if (licenseOwner !== null) refreshLicenseStatus(licenseOwner);
    else clearLicenseStatus();
  }, [loaded, licenseOwner, path]);

  // After a client-side navigation from the menu (or from a view that went away), move the focus to the
  // new content, as a page load would, so keyboard and screen reader users start there.
  const firstPath = useRef(path);
  useEffect(() => {
    if (path === firstPath.current) return;
    firstPath.current = null;
    const active = document.activeElement;
    const main = document.getElementById('main');
    if (main && (!active || active === document.body || active.closest('nav'))) main.focus({ preventScroll: true });
  }, [path]);

  if (!loaded) return html`<p class="muted center">Loading…</p>`;
  const View = route ? route.view : NotFound;
  document.title = `${route ? route.title : 'Not found'} · Enclave`;
  const user = info && info.user;
  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="topbar">
      <${Link} href="/" class="brand">Enclave</${Link}>
      ${user
        ? html`<div class="account">
            ${info.memberships.length > 0 && html`
              <label class="switcher">Tenant
                <select aria-label="Switch tenant" value=${tenantId || ''}
                  onChange=${(e) => e.currentTarget.value && navigate(`/tenants/${e.currentTarget.value}`)}>
                  <option value="">—</option>
                  ${info.memberships.map((m) => html`<option value=${m.tenant_id}>${m.tenant_name}</option>`)}
                </select></label>`}
            <${Link} href="/account" class="who">${user.display_name}</${Link}>
            <button type="button" class="signin" onClick=${async () => { await signOut(); navigate('/login'); }}>Sign out</button>
          </div>`
        : html`<${Link} href="/login" class="signin" current=${path === '/login'}>Sign in</${Link}>`}
    </header>
    <div class="shell">
      <nav class="sidenav" aria-label="Main">
        <ul>
          ${ROUTES.filter((r) => r.nav && (!r.admin || (user && user.is_system_admin))).map((r) => html`
            <li key=${r.path}><${Link} href=${r.path} current=${r.path === path || (r.path === '/knowledge' && !!knowledgeMatch) || (r.path === '/apps' && !!appsMatch)}>${r.title}</${Link}></li>`)}
        </ul>
      </nav>
      <main id="main" tabindex="-1">
        ${licenseOwner !== null && html`<${LicenseBanner} owner=${licenseOwner} isAdmin=${user.is_system_admin} />`}
        <${View} id=${routeId} />
      </main>
    </div>`;
}

loadSession();
render(html`<${App} />`, document.getElementById('app'));
