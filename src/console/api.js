// A small client of sigil's Serverless v1 API for the Console. It signs in with a session
// cookie (HttpOnly: this code never sees it) and sends the session's CSRF token, kept in
// memory only, with every change.

let csrf = null;
let edgePorts = null;

/** An API error: the HTTP status and Twilio's message. */
export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail || '';
  }
}

function remember(resp) {
  const ports = resp.headers.get('sigil-edge-ports');
  if (ports) edgePorts = ports;
}

async function failure(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.message) message = body.message;
  } catch (_) { /* not JSON */ }
  return new ApiError(resp.status, message, resp.headers.get('sigil-build-error'));
}

/** Sends `method` to `path` (under /v1, or absolute) with `form` url-encoded: the response,
 * or an ApiError when it is not a success. */
async function send(method, path, form) {
  const headers = { Accept: 'application/json', 'X-Requested-With': 'sigil-console' };
  let body;
  if (form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(form)) {
      for (const one of Array.isArray(v) ? v : [v]) {
        if (one !== undefined && one !== null) params.append(k, one);
      }
    }
    body = params.toString();
  }
  if (method !== 'GET' && csrf) headers['X-Sigil-CSRF'] = csrf;
  const url = path.startsWith('/') && !path.startsWith('/v1') && !path.startsWith('/console')
    ? `/v1${path}` : path;
  const resp = await fetch(url, { method, headers, body, credentials: 'same-origin' });
  remember(resp);
  if (!resp.ok) throw await failure(resp);
  return resp;
}

/** Calls `method` on `path`: its JSON (or a Blob for other content; null for 204). */
export async function call(method, path, form) {
  const resp = await send(method, path, form);
  if (resp.status === 204) return null;
  const type = resp.headers.get('content-type') || '';
  return type.includes('json') ? resp.json() : resp.blob();
}

/** A Build's status, with sigil's reason when it failed (`error`). */
export async function buildStatus(service, build) {
  const resp = await send('GET', `/Services/${service}/Builds/${build}/Status`);
  const st = await resp.json();
  st.error = resp.headers.get('sigil-build-error');
  return st;
}

/** Every item of a list, following next_page_url (at most `most`). */
export async function all(path, key, most = 5000) {
  const items = [];
  let next = path.includes('?') ? `${path}&PageSize=1000` : `${path}?PageSize=1000`;
  while (next && items.length < most) {
    const page = await call('GET', next);
    items.push(...page[key]);
    const url = page.meta && page.meta.next_page_url;
    next = url ? (() => { const u = new URL(url, location.href); return u.pathname + u.search; })() : null;
  }
  return items.slice(0, most);
}

/** The signed-in session, or null. */
export async function session() {
  try {
    const s = await call('GET', '/console/session');
    csrf = s.csrf_token;
    return s;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function signIn(accountSid, authToken) {
  const s = await call('POST', '/console/session', { AccountSid: accountSid, AuthToken: authToken });
  csrf = s.csrf_token;
  return s;
}

export async function signOut() {
  try {
    await call('DELETE', '/console/session');
  } finally {
    csrf = null;
  }
}

/**
 * Uploads a new Version of an Asset or Function (multipart, as the helper libraries do),
 * reporting progress as a fraction to `onProgress`.
 */
export function uploadVersion(service, kind, sid, { path, visibility, content, type }, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append('Path', path);
    form.append('Visibility', visibility);
    const blob = content instanceof Blob ? content : new Blob([content], { type });
    form.append('Content', blob, path.split('/').pop() || 'file');
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/v1/Services/${service}/${kind}/${sid}/Versions`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('X-Requested-With', 'sigil-console');
    if (csrf) xhr.setRequestHeader('X-Sigil-CSRF', csrf);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(1);
        resolve(body);
      } else {
        reject(new ApiError(xhr.status, (body && body.message) || `${xhr.status}`));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, 'The upload did not reach the server'));
    xhr.send(form);
  });
}

/** Where an Environment's domain is served, as seen from this page. */
export function siteUrl(domain, path = '/') {
  const https = location.protocol === 'https:';
  let port = location.port;
  if (edgePorts) {
    const m = edgePorts.match(https ? /https=(\d+)/ : /http=(\d+)/);
    if (m) port = m[1];
  }
  const dflt = https ? '443' : '80';
  return `${location.protocol}//${domain}${port && port !== dflt ? `:${port}` : ''}${path}`;
}
