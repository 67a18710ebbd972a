// A small History API router: links with the `data-nav` attribute or the Link component change the
// URL without reloading the page, and every view re-renders from location.pathname (and, where it
// reads one, from the query: useSearch).
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';

// Called after every change of the URL.
const listeners = new Set();
const notify = () => listeners.forEach((fn) => fn());

/** Goes to `path`, which may carry a query (`?user=…`: read with useSearch). */
export function navigate(path) {
  if (path === location.pathname + location.search) return;
  history.pushState(null, '', path);
  notify();
  window.scrollTo(0, 0);
}

/** Replaces the current page's query (`params` as URLSearchParams takes them), without a history entry: a filter typed on a page. */
export function replaceSearch(params) {
  const search = String(new URLSearchParams(params));
  history.replaceState(null, '', location.pathname + (search ? `?${search}` : ''));
  notify();
}

window.addEventListener('popstate', notify);

// State that follows the URL: `read()` again after every change of it.
function useUrl(read) {
  const [value, setValue] = useState(read);
  useEffect(() => {
    const heard = () => setValue(read());
    listeners.add(heard);
    return () => listeners.delete(heard);
  }, []);
  return value;
}

/** The current path, without the query. */
export const usePath = () => useUrl(() => location.pathname);

/** The current URL's query, as URLSearchParams. */
export const useSearch = () => new URLSearchParams(useUrl(() => location.search));

function onClick(event) {
  // Modified clicks (new tab, new window, download) and other targets stay with the browser.
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const target = event.currentTarget.getAttribute('target');
  if (target && target !== '_self') return;
  event.preventDefault();
  navigate(event.currentTarget.getAttribute('href'));
}

export function Link({ href, class: className, children, current }) {
  return html`<a href=${href} class=${className} aria-current=${current ? 'page' : undefined} onClick=${onClick}>${children}</a>`;
}
