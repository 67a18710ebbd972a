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

/** Bytes in decimal units (1 GB = 10^9 bytes, as licences count storage). */
export function formatBytes(bytes) {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  if (unit === 0) return `${bytes} ${bytes === 1 ? 'byte' : 'bytes'}`;
  return `${value.toLocaleString(undefined, { maximumFractionDigits: value < 10 ? 2 : 1 })} ${units[unit]}`;
}

export function formatNumber(n) {
  return Number(n).toLocaleString();
}

/** A count with its noun: "1 message", "1,204 messages". */
export const formatCount = (n, one, many = `${one}s`) => `${formatNumber(n)} ${Number(n) === 1 ? one : many}`;

/** Saves text as a file through the browser's download, without a round trip to the server. */
export function saveTextFile(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  // The download has its own copy by the time this runs.
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * Millionths of a currency ("micros", as the server keeps money) as an exact decimal with at least two
 * decimals and at most six: 1500000 → "1.50", 266667 → "0.266667". Integer arithmetic only, so that no
 * floating point rounding shows (exact for every amount below 2^53 micros).
 */
export function formatMoney(micros) {
  const m = Math.max(0, Math.trunc(Number(micros) || 0));
  const rest = m % 1e6;
  const whole = (m - rest) / 1e6;
  const fraction = String(rest).padStart(6, '0').replace(/0+$/, '').padEnd(2, '0');
  return `${whole}.${fraction}`;
}
