'use strict';
// Tests of runner.js over its pipes, as sigil drives it (run by tests/functions_runner.rs,
// which installs the `twilio` package and names its node_modules in SIGIL_TEST_NODE_MODULES).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const RUNNER = path.join(__dirname, 'runner.js');
const NODE_MODULES = process.env.SIGIL_TEST_NODE_MODULES;

// Build directories made here, removed when the tests end.
const dirs = [];
test.after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A Build directory with these Function sources (path → code) and private assets. */
function build(functions, assets = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sigil-runner-'));
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, 'functions'));
  fs.mkdirSync(path.join(dir, 'assets'));
  fs.symlinkSync(NODE_MODULES, path.join(dir, 'node_modules'));
  const files = {};
  for (const [p, code] of Object.entries(functions)) {
    files[p] = path.join(dir, 'functions', `${p.slice(1).replace(/\//g, '_')}.js`);
    fs.writeFileSync(files[p], code);
  }
  const assetFiles = {};
  for (const [p, text] of Object.entries(assets)) {
    assetFiles[p] = path.join(dir, 'assets', p.slice(1).replace(/\//g, '_'));
    fs.writeFileSync(assetFiles[p], text);
  }
  return { dir, files, assetFiles };
}

// Runners still alive when the tests end (a failed assertion leaves its runner running) are
// killed, so a failure ends the run instead of hanging it.
const children = [];
test.after(() => children.forEach((c) => c.kill('SIGKILL')));

/** A running runner: `call()` resolves with the reply and the lines logged before it. */
function start(b, { debug = false } = {}) {
  // As sigil starts it: replies on descriptor 3, stdout and stderr apart.
  const child = spawn(process.execPath, [RUNNER], { cwd: b.dir, stdio: ['pipe', 'pipe', 'inherit', 'pipe'] });
  children.push(child);
  const lines = readline.createInterface({ input: child.stdio[3] });
  const waiting = [];
  const seen = [];
  lines.on('line', (line) => {
    if (line === '') return; // each message starts on a new line
    seen.push(JSON.parse(line));
    while (waiting.length && waiting[0].check()) waiting.shift().resolve();
  });
  const until = (pred) =>
    new Promise((resolve) => {
      const entry = { check: () => seen.some(pred), resolve };
      if (!entry.check()) waiting.push(entry);
      else resolve();
    });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  child.stdin.write(JSON.stringify({ type: 'init', buildDir: b.dir, functions: b.files, assets: b.assetFiles, debug }) + '\n');
  let next = 1;
  return {
    ready: until((m) => m.type === 'ready'),
    exited,
    async call(fnPath, event = {}, context = {}) {
      const id = next++;
      child.stdin.write(JSON.stringify({ type: 'call', id, path: fnPath, file: b.files[fnPath], event, context }) + '\n');
      await until((m) => (m.type === 'reply' && m.id === id) || m.type === 'fatal');
      const reply = seen.find((m) => (m.type === 'reply' && m.id === id) || m.type === 'fatal');
      const logs = seen.filter((m) => m.type === 'log' && m.id === id).map((m) => [m.level, m.message]);
      return { reply, logs };
    },
    stop() {
      child.stdin.end();
      return exited;
    },
  };
}

test('callback results become HTTP replies as on Twilio', async () => {
  const b = build({
    '/text': "exports.handler = (c, e, cb) => cb(null, 'hi ' + e.Name);",
    '/twiml': "exports.handler = (c, e, cb) => { const t = new Twilio.twiml.MessagingResponse(); t.message('yo'); cb(null, t); };",
    '/object': 'exports.handler = (c, e, cb) => cb(null, { a: [1, 2] });',
    '/nothing': 'exports.handler = (c, e, cb) => cb();',
    '/buffer': "exports.handler = (c, e, cb) => cb(null, Buffer.from([0, 255]));",
    '/async': 'exports.handler = async () => ({ async: true });',
    '/twice': "exports.handler = (c, e, cb) => { cb(null, 'first'); cb(null, 'second'); };",
    '/response': `exports.handler = (c, e, cb) => {
      const r = new Twilio.Response({ statusCode: 202 });
      r.appendHeader('X-A', '1').appendHeader('X-A', '2').setHeaders({ 'X-B': 'b' }).appendHeader('X-C', 'c');
      r.setCookie('a', '1', ['Path=/']).setCookie('b', '2').removeCookie('a');
      r.setBody({ ok: true });
      cb(null, r);
    };`,
    '/typed': "exports.handler = (c, e, cb) => cb(null, new Twilio.Response().appendHeader('Content-Type', 'text/csv').setBody('a,b'));",
  });
  const r = start(b);
  await r.ready;
  const reply = async (p, e) => (await r.call(p, e)).reply;
  assert.deepEqual(await reply('/text', { Name: 'Ada' }), {
    type: 'reply', id: 1, status: 200, headers: [['Content-Type', 'text/plain; charset=utf-8']], body: 'hi Ada', base64: false,
  });
  const twiml = await reply('/twiml');
  assert.deepEqual(twiml.headers, [['Content-Type', 'text/xml']]);
  assert.match(twiml.body, /<Response><Message>yo<\/Message><\/Response>/);
  const object = await reply('/object');
  assert.deepEqual([object.headers, object.body], [[['Content-Type', 'application/json']], '{"a":[1,2]}']);
  const nothing = await reply('/nothing');
  assert.deepEqual([nothing.status, nothing.headers, nothing.body], [200, [], '']);
  const buffer = await reply('/buffer');
  assert.deepEqual([buffer.base64, buffer.body], [true, Buffer.from([0, 255]).toString('base64')]);
  assert.equal((await reply('/async')).body, '{"async":true}');
  assert.equal((await reply('/twice')).body, 'first');
  const response = await reply('/response');
  assert.equal(response.status, 202);
  assert.deepEqual(response.headers, [
    ['X-B', 'b'], ['X-C', 'c'], ['Set-Cookie', 'b=2'], ['Set-Cookie', 'a=;Max-Age=0'], ['Content-Type', 'application/json'],
  ]);
  assert.equal(response.body, '{"ok":true}');
  const typed = await reply('/typed');
  assert.deepEqual([typed.headers, typed.body], [[['Content-Type', 'text/csv']], 'a,b']);
  assert.equal(await r.stop(), 0);
});

test('errors reply 500 with message and name, the stack only in debug', async () => {
  const b = build({
    '/cb': "exports.handler = (c, e, cb) => cb(new RangeError('out'));",
    '/throw': "exports.handler = () => { throw new Error('sync'); };",
    '/reject': "exports.handler = async () => { throw new Error('async'); };",
    '/string': "exports.handler = (c, e, cb) => cb('just text');",
    '/none': 'exports.notHandler = 1;',
  });
  for (const debug of [false, true]) {
    const r = start(b, { debug });
    await r.ready;
    const body = async (p) => {
      const { reply } = await r.call(p);
      assert.equal(reply.status, 500);
      return JSON.parse(reply.body);
    };
    const cb = await body('/cb');
    assert.deepEqual([cb.message, cb.name], ['out', 'RangeError']);
    assert.equal('stack' in cb, debug);
    assert.equal((await body('/throw')).message, 'sync');
    assert.equal((await body('/reject')).message, 'async');
    assert.equal((await body('/string')).message, 'just text');
    assert.match((await body('/none')).message, /Could not find a handler/);
    await r.stop();
  }
});

test('console and stdout become log lines of their call', async () => {
  const b = build({
    '/log': `exports.handler = (c, e, cb) => {
      console.log('n=%d', 5); console.warn('careful'); console.error(new Error('bad').message);
      process.stdout.write('raw\\n');
      cb(null, 'done');
    };`,
  });
  const r = start(b);
  await r.ready;
  const { reply, logs } = await r.call('/log');
  assert.equal(reply.body, 'done');
  assert.deepEqual(logs, [['info', 'n=5'], ['warn', 'careful'], ['error', 'bad'], ['info', 'raw']]);
  await r.stop();
});

test('Runtime gives private assets and every Function; context gets getTwilioClient', async () => {
  const b = build(
    {
      '/lib': "exports.twice = (n) => 2 * n;",
      '/main': `const lib = require(Runtime.getFunctions().lib.path);
        exports.handler = (context, event, cb) => {
          let client;
          try { client = context.getTwilioClient().accountSid; } catch (e) { client = e.code; }
          let sync;
          try { const s = Runtime.getSync(); sync = [typeof s.maps, typeof s.lists, typeof s.documents]; } catch (e) { sync = e.code; }
          cb(null, {
            twice: lib.twice(21),
            functions: Object.keys(Runtime.getFunctions()).sort(),
            sameAsGlobal: Functions === Runtime.getFunctions(),
            assets: Object.keys(Runtime.getAssets()),
            text: Runtime.getAssets()['/data/secret.txt'].open(),
            domain: context.DOMAIN_NAME,
            client,
            sync,
          });
        };`,
    },
    { '/data/secret.txt': 'hush' },
  );
  const r = start(b);
  await r.ready;
  const body = async (context) => JSON.parse((await r.call('/main', {}, context)).reply.body);
  const got = await body({ DOMAIN_NAME: 'x.example' });
  assert.deepEqual(got, {
    twice: 42, functions: ['lib', 'main'], sameAsGlobal: true, assets: ['/data/secret.txt'], text: 'hush',
    domain: 'x.example', client: 'INVALID_CONFIG', sync: 'INVALID_CONFIG',
  });
  const sid = 'AC' + '0'.repeat(31) + '1';
  const credited = await body({ ACCOUNT_SID: sid, AUTH_TOKEN: 'token' });
  assert.equal(credited.client, sid);
  assert.deepEqual(credited.sync, ['function', 'function', 'function']);
  await r.stop();
});

test('an uncaught exception ends the process after a fatal line', async () => {
  const b = build({ '/later': "exports.handler = () => { setTimeout(() => { throw new TypeError('later'); }, 1); };" });
  const r = start(b);
  await r.ready;
  const { reply } = await r.call('/later');
  assert.equal(reply.type, 'fatal');
  assert.deepEqual([reply.id, reply.error.name, reply.error.message], [1, 'TypeError', 'later']);
  assert.equal(await r.exited, 70);
});
