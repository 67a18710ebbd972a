// API reference rendered from /api/openapi.json: operations grouped by tag, each expandable to its
// parameters, request body and responses, with `$ref` schemas resolved into readable tables.
import { html, useEffect, useState } from '../vendor/htm-preact-3.1.1.js';
import { api } from '../lib/api.js';
import { ErrorBanner, Loading } from '../lib/ui.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'trace'];

/** Renders `code` spans written with backticks in descriptions. */
function Text({ text }) {
  if (!text) return null;
  return text.split('`').map((part, i) => (i % 2 === 1 ? html`<code>${part}</code>` : part));
}

/** Follows a local JSON pointer such as `#/components/schemas/Tenant` (other documents are not fetched). */
function lookup(doc, ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#/')) return undefined;
  return ref.slice(2).split('/')
    .map((key) => decodeURIComponent(key).replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((node, key) => (node == null ? undefined : node[key]), doc);
}

/** Replaces `$ref` objects (schemas, parameters, request bodies, responses) by what they point to; keys
 *  written beside `$ref` (OpenAPI 3.1 allows a description there) win. `_name` keeps the last name. */
function deref(doc, node) {
  let name;
  for (let hops = 0; node && node.$ref && hops < 20; hops += 1) {
    const { $ref, ...siblings } = node;
    name = $ref.split('/').pop();
    const target = lookup(doc, $ref);
    node = target ? { ...target, ...siblings } : { ...siblings, _unresolved: $ref };
  }
  node = node || {};
  return name && !node._name ? { ...node, _name: name } : node;
}

/** A schema with its `$ref`s followed and its `allOf` parts merged into one object schema. */
function resolve(doc, schema, depth = 0) {
  const s = deref(doc, schema);
  if (!Array.isArray(s.allOf) || depth > 8) return s;
  const { allOf, ...rest } = s;
  const merged = { ...rest, properties: { ...(rest.properties || {}) }, required: [...(rest.required || [])] };
  for (const part of allOf) {
    const p = resolve(doc, part, depth + 1);
    if (!merged.type && p.type) merged.type = p.type;
    if (!merged.description && p.description) merged.description = p.description;
    Object.assign(merged.properties, p.properties || {});
    merged.required.push(...(p.required || []));
  }
  return merged;
}

/** A short type name: `string (date-time)`, `array of Tenant`, `Role`, `string | integer`. */
function typeLabel(doc, schema, depth = 0) {
  if (depth > 6) return '…';
  const s = resolve(doc, schema, depth);
  if (s._unresolved) return `unresolved ${s._unresolved}`;
  const variants = s.oneOf || s.anyOf;
  if (variants) {
    const labels = variants.map((v) => typeLabel(doc, v, depth + 1)).filter((t) => t !== 'null');
    return [...new Set(labels)].join(' | ') || 'any';
  }
  const types = (Array.isArray(s.type) ? s.type : s.type ? [s.type] : []).filter((t) => t !== 'null');
  let label = types.map((t) => {
    if (t === 'array') return `array of ${typeLabel(doc, s.items || {}, depth + 1)}`;
    if (t === 'object' && !s.properties && s.additionalProperties && typeof s.additionalProperties === 'object') {
      return `map of ${typeLabel(doc, s.additionalProperties, depth + 1)}`;
    }
    return t;
  }).join(' | ');
  if (s._name && (!label || label === 'object' || s.enum)) label = s._name;
  if (!label) label = s.properties ? 'object' : 'any';
  if (s.format) label += ` (${s.format})`;
  return label;
}

/** What a schema allows beyond its type: enum values, bounds, pattern, default. */
function Constraints({ doc, schema }) {
  const s = resolve(doc, schema);
  const inner = s.type === 'array' || (Array.isArray(s.type) && s.type.includes('array')) ? resolve(doc, s.items || {}) : s;
  const notes = [];
  if (Array.isArray(inner.enum)) {
    notes.push(html`one of ${inner.enum.map((v, i) => html`${i > 0 ? ', ' : ''}<code>${JSON.stringify(v)}</code>`)}`);
  }
  const bounds = [['minimum', '≥'], ['maximum', '≤'], ['exclusiveMinimum', '>'], ['exclusiveMaximum', '<']];
  for (const [key, sign] of bounds) if (typeof s[key] === 'number') notes.push(`${sign} ${s[key]}`);
  if (s.minLength !== undefined || s.maxLength !== undefined) {
    notes.push(`${s.minLength ?? 0}–${s.maxLength ?? '∞'} characters`);
  }
  if (s.minItems !== undefined || s.maxItems !== undefined) notes.push(`${s.minItems ?? 0}–${s.maxItems ?? '∞'} items`);
  if (s.pattern) notes.push(html`pattern <code>${s.pattern}</code>`);
  if (s.default !== undefined) notes.push(html`default <code>${JSON.stringify(s.default)}</code>`);
  if (notes.length === 0) return null;
  return html`<div class="small muted">${notes.map((n, i) => html`${i > 0 ? '; ' : ''}${n}`)}</div>`;
}

const isArray = (s) => s.type === 'array' || (Array.isArray(s.type) && s.type.includes('array'));

/** A schema as a table of its fields (nested objects as tables inside), or just its type name. */
function Schema({ doc, schema, depth = 0 }) {
  const s = resolve(doc, schema);
  const target = isArray(s) ? resolve(doc, s.items || {}) : s;
  const props = target.properties || {};
  const names = Object.keys(props);
  if (names.length === 0 || depth > 4) {
    return html`<div class="schema"><span class="type">${typeLabel(doc, schema)}</span><${Constraints} doc=${doc} schema=${schema} /></div>`;
  }
  const required = new Set(target.required || []);
  return html`
    <div class="schema">
      <div class="small muted">${typeLabel(doc, schema)}</div>
      <table class="schema-table">
        <thead><tr><th scope="col">Field</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead>
        <tbody>
          ${names.map((name) => {
            const p = resolve(doc, props[name]);
            const inner = isArray(p) ? resolve(doc, p.items || {}) : p;
            const nested = inner.properties && Object.keys(inner.properties).length > 0 && depth < 4;
            return html`
              <tr key=${name}>
                <td><code>${name}</code>${required.has(name) ? html` <span class="req" title="required">*</span>` : null}</td>
                <td>${nested ? html`<${Schema} doc=${doc} schema=${props[name]} depth=${depth + 1} />` : html`<span class="type">${typeLabel(doc, props[name])}</span>`}</td>
                <td><${Text} text=${p.description || inner.description || ''} />
                  ${p.deprecated ? html` <span class="pill">deprecated</span>` : null}
                  <${Constraints} doc=${doc} schema=${props[name]} />
                  ${p.example !== undefined ? html`<div class="small muted">e.g. <code>${JSON.stringify(p.example)}</code></div>` : null}</td>
              </tr>`;
          })}
        </tbody>
      </table>
    </div>`;
}

/** The media type to show: JSON when there is one, else the first listed. */
function pickContent(content) {
  const types = Object.keys(content || {});
  const type = types.find((t) => t === 'application/json' || t.endsWith('+json')) || types[0];
  return type ? { type, media: content[type], others: types.filter((t) => t !== type) } : null;
}

/** Path-level parameters apply to every operation of the path; an operation's own of the same name win. */
function parametersOf(doc, item, op) {
  const all = new Map();
  for (const raw of [...(item.parameters || []), ...(op.parameters || [])]) {
    const p = deref(doc, raw);
    all.set(`${p.in}:${p.name}`, p);
  }
  return [...all.values()];
}

function Operation({ doc, path, method, op, item }) {
  const params = parametersOf(doc, item, op);
  const requestBody = op.requestBody ? deref(doc, op.requestBody) : null;
  const body = requestBody && pickContent(requestBody.content);
  const responses = Object.entries(op.responses || {}).map(([status, r]) => [status, deref(doc, r)]);
  const shown = new Set();
  return html`
    <details class="op" data-testid=${`op-${method}-${path}`}>
      <summary>
        <span class=${'method method-' + method}>${method.toUpperCase()}</span>
        <code class="path">${path}</code>
        <span class="summary"><${Text} text=${op.summary || ''} /></span>
        ${op.deprecated ? html`<span class="pill">deprecated</span>` : null}
      </summary>
      <div class="op-body">
        ${op.description && op.description !== op.summary ? html`<p><${Text} text=${op.description} /></p>` : null}
        ${params.length > 0 && html`
          <h4>Parameters</h4>
          <table class="schema-table">
            <thead><tr><th scope="col">Name</th><th scope="col">In</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead>
            <tbody>${params.map((p) => html`
              <tr key=${p.in + ':' + p.name}><td><code>${p.name}</code>${p.required ? html` <span class="req" title="required">*</span>` : null}</td>
                <td>${p.in}</td><td><span class="type">${typeLabel(doc, p.schema || {})}</span></td>
                <td><${Text} text=${p.description || ''} /><${Constraints} doc=${doc} schema=${p.schema || {}} /></td></tr>`)}
            </tbody>
          </table>`}
        ${requestBody && html`
          <h4>Request body${requestBody.required ? html` <span class="req" title="required">*</span>` : null}</h4>
          ${requestBody.description ? html`<p><${Text} text=${requestBody.description} /></p>` : null}
          ${body && body.type !== 'application/json' ? html`<p class="small muted"><code>${body.type}</code></p>` : null}
          ${body && body.media.schema ? html`<${Schema} doc=${doc} schema=${body.media.schema} />` : null}`}
        <h4>Responses</h4>
        <ul class="responses">
          ${responses.map(([status, r]) => {
            const content = pickContent(r.content);
            // A named schema shown in full for an earlier status (the error shape, typically) is only named.
            const ref = content && content.media.schema && content.media.schema.$ref;
            const shownAbove = ref && shown.has(ref);
            if (ref) shown.add(ref);
            return html`
              <li key=${status}>
                <span class=${'status status-' + status[0]}>${status}</span> <${Text} text=${r.description || ''} />
                ${content && (content.type !== 'application/json' || content.others.length > 0)
                  ? html` <span class="small muted">${[content.type, ...content.others].map((t, i) => html`${i > 0 ? ', ' : ''}<code>${t}</code>`)}</span>`
                  : null}
                ${content && content.media.schema && !shownAbove ? html`<${Schema} doc=${doc} schema=${content.media.schema} />` : null}
                ${shownAbove ? html`<div class="small muted">${typeLabel(doc, content.media.schema)}, as above</div>` : null}
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
      groups.get(name).ops.push({ path, method, op, item });
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
