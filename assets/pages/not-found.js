// The view for a client route that does not exist.
import { html } from '../vendor/htm-preact-3.1.1.js';
import { Link } from '../lib/router.js';

export function NotFound() {
  return html`
    <h1>Page not found</h1>
    <p>There is no page at <code>${location.pathname}</code>.</p>
    <p><${Link} href="/">Go to the overview</${Link}></p>`;
}
