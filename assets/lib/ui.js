// Shared view pieces: error banners that show the server's message and request id, loading states,
// and formatting helpers.
import { html } from '../vendor/htm-preact-3.1.1.js';

export function ErrorBanner({ error }) {
  if (!error) return null;
  return html`
    <div class="banner banner-error" role="alert">
      <strong>${error.message}</strong>
      ${error.code ? html`<span class="muted"> (${error.code})</span>` : null}
      ${error.requestId ? html`<div class="small muted">Request id: <code>${error.requestId}</code></div>` : null}
    </div>`;
}

export function Loading({ what }) {
  return html`<p class="muted" aria-live="polite">Loading ${what}…</p>`;
}

export function formatDuration(seconds) {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${seconds} s`;
}

export function formatTime(rfc3339) {
  const t = new Date(rfc3339);
  return isNaN(t) ? rfc3339 : t.toLocaleString();
}
