// A small History API router: links with the `data-nav` attribute or the Link component change the
// URL without reloading the page, and every view re-renders from location.pathname.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';

const listeners = new Set();

export function navigate(path) {
  if (path === location.pathname) return;
  history.pushState(null, '', path);
  listeners.forEach((fn) => fn(path));
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => listeners.forEach((fn) => fn(location.pathname)));

export function usePath() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    listeners.add(setPath);
    return () => listeners.delete(setPath);
  }, []);
  return path;
}

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
