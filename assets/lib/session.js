// The signed-in user, shared by every view: loaded from GET /api/v1/auth/session at start and after
// sign-in, cleared at sign-out. Views re-render when it changes.
import { useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api, setCsrfToken, whenSignedOut } from './api.js';

let current = { loaded: false, info: null };
// Set by an explicit sign-out, so that the app does not offer to return to the page afterwards.
let signedOutOnPurpose = false;

export function wasSignedOutOnPurpose() {
  return signedOutOnPurpose;
}
const listeners = new Set();

function publish(next) {
  current = next;
  setCsrfToken(next.info ? next.info.csrf_token : null);
  listeners.forEach((fn) => fn(current));
}

export function setSession(info) {
  if (info) signedOutOnPurpose = false;
  publish({ loaded: true, info });
}

// Where a person lands after signing in (when no deep link is pending): someone who is not a system
// administrator and belongs to exactly one tenant goes straight to it; everyone else to the overview.
export function landingPath(info) {
  if (info && !info.user.is_system_admin && info.memberships.length === 1) {
    return `/tenants/${info.memberships[0].tenant_id}`;
  }
  return '/';
}

export async function loadSession() {
  try {
    setSession(await api.get('/api/v1/auth/session'));
  } catch (e) {
    setSession(null);
  }
}

export async function signOut() {
  signedOutOnPurpose = true;
  sessionStorage.removeItem('enclave.next');
  try {
    await api.post('/api/v1/auth/logout');
  } finally {
    setSession(null);
  }
}

whenSignedOut(() => setSession(null));

export function useSession() {
  const [state, setState] = useState(current);
  useEffect(() => {
    listeners.add(setState);
    setState(current);
    return () => listeners.delete(setState);
  }, []);
  return state;
}
