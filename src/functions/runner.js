'use strict';
// sigil's Function runner: one long-lived Node process for one Build, one call at a time.
//
// sigil (Rust) starts it, checks access, limits and time before any JavaScript runs, and
// speaks to it in JSON lines: an `init` line on stdin, then one `call` line per request, each
// answered on descriptor 3 by one `reply` line (with `log` lines before it). Descriptors 1 and
// 2 go to sigil's log, so what a Function writes there itself never mixes with the replies. What the handler sees follows Twilio's
// runtime as `@twilio/runtime-handler` models it: `exports.handler(context, event, callback)`,
// the globals `Twilio` (the Build's `twilio` package plus `Twilio.Response`), `Runtime`
// (`getAssets`, `getFunctions`, `getSync`) and `Functions`. An exception nobody catches ends
// the process after a `fatal` line: sigil answers that call with a 500 and starts another.

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const util = require('util');

let current = null; // the id of the call in progress

/** Writes all of `text` to descriptor 3 (blocking: sigil reads it while a call runs). */
function writeOut(text) {
  const bytes = Buffer.from(text);
  let done = 0;
  while (done < bytes.length) {
    try {
      done += fs.writeSync(3, bytes, done);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

// Each message on a line of its own, a newline first too: whatever a Function wrote to the
// descriptor itself ends before it (sigil passes over lines it does not understand).
function send(message) {
  writeOut('\n' + JSON.stringify(message) + '\n');
}

// Everything the Function prints becomes a log line of the call it belongs to; the pipe
// to sigil carries only protocol lines.
const levels = { log: 'info', info: 'info', debug: 'info', warn: 'warn', error: 'error', trace: 'error' };
for (const [name, level] of Object.entries(levels)) {
  console[name] = (...args) => send({ type: 'log', id: current, level, message: util.format(...args) });
}
function streamToLog(level) {
  return (chunk, encoding, cb) => {
    send({ type: 'log', id: current, level, message: String(chunk).replace(/\n$/, '') });
    const done = typeof encoding === 'function' ? encoding : cb;
    if (done) done();
    return true;
  };
}
process.stdout.write = streamToLog('info');
process.stderr.write = streamToLog('error');

function describe(err) {
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack };
  return { name: 'Error', message: typeof err === 'string' ? err : util.inspect(err) };
}
for (const event of ['uncaughtException', 'unhandledRejection']) {
  process.on(event, (err) => {
    send({ type: 'fatal', id: current, error: describe(err) });
    process.exit(70);
  });
}

/** `Twilio.Response`, as the runtime defines it. */
class Response {
  constructor(options = {}) {
    this._statusCode = options.statusCode || 200;
    this._body = options.body;
    this._headers = {};
    if (options.headers) this.setHeaders(options.headers);
  }
  setStatusCode(code) {
    this._statusCode = code;
    return this;
  }
  setBody(body) {
    this._body = body;
    return this;
  }
  appendHeader(key, value) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      throw new TypeError(`Header value for ${key} cannot be an object`);
    }
    const before = this._headers[key];
    if (before === undefined && key.toLowerCase() !== 'set-cookie') this._headers[key] = value;
    else this._headers[key] = [].concat(before === undefined ? [] : before, value);
    return this;
  }
  setHeaders(headers) {
    this._headers = {};
    for (const [key, value] of Object.entries(headers || {})) this.appendHeader(key, value);
    return this;
  }
  setCookie(key, value, attributes = []) {
    return this.appendHeader('Set-Cookie', [`${key}=${value}`, ...attributes].join(';'));
  }
  removeCookie(key) {
    const kept = [].concat(this._headers['Set-Cookie'] || []).filter((c) => !c.startsWith(`${key}=`));
    this._headers['Set-Cookie'] = [...kept, `${key}=;Max-Age=0`];
    return this;
  }
}

let config = null; // the init line
let twilio = null;
let callContext = {}; // the context of the newest call, for Runtime.getSync()

function twilioClient(context, options) {
  const sid = context.ACCOUNT_SID;
  if (typeof sid !== 'string' || !/^AC[0-9a-fA-F]{32}$/.test(sid) || !context.AUTH_TOKEN) {
    const err = new Error(
      'getTwilioClient() needs ACCOUNT_SID and AUTH_TOKEN: turn on the Service\'s IncludeCredentials',
    );
    err.code = 'INVALID_CONFIG';
    throw err;
  }
  return twilio(sid, context.AUTH_TOKEN, { lazyLoading: true, ...options });
}

function init(message) {
  config = message;
  twilio = require(path.join(config.buildDir, 'node_modules', 'twilio'));
  const assets = {};
  for (const [assetPath, file] of Object.entries(config.assets)) {
    assets[assetPath] = { path: file, open: () => fs.readFileSync(file, 'utf8') };
  }
  const functions = {};
  for (const [fnPath, file] of Object.entries(config.functions)) {
    functions[fnPath.replace(/^\//, '')] = { path: file };
  }
  global.Twilio = { ...twilio, Response };
  global.Response = Response;
  global.Runtime = {
    getAssets: () => assets,
    getFunctions: () => functions,
    getSync(options = {}) {
      const service = twilioClient(callContext, options).sync.v1.services(
        options.serviceName || 'default',
      );
      service.maps = service.syncMaps;
      service.lists = service.syncLists;
      return service;
    },
  };
  global.Functions = functions;
  send({ type: 'ready' });
}

function isTwiml(result) {
  const t = twilio.twiml;
  return [t.VoiceResponse, t.MessagingResponse, t.FaxResponse].some((k) => k && result instanceof k);
}

function bodyOf(value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { body: Buffer.from(value).toString('base64'), base64: true };
  }
  return { body: value === undefined || value === null ? '' : String(value), base64: false };
}

function headerPairs(headers) {
  const pairs = [];
  for (const [key, value] of Object.entries(headers)) {
    for (const v of [].concat(value)) pairs.push([key, String(v)]);
  }
  return pairs;
}

/** The HTTP reply `callback(err, result)` stands for. */
function replyFor(err, result) {
  if (err) {
    const { name, message, stack } = describe(err);
    const shown = config.debug ? { message, name, stack } : { message, name };
    return { status: 500, headers: [['Content-Type', 'application/json']], ...bodyOf(JSON.stringify(shown)) };
  }
  if (result instanceof Response) {
    const headers = headerPairs(result._headers);
    let body = result._body;
    if (body !== undefined && body !== null && typeof body === 'object' && !Buffer.isBuffer(body)) {
      body = JSON.stringify(body);
      if (!headers.some(([k]) => k.toLowerCase() === 'content-type')) {
        headers.push(['Content-Type', 'application/json']);
      }
    }
    return { status: result._statusCode, headers, ...bodyOf(body) };
  }
  if (typeof result === 'string') {
    return { status: 200, headers: [['Content-Type', 'text/plain; charset=utf-8']], ...bodyOf(result) };
  }
  if (result !== null && typeof result === 'object' && isTwiml(result)) {
    return { status: 200, headers: [['Content-Type', 'text/xml']], ...bodyOf(result.toString()) };
  }
  if (Buffer.isBuffer(result)) {
    return { status: 200, headers: [['Content-Type', 'application/octet-stream']], ...bodyOf(result) };
  }
  if (result === undefined) return { status: 200, headers: [], ...bodyOf('') };
  return { status: 200, headers: [['Content-Type', 'application/json']], ...bodyOf(JSON.stringify(result)) };
}

function call(message) {
  const id = message.id;
  current = id;
  let answered = false;
  const callback = (err, result) => {
    if (answered) return;
    answered = true;
    let reply;
    try {
      reply = replyFor(err, result);
    } catch (e) {
      reply = replyFor(e);
    }
    send({ type: 'reply', id, ...reply });
    if (current === id) current = null;
  };
  callContext = message.context;
  const context = {
    ...message.context,
    getTwilioClient: (options) => twilioClient(message.context, options),
  };
  try {
    const handler = require(message.file).handler;
    if (typeof handler !== 'function') {
      throw new Error(`Could not find a handler: ${message.path} does not export a function named handler`);
    }
    const returned = handler(context, message.event, callback);
    // An async handler's value stands for `callback(null, value)`; its rejection for an error.
    if (returned && typeof returned.then === 'function') {
      returned.then((value) => value !== undefined && callback(null, value), (e) => callback(e));
    }
  } catch (e) {
    callback(e);
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  const message = JSON.parse(line);
  if (message.type === 'init') init(message);
  else if (message.type === 'call') call(message);
});
// sigil closed the pipe: nothing more will come.
lines.on('close', () => process.exit(0));
