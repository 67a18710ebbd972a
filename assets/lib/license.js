// The licence state every signed-in person sees as a banner: loaded from GET /api/v1/license/status
// after sign-in and on navigation (at most once a minute), and replaced at once when the licence page
// installs or removes a licence. Views re-render when it changes.
import { useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from './api.js';

const REFRESH_MS = 60 * 1000;

// `owner` is the user the status was loaded for, so that another sign-in in the same tab loads anew.
let current = { status: null, owner: null, loadedAt: 0 };
let pending = null;
const listeners = new Set();

function publish(next) {
  current = next;
  listeners.forEach((fn) => fn(current));
}

/** Takes the status fields from a licence answer (GET/POST/DELETE /api/v1/license or .../status). */
export function setLicenseStatus(answer, owner = current.owner) {
  if (!answer) return;
  // Newer than whatever a load still under way would bring.
  pending = null;
  const { edition, state, restricted, banner } = answer;
  publish({ status: { edition, state, restricted, banner }, owner, loadedAt: Date.now() });
}

/** Loads the status for `owner` (a user id) unless it was loaded for them less than a minute ago. */
export function refreshLicenseStatus(owner, { force = false } = {}) {
  if (!force && owner === current.owner && Date.now() - current.loadedAt < REFRESH_MS) return;
  if (pending && pending.owner === owner && !force) return;
  const entry = { owner };
  pending = entry;
  api.get('/api/v1/license/status').then(
    (answer) => { if (pending === entry) setLicenseStatus(answer, owner); },
    // Not worth an error of its own: the banner keeps what it had, and the next navigation tries again.
    () => {},
  ).finally(() => { if (pending === entry) pending = null; });
}

/** Forgets the status (signed out). */
export function clearLicenseStatus() {
  pending = null;
  if (current.status || current.owner) publish({ status: null, owner: null, loadedAt: 0 });
}

export function useLicenseStatus() {
  const [state, setState] = useState(current);
  useEffect(() => {
    listeners.add(setState);
    setState(current);
    return () => listeners.delete(setState);
  }, []);
  return state;
}

/** The state badge's words and tone for a licence state object. */
export function describeState(state) {
  const days = (n) => `${n} ${n === 1 ? 'day' : 'days'}`;
  switch (state && state.state) {
    case 'community': return { text: 'Community (free plan)', tone: 'neutral' };
    case 'valid': return { text: 'Valid', tone: 'ok' };
    case 'expiring': return { text: `Expiring in ${days(state.days_left)}`, tone: 'warn' };
    case 'grace': return { text: `Grace: ${days(state.days_left)} left`, tone: 'error' };
    case 'restricted': return { text: 'Restricted', tone: 'error' };
    case 'invalid': return { text: `Invalid: ${state.reason}`, tone: 'error' };
    case 'clock_anomaly':
      return { text: state.treated_as_expired ? 'Clock anomaly (treated as expired)' : 'Clock anomaly', tone: state.treated_as_expired ? 'error' : 'warn' };
    default: return { text: 'Unknown', tone: 'neutral' };
  }
}
