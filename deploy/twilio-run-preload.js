'use strict';
/*
 * Node preload that points the Twilio Serverless Toolkit (twilio-run /
 * @twilio-labs/serverless-api, HTTP client got v11) at a sigil API server
 * without modifying the toolkit.
 *
 *   NODE_OPTIONS="--require /path/to/sigil/deploy/twilio-run-preload.js" \
 *   SIGIL_API_URL=http://127.0.0.1:18281 \
 *   twilio-run deploy ...
 *
 * Only requests for the Twilio Serverless hosts are redirected:
 *   serverless.twilio.com, serverless-upload.twilio.com and their
 *   regional/edge variants (serverless.dublin.ie1.twilio.com, ...).
 * Path, query, method, headers (incl. Basic auth) and body are kept as they are.
 * Everything else (api.twilio.com, github.com, npm, ...) is untouched.
 *
 * Why this hook works: got v11 looks up `https.request` / `http.request` on the
 * core module objects at request time (got/dist/source/core/index.js
 * `fallbackFn = isHttps ? https.request : http.request`), so replacing the
 * module properties is enough, and the preload order does not matter.
 *
 * SIGIL_API_URL may be http:// or https://, optionally with a path prefix.
 * For https, the server certificate is verified against Node's trust store,
 * which includes NODE_EXTRA_CA_CERTS (e.g. sigil's dev CA certs/ca.pem).
 * A custom agent on the original request (serverless-api adds an hpagent
 * proxy agent when HTTP_PROXY is set) is dropped for redirected requests:
 * sigil is contacted directly, never through the proxy.
 *
 * SIGIL_API_HOST (optional) is the Host header sent instead of SIGIL_API_URL's host:port —
 * for an edge reached by address whose API host name (serverless.{domain}) the machine
 * cannot resolve: SIGIL_API_URL=http://10.0.0.5:8080 SIGIL_API_HOST=serverless.example.com
 *
 * SIGIL_PRELOAD_DEBUG=1 logs every redirected (and passed-through) request to stderr.
 */

const http = require('http');
const https = require('https');
const { URL, urlToHttpOptions } = require('url');

const HOST_RE = /^serverless(?:-upload)?(?:\.[a-z0-9-]+)*\.twilio\.com\.?$/i;
const DEBUG = /^(1|true|yes)$/i.test(process.env.SIGIL_PRELOAD_DEBUG || '');

function log(msg) {
  if (DEBUG) process.stderr.write(`[sigil-preload] ${msg}\n`);
}

function install() {
  const raw = process.env.SIGIL_API_URL;
  if (!raw) {
    process.stderr.write(
      '[sigil-preload] SIGIL_API_URL is not set; Twilio Serverless requests are NOT redirected\n'
    );
    return;
  }
  let target;
  try {
    target = new URL(raw);
  } catch (err) {
    throw new Error(`[sigil-preload] invalid SIGIL_API_URL ${JSON.stringify(raw)}: ${err.message}`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new Error(`[sigil-preload] SIGIL_API_URL must be http:// or https://, got ${raw}`);
  }
  const targetIsHttps = target.protocol === 'https:';
  const basePath = target.pathname.replace(/\/+$/, '');
  const targetHost = target.hostname.replace(/^\[|\]$/g, ''); // strip IPv6 brackets
  const targetPort = target.port ? Number(target.port) : targetIsHttps ? 443 : 80;
  // host[:port] as written in SIGIL_API_URL, unless SIGIL_API_HOST names another.
  const hostHeader = process.env.SIGIL_API_HOST || target.host;

  const orig = {
    http: { request: http.request, get: http.get },
    https: { request: https.request, get: https.get },
  };

  // Normalise (input?, options?, cb?) the way Node's http(s).request does.
  function normalise(args) {
    let i = 0;
    let url = null;
    let options = {};
    if (typeof args[i] === 'string') {
      url = new URL(args[i++]);
    } else if (args[i] instanceof URL) {
      url = args[i++];
    }
    if (args[i] && typeof args[i] === 'object') options = args[i++];
    const cb = typeof args[i] === 'function' ? args[i] : undefined;
    return { url, options, cb };
  }

  function wrapRequest(scheme) {
    return function request(...args) {
      const { url, options, cb } = normalise(args);
      const merged = Object.assign(url ? urlToHttpOptions(url) : {}, options);
      const host = String(merged.hostname || merged.host || '')
        .replace(/:\d+$/, '');
      const path = merged.path || '/';
      if (!HOST_RE.test(host)) {
        if (DEBUG) {
          const port = merged.port ? `:${merged.port}` : '';
          log(`pass-through ${merged.method || 'GET'} ${scheme}://${host}${port}${path}`);
        }
        return orig[scheme].request.apply(this, args);
      }

      const opts = Object.assign({}, merged);
      for (const k of ['href', 'origin', 'search', 'pathname', 'hash', 'servername', '_defaultAgent']) {
        delete opts[k];
      }
      if (opts.agent !== false) delete opts.agent; // use the target module's global agent
      opts.protocol = target.protocol;
      opts.hostname = targetHost;
      opts.host = targetHost;
      opts.port = targetPort;
      opts.path = basePath + (path.startsWith('/') ? path : `/${path}`);
      if (opts.headers && !Array.isArray(opts.headers)) {
        const headers = {};
        for (const [k, v] of Object.entries(opts.headers)) {
          if (k.toLowerCase() !== 'host') headers[k] = v;
        }
        headers.host = hostHeader;
        opts.headers = headers;
      }

      log(`redirect ${opts.method || 'GET'} ${scheme}://${host}${path} -> ${target.protocol}//${hostHeader}${opts.path}`);
      const fn = targetIsHttps ? orig.https.request : orig.http.request;
      return cb ? fn(opts, cb) : fn(opts);
    };
  }

  for (const scheme of ['http', 'https']) {
    const mod = scheme === 'https' ? https : http;
    const request = wrapRequest(scheme);
    mod.request = request;
    mod.get = function get(...args) {
      const req = request.apply(this, args);
      req.end();
      return req;
    };
  }
  log(`redirecting Twilio Serverless API hosts to ${target.protocol}//${hostHeader}${basePath}`);
}

install();
