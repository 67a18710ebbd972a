// The JSON API client used by every page: same origin, JSON in and out, and one error type that carries
// the server's error code, message and request id (or a network failure) for display.

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
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

async function call(method, path, body, asText = false) {
  const init = { method, headers: { Accept: asText ? 'text/plain, application/json' : 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET' && csrfToken) init.headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network_error', 'The server cannot be reached. Is Enclave running?', null);
  }
  const text = await response.text();
  if (asText && response.ok) return text;
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    const err = data && data.error;
    if (response.status === 401 && path !== '/api/v1/auth/login' && path !== '/api/v1/auth/session') {
      onSignedOut();
    }
    throw new ApiError(
      response.status,
      err ? err.code : 'http_' + response.status,
      err ? err.message : 'The server answered ' + response.status + ' ' + response.statusText,
      (err && err.request_id) || response.headers.get('X-Request-Id'),
    );
  }
  return data;
}

export const api = {
  get: (path) => call('GET', path),
  // A text answer (a file to save, such as the signed usage report); errors are the usual JSON.
  getText: (path) => call('GET', path, undefined, true),
  post: (path, body) => call('POST', path, body),
  patch: (path, body) => call('PATCH', path, body),
  put: (path, body) => call('PUT', path, body),
  del: (path) => call('DELETE', path),
};
