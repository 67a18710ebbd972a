// API reference rendered from /api/openapi.json: operations grouped by tag, each expandable to its
// parameters, request body and responses, with `$ref` schemas resolved into readable tables.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading } from '../lib/ui.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Renders `code` spans written with backticks in descriptions. */
function Text({ text }) {
  if (!text) return null;
  return text.split('`').map((part, i) => (i % 2 === 1 ? html`<code>${part}</code>` : part));
}

function resolve(doc, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen < 10) {
    const name = schema.$ref.replace('#/components/schemas/', '');
    schema = { ...((doc.components && doc.components.schemas && doc.components.schemas[name]) || {}), _name: name };
    seen += 1;
  }
  return schema || {};
}

function typeLabel(doc, schema) {
  const s = resolve(doc, schema);
  if (s.oneOf || s.anyOf) {
    return (s.oneOf || s.anyOf).map((x) => typeLabel(doc, x)).filter((t) => t !== 'null').join(' | ') + ' (optional)';
  }
  let type = Array.isArray(s.type) ? s.type.filter((t) => t !== 'null').join(' | ') : s.type;
  if (type === 'array') type = `array of ${typeLabel(doc, s.items || {})}`;
  if (s._name && (type === 'object' || !type)) type = s._name;
  if (s.format) type = `${type} (${s.format})`;
  return type || 'any';
}

function Schema({ doc, schema, depth = 0 }) {
  const s = resolve(doc, schema);
  const target = s.type === 'array' ? resolve(doc, s.items || {}) : s;
  const props = target.properties || {};
  const names = Object.keys(props);
  if (names.length === 0 || depth > 4) {
    return html`<span class="type">${typeLabel(doc, schema)}</span>`;
  }
  const required = new Set(target.required || []);
  return html`
    <div class="schema">
      <div class="small muted">${typeLabel(doc, schema)}</div>
      <table class="schema-table">
        <thead><tr><th scope="col">Field</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead>
        <tbody>
          ${names.map((name) => {
            const p = props[name];
            const inner = resolve(doc, p.type === 'array' ? p.items || {} : p);
            const nested = inner.properties && depth < 4;
            return html`
              <tr key=${name}>
                <td><code>${name}</code>${required.has(name) ? html` <span class="req" title="required">*</span>` : null}</td>
                <td>${nested ? html`<${Schema} doc=${doc} schema=${p} depth=${depth + 1} />` : html`<span class="type">${typeLabel(doc, p)}</span>`}</td>
                <td><${Text} text=${p.description || inner.description || ''} />${p.example !== undefined ? html`<div class="small muted">e.g. <code>${JSON.stringify(p.example)}</code></div>` : null}</td>
              </tr>`;
          })}
        </tbody>
      </table>
    </div>`;
}

function Operation({ doc, path, method, op }) {
  const params = op.parameters || [];
  const body = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
  const responses = Object.entries(op.responses || {});
  return html`
    <details class="op" data-testid=${`op-${method}-${path}`}>
      <summary>
        <span class=${'method method-' + method}>${method.toUpperCase()}</span>
        <code class="path">${path}</code>
        <span class="summary"><${Text} text=${op.summary || ''} /></span>
      </summary>
      <div class="op-body">
        ${op.description && op.description !== op.summary ? html`<p><${Text} text=${op.description} /></p>` : null}
        ${params.length > 0 && html`
          <h4>Parameters</h4>
          <table class="schema-table">
            <thead><tr><th scope="col">Name</th><th scope="col">In</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead>
            <tbody>${params.map((p) => html`
              <tr key=${p.name}><td><code>${p.name}</code>${p.required ? html` <span class="req">*</span>` : null}</td>
                <td>${p.in}</td><td>${typeLabel(doc, p.schema || {})}</td><td><${Text} text=${p.description || ''} /></td></tr>`)}
            </tbody>
          </table>`}
        ${op.requestBody && html`
          <h4>Request body</h4>
          ${op.requestBody.description ? html`<p>${op.requestBody.description}</p>` : null}
          ${body ? html`<${Schema} doc=${doc} schema=${body.schema || {}} />` : null}`}
        <h4>Responses</h4>
        <ul class="responses">
          ${responses.map(([status, r]) => {
            const content = r.content || {};
            const type = Object.keys(content)[0];
            return html`
              <li key=${status}>
                <span class=${'status status-' + status[0]}>${status}</span> <${Text} text=${r.description || ''} />
                ${type && content[type].schema ? html`<${Schema} doc=${doc} schema=${content[type].schema} />` : null}
              </li>`;
          })}
        </ul>
      </div>
    </details>`;
}

export function ApiDocs() {
  const [doc, setDoc] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { api.get('/api/openapi.json').then(setDoc, setError); }, []);
  if (error) return html`<h1>API reference</h1><${ErrorBanner} error=${error} />`;
  if (!doc) return html`<h1>API reference</h1><${Loading} what="the API description" />`;

  const groups = new Map();
  for (const tag of doc.tags || []) groups.set(tag.name, { tag, ops: [] });
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const name = (op.tags && op.tags[0]) || 'other';
      if (!groups.has(name)) groups.set(name, { tag: { name }, ops: [] });
      groups.get(name).ops.push({ path, method, op });
    }
  }
  return html`
    <h1>API reference</h1>
    <p class="muted">${doc.info.title} ${doc.info.version}. <${Text} text=${doc.info.description} />
      ${' '}The machine-readable description is at <a href="/api/openapi.json">/api/openapi.json</a>.</p>
    ${[...groups.values()].filter((g) => g.ops.length > 0).map(({ tag, ops }) => html`
      <section key=${tag.name} aria-labelledby=${'tag-' + tag.name}>
        <h2 id=${'tag-' + tag.name}>${tag.name}</h2>
        ${tag.description ? html`<p class="muted"><${Text} text=${tag.description} /></p>` : null}
        ${ops.map((o) => html`<${Operation} key=${o.method + o.path} doc=${doc} ...${o} />`)}
      </section>`)}`;
}
