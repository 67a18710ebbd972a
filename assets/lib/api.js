// The JSON API client used by every page: same origin, JSON in and out, and one error type that carries
// the server's error code, message and request id (or a network failure) for display.

export class ApiError extends Error {
  constructor(status, code, message, requestId, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    // The request field the error is about, when the server names one (forms show it there).
    this.param = param;
  }
}

// The session's CSRF token, sent with every change (the session cookie itself is HttpOnly).
let csrfToken = null;
// Called when the server says the session is gone, so the app can show the sign-in page.
let onSignedOut = () => {};

export function setCsrfToken(token) {
  csrfToken = token;
}

export function whenSignedOut(callback) {
  onSignedOut = callback;
}

async function call(method, path, body, asText = false, extraHeaders = {}) {
  const init = { method, headers: { Accept: asText ? 'text/plain, application/json' : 'application/json', ...extraHeaders }, credentials: 'same-origin' };
  if (method !== 'GET' && csrfToken) init.headers['X-CSRF-Token'] = csrfToken;
  if (body instanceof FormData) {
    init.body = body; // multipart: the browser sets the Content-Type with its boundary
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network_error', 'The server cannot be reached. Is Enclave running?', null);
  }
  if (!response.ok) throw await errorOf(response, path);
  const text = await response.text();
  if (asText) return text;
  try {
    return text ? JSON.parse(text) : null;
  } catch (e) {
    return null;
  }
}

// The ApiError for a failed response (and the sign-out signal on a lost session).
async function errorOf(response, path) {
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  const err = data && data.error;
  if (response.status === 401 && path !== '/api/v1/auth/login' && path !== '/api/v1/auth/session') {
    onSignedOut();
  }
  return new ApiError(
    response.status,
    err ? err.code : 'http_' + response.status,
    err ? err.message : 'The server answered ' + response.status + ' ' + response.statusText,
    (err && err.request_id) || response.headers.get('X-Request-Id'),
    (err && err.param) || null,
  );
}

// POSTs and reads a server-sent event stream (`data: {json}` … `data: [DONE]`), calling onEvent with
// each parsed event. An error before the stream starts throws an ApiError; one inside the stream
// arrives as an event with an `error` field.
export async function streamEvents(path, body, extraHeaders, onEvent, signal) {
  const headers = { Accept: 'text/event-stream', 'Content-Type': 'application/json', ...extraHeaders };
  if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, { method: 'POST', headers, credentials: 'same-origin', body: JSON.stringify(body), signal });
  } catch (e) {
    if (e.name === 'AbortError') return;
    throw new ApiError(0, 'network_error', 'The server cannot be reached. Is Enclave running?', null);
  }
  if (!response.ok) throw await errorOf(response, path);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (e.name === 'AbortError') return;
      throw new ApiError(0, 'network_error', 'The connection to the server was lost.', null);
    }
    const { value, done } = chunk;
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

export const api = {
  get: (path) => call('GET', path),
  // A text answer (a file to save, such as the signed usage report); errors are the usual JSON.
  getText: (path) => call('GET', path, undefined, true),
  post: (path, body) => call('POST', path, body),
  // A multipart form (uploads, chunk previews); the answer is JSON.
  postForm: (path, form) => call('POST', path, form),
  // With extra headers (the playground names its tenant in Enclave-Tenant).
  postWith: (path, body, headers) => call('POST', path, body, false, headers),
  patch: (path, body) => call('PATCH', path, body),
  put: (path, body) => call('PUT', path, body),
  del: (path) => call('DELETE', path),
};
