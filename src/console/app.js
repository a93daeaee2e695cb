// sigil's Console: Services, Environments, the Assets pane, Deploy All, Deployments, Logs.
// Every action is a call of the public Serverless v1 API (api.js). The DOM is built with
// `h`, never from HTML strings, so no name or path a user chose can become markup.

import * as api from './api.js';

// Twilio's Build limits (what Deploy All may hold).
const LIMITS = { listed: 1000, private: 50, functions: 50, size: 25 * 1024 * 1024, privateSize: 10 * 1024 * 1024 };
const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
let account = null;
let refresher = null;
// Counts page changes: work started for an earlier page stops.
let generation = 0;

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 6000);
}

/** Replaces `el`'s children, skipping empty ones (as `h` does). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function show(...children) {
  fill(main, ...children);
}

function setCrumbs(...links) {
  crumbs.replaceChildren(...links.map(([text, href]) => (href ? h('a', { href }, text) : h('span', {}, text))));
}

function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}

/** A form whose submit runs `action`, showing its error inside the form. */
function form(attrs, fields, submitText, action) {
  const err = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'primary' }, submitText);
  const f = h('form', attrs, fields, button, err);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    button.disabled = true;
    try {
      await action(new FormData(f));
    } catch (e) {
      err.textContent = errorText(e);
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

function field(label, name, attrs = {}) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  return h('div', {}, h('label', { for: id }, label), h('input', { id, name, ...attrs }));
}

function visibilitySelect(value, attrs = {}) {
  return h('select', attrs, ...['public', 'protected', 'private'].map((v) => h('option', { value: v, selected: v === value }, v)));
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

// ---------------------------------------------------------------------------------------
// Sign-in

function signInPage(message) {
  setCrumbs();
  document.getElementById('who').textContent = '';
  document.getElementById('sign-out').hidden = true;
  show(h('section', { class: 'card signin' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'With your Account SID and Auth Token, or an API key SID and its secret.'),
    form({ id: 'sign-in' }, [
      field('Account SID', 'AccountSid', { autocomplete: 'username', required: true, spellcheck: 'false' }),
      field('Auth Token', 'AuthToken', { type: 'password', autocomplete: 'current-password', required: true }),
    ], 'Sign in', async (data) => {
      try {
        account = await api.signIn(data.get('AccountSid').trim(), data.get('AuthToken'));
      } catch (e) {
        if (e.status === 401) throw new Error('Those credentials were not accepted.');
        throw e;
      }
      route();
    }),
    message ? h('p', { class: 'muted' }, message) : null));
  main.querySelector('input').focus();
}

document.getElementById('sign-out').addEventListener('click', async () => {
  try { await api.signOut(); } catch (_) { /* signed out locally either way */ }
  account = null;
  location.hash = '#/';
  signInPage('You are signed out.');
});

// ---------------------------------------------------------------------------------------
// Services

async function servicesPage() {
  setCrumbs(['Services']);
  const list = h('tbody');
  const table = h('table', { class: 'stack', id: 'services' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Friendly name'), h('th', {}, 'SID'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))), list);
  show(h('h1', {}, 'Services'),
    h('section', { class: 'card' }, h('h2', {}, 'Your Services'), table),
    h('section', { class: 'card' }, h('h2', {}, 'Create a Service'),
      form({ id: 'create-service', class: 'row' }, [
        field('Unique name', 'UniqueName', { required: true, pattern: '[A-Za-z0-9\\-]+', maxlength: 50 }),
        field('Friendly name', 'FriendlyName', { maxlength: 64 }),
      ], 'Create', async (data) => {
        await api.call('POST', '/Services', {
          UniqueName: data.get('UniqueName'),
          FriendlyName: data.get('FriendlyName') || data.get('UniqueName'),
        });
        servicesPage();
      })));
  const services = await api.all('/Services', 'services');
  if (!services.length) list.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No Services yet.')));
  for (const s of services) {
    list.append(h('tr', {},
      h('td', { 'data-label': 'Name' }, h('a', { href: `#/services/${s.sid}` }, s.unique_name)),
      h('td', { 'data-label': 'Friendly name' }, s.friendly_name),
      h('td', { 'data-label': 'SID', class: 'muted' }, s.sid),
      h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'danger', 'aria-label': `Delete ${s.unique_name}`,
        onclick: async () => {
          if (!confirm(`Delete the Service ${s.unique_name} with all its Environments, Assets and Functions?`)) return;
          try { await api.call('DELETE', `/Services/${s.sid}`); servicesPage(); } catch (e) { toast(errorText(e)); }
        },
      }, 'Delete'))));
  }
}

async function servicePage(svc) {
  const page = generation;
  const service = await api.call('GET', `/Services/${svc}`);
  if (page !== generation) return;
  setCrumbs(['Services', '#/'], [service.unique_name]);
  const list = h('tbody');
  show(h('h1', {}, service.friendly_name || service.unique_name),
    h('section', { class: 'card' }, h('h2', {}, 'Environments'),
      h('table', { class: 'stack', id: 'environments' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Environment'), h('th', {}, 'Domain'), h('th', {}, 'Deployed Build'))), list)),
    h('section', { class: 'card' }, h('h2', {}, 'Create an Environment'),
      form({ id: 'create-environment', class: 'row' }, [
        field('Unique name', 'UniqueName', { required: true, maxlength: 100 }),
        field('Domain suffix', 'DomainSuffix', { maxlength: 16, pattern: '[a-z0-9\\-]*' }),
      ], 'Create', async (data) => {
        const f = { UniqueName: data.get('UniqueName') };
        if (data.get('DomainSuffix')) f.DomainSuffix = data.get('DomainSuffix');
        await api.call('POST', `/Services/${svc}/Environments`, f);
        servicePage(svc);
      })));
  const envs = await api.all(`/Services/${svc}/Environments`, 'environments');
  if (!envs.length) list.append(h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No Environments yet.')));
  for (const e of envs) {
    list.append(h('tr', {},
      h('td', { 'data-label': 'Environment' }, h('a', { href: `#/services/${svc}/environments/${e.sid}` }, e.unique_name)),
      h('td', { 'data-label': 'Domain' }, h('a', { href: api.siteUrl(e.domain_name), target: '_blank', rel: 'noopener' }, e.domain_name)),
      h('td', { 'data-label': 'Deployed Build', class: 'muted' }, e.build_sid || 'nothing yet')));
  }
}

// ---------------------------------------------------------------------------------------
// An Environment: the Assets pane, Functions, Deploy All, Deployments, Logs, the chart

/** Every Asset or Function of the Service with its newest Version. */
async function withNewest(svc, kind) {
  const key = kind === 'Assets' ? 'assets' : 'functions';
  const items = await api.all(`/Services/${svc}/${kind}`, key);
  return Promise.all(items.map(async (item) => {
    const page = await api.call('GET', `/Services/${svc}/${kind}/${item.sid}/Versions?PageSize=1`);
    return { item, newest: page[`${kind === 'Assets' ? 'asset' : 'function'}_versions`][0] || null };
  }));
}

async function environmentPage(svc, envSid) {
  const page = generation;
  const [service, env] = await Promise.all([
    api.call('GET', `/Services/${svc}`),
    api.call('GET', `/Services/${svc}/Environments/${envSid}`),
  ]);
  if (page !== generation) return;
  setCrumbs(['Services', '#/'], [service.unique_name, `#/services/${svc}`], [env.unique_name]);
  const state = { svc, env, service };
  const assetsCard = h('section', { class: 'card', id: 'assets-pane', 'aria-labelledby': 'assets-h' });
  const functionsCard = h('section', { class: 'card', id: 'functions-pane' });
  const deploysCard = h('section', { class: 'card', id: 'deployments' });
  const chartCard = h('section', { class: 'card chart', id: 'chart' });
  const logsCard = h('section', { class: 'card', id: 'logs' });
  show(h('h1', {}, `${env.unique_name} · `, h('a', { href: api.siteUrl(env.domain_name), target: '_blank', rel: 'noopener' }, env.domain_name)),
    assetsCard, functionsCard, deploysCard, chartCard, logsCard);
  state.redraw = async () => {
    state.env = await api.call('GET', `/Services/${svc}/Environments/${envSid}`);
    const deployed = state.env.build_sid
      ? await api.call('GET', `/Services/${svc}/Builds/${state.env.build_sid}`) : null;
    state.deployed = new Set(deployed
      ? [...deployed.asset_versions, ...deployed.function_versions].map((v) => v.sid) : []);
    [state.assets, state.functions] = await Promise.all([withNewest(svc, 'Assets'), withNewest(svc, 'Functions')]);
    drawAssets(assetsCard, state);
    drawFunctions(functionsCard, state);
    await drawDeployments(deploysCard, state);
  };
  await state.redraw();
  if (page !== generation) return;
  // The chart and the Logs fill in when they arrive; a failure shows in their card.
  drawChart(chartCard, state).catch((e) => fill(chartCard, h('h2', {}, 'Requests in the last hour'), h('p', { class: 'error' }, errorText(e))));
  drawLogs(logsCard, state);
  refresher = setInterval(() => {
    if (document.hidden) return;
    drawLogs(logsCard, state);
  }, 5000);
}

function stateMark(state, version) {
  const deployed = version && state.deployed.has(version.sid);
  return h('span', {
    class: `state ${deployed ? 'deployed' : 'pending'}`,
    role: 'img',
    'aria-label': deployed ? 'deployed' : 'not deployed yet',
    title: deployed ? 'Deployed' : 'Not deployed yet',
  });
}

/** Counts against the Build limits, with `extra` files about to be added. */
function limitProblems(state, extra = []) {
  const newest = state.assets.map((a) => a.newest).filter(Boolean);
  const priv = newest.filter((v) => v.visibility === 'private').length + extra.filter((f) => f.visibility === 'private').length;
  const listed = newest.length - newest.filter((v) => v.visibility === 'private').length + extra.filter((f) => f.visibility !== 'private').length;
  const problems = [];
  if (listed > LIMITS.listed) problems.push(`${listed} public and protected Assets: a Build holds at most ${LIMITS.listed}.`);
  if (priv > LIMITS.private) problems.push(`${priv} private Assets: a Build holds at most ${LIMITS.private}.`);
  if (state.functions.length > LIMITS.functions) problems.push(`${state.functions.length} Functions: a Build holds at most ${LIMITS.functions}.`);
  for (const f of extra) {
    const most = f.visibility === 'private' ? LIMITS.privateSize : LIMITS.size;
    if (f.size > most) problems.push(`${f.path} is ${(f.size / 1048576).toFixed(1)} MB: a ${f.visibility} Asset may be at most ${most / 1048576} MB.`);
  }
  return problems;
}

async function contentOf(state, asset, version) {
  return api.call('GET', `/Services/${state.svc}/Assets/${asset.sid}/Versions/${version.sid}/Content`);
}

function drawAssets(card, state) {
  const rows = h('tbody');
  for (const { item, newest } of state.assets) {
    const v = newest;
    const select = visibilitySelect(v ? v.visibility : 'public', {
      'aria-label': `Visibility of ${v ? v.path : item.friendly_name}`,
      disabled: !v,
      onchange: async (ev) => {
        ev.target.disabled = true;
        try {
          const content = await contentOf(state, item, v);
          await api.uploadVersion(state.svc, 'Assets', item.sid, { path: v.path, visibility: ev.target.value, content });
          toast(`${v.path} is now ${ev.target.value} (deploy to apply).`);
          await state.redraw();
        } catch (e) {
          toast(errorText(e));
          ev.target.disabled = false;
        }
      },
    });
    const menuItems = [];
    if (v && v.visibility !== 'private') {
      menuItems.push(h('button', {
        type: 'button',
        onclick: async () => {
          const url = api.siteUrl(state.env.domain_name, v.path);
          try { await navigator.clipboard.writeText(url); } catch (_) { /* shown below either way */ }
          toast(`Copied ${url}`);
          card.querySelector('#copied-url').value = url;
        },
      }, 'Copy URL'));
    }
    if (v) {
      menuItems.push(h('button', {
        type: 'button',
        onclick: async () => {
          const path = prompt('New path', v.path);
          if (!path || path === v.path) return;
          try {
            const content = await contentOf(state, item, v);
            await api.uploadVersion(state.svc, 'Assets', item.sid, { path, visibility: v.visibility, content });
            await api.call('POST', `/Services/${state.svc}/Assets/${item.sid}`, { FriendlyName: path });
            await state.redraw();
          } catch (e) { toast(errorText(e)); }
        },
      }, 'Rename'));
    }
    menuItems.push(h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        if (!confirm(`Delete ${v ? v.path : item.friendly_name}? Deployed Builds keep serving it until the next deployment.`)) return;
        try { await api.call('DELETE', `/Services/${state.svc}/Assets/${item.sid}`); await state.redraw(); } catch (e) { toast(errorText(e)); }
      },
    }, 'Delete'));
    rows.append(h('tr', { 'data-path': v ? v.path : '' },
      h('td', { 'data-label': 'State' }, stateMark(state, v)),
      h('td', { 'data-label': 'Path' }, v ? v.path : h('span', { class: 'muted' }, `${item.friendly_name} (no version)`)),
      h('td', { 'data-label': 'Visibility' }, select),
      h('td', { class: 'actions' }, h('details', { class: 'menu' },
        h('summary', { 'aria-label': `Actions for ${v ? v.path : item.friendly_name}` }, '⋯'),
        h('div', {}, menuItems)))));
  }
  if (!state.assets.length) rows.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No Assets yet: add some.')));
  const problems = limitProblems(state);
  const status = h('span', { id: 'build-status', class: `build-status ${state.build ? state.build.cls : ''}`, role: 'status', 'aria-live': 'polite' },
    state.build ? state.build.text : '');
  const deployAll = h('button', { type: 'button', class: 'primary', id: 'deploy-all', onclick: () => deployAllTo(state, deployAll, status) }, 'Deploy All');
  const adder = h('div', { id: 'adder', hidden: true });
  const add = h('button', {
    type: 'button', id: 'add', 'aria-expanded': 'false', 'aria-controls': 'adder',
    onclick: () => {
      adder.hidden = !adder.hidden;
      add.setAttribute('aria-expanded', String(!adder.hidden));
      if (!adder.hidden) drawAdder(adder, state);
    },
  }, 'Add+');
  fill(card, 
    h('h2', { id: 'assets-h' }, h('span', { class: 'grow' }, 'Assets'), add, deployAll, status),
    problems.length ? h('p', { class: 'warn', role: 'alert' }, problems.join(' ')) : null,
    adder,
    h('table', { class: 'stack', id: 'assets' },
      h('thead', {}, h('tr', {}, h('th', {}, 'State'), h('th', {}, 'Path'), h('th', {}, 'Visibility'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Menu')))),
      rows),
    h('label', { for: 'copied-url' }, 'Last copied URL'),
    h('input', { id: 'copied-url', type: 'text', readonly: true, size: 60 }));
}

function drawAdder(box, state) {
  const staged = [];
  const tbody = h('tbody');
  const warn = h('p', { class: 'warn', role: 'alert', hidden: true });
  const upload = h('button', { type: 'button', class: 'primary', id: 'upload', disabled: true }, 'Upload');
  const check = () => {
    const problems = limitProblems(state, staged.map((s) => ({ path: s.path.value, visibility: s.visibility.value, size: s.file.size })));
    warn.hidden = !problems.length;
    warn.textContent = problems.join(' ');
    upload.disabled = !staged.length || problems.length > 0;
  };
  const stage = (files) => {
    for (const file of files) {
      const path = h('input', { type: 'text', value: `/${file.name}`, 'aria-label': `Path for ${file.name}`, oninput: check });
      const visibility = visibilitySelect('public', { 'aria-label': `Visibility for ${file.name}`, onchange: check });
      const progress = h('progress', { max: 1, value: 0, 'aria-label': `Upload progress of ${file.name}` });
      const one = { file, path, visibility, progress };
      const tr = h('tr', {}, h('td', { 'data-label': 'File' }, file.name), h('td', { 'data-label': 'Path' }, path),
        h('td', { 'data-label': 'Visibility' }, visibility), h('td', { 'data-label': 'Progress' }, progress),
        h('td', { class: 'actions' }, h('button', {
          type: 'button', 'aria-label': `Remove ${file.name}`,
          onclick: () => { staged.splice(staged.indexOf(one), 1); tr.remove(); check(); },
        }, 'Remove')));
      staged.push(one);
      tbody.append(tr);
    }
    check();
  };
  const picker = h('input', {
    type: 'file', multiple: true, id: 'file-picker',
    onchange: (e) => { stage(e.target.files); e.target.value = ''; },
  });
  const drop = h('div', { class: 'drop', id: 'drop' }, 'Drop files here, or ', h('label', { for: 'file-picker', class: 'inline' }, 'choose files'), ' ', picker);
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); stage(e.dataTransfer.files); });
  upload.addEventListener('click', async () => {
    upload.disabled = true;
    for (const s of staged) {
      const path = s.path.value.trim();
      try {
        const asset = await api.call('POST', `/Services/${state.svc}/Assets`, { FriendlyName: path });
        await api.uploadVersion(state.svc, 'Assets', asset.sid, {
          path, visibility: s.visibility.value, content: s.file,
        }, (f) => { s.progress.value = f; });
      } catch (e) {
        toast(`${path}: ${errorText(e)}`);
      }
    }
    await state.redraw();
  });
  const text = form({ id: 'new-text-asset' }, [
    field('Path', 'Path', { required: true, value: '/new.txt' }),
    h('label', { for: 'new-text-visibility' }, 'Visibility'),
    visibilitySelect('public', { id: 'new-text-visibility', name: 'Visibility' }),
    h('label', { for: 'new-text-content' }, 'Content'),
    h('textarea', { id: 'new-text-content', name: 'Content' }),
  ], 'Create text Asset', async (data) => {
    const path = data.get('Path').trim();
    const ext = path.split('.').pop();
    const type = { html: 'text/html', css: 'text/css', js: 'text/javascript', json: 'application/json', xml: 'application/xml' }[ext] || 'text/plain';
    const asset = await api.call('POST', `/Services/${state.svc}/Assets`, { FriendlyName: path });
    await api.uploadVersion(state.svc, 'Assets', asset.sid, { path, visibility: data.get('Visibility'), content: data.get('Content'), type });
    await state.redraw();
  });
  fill(box, 
    h('h3', {}, 'Upload File'), drop, warn,
    h('table', { class: 'stack staged', id: 'staged' }, h('thead', {}, h('tr', {}, h('th', {}, 'File'), h('th', {}, 'Path'), h('th', {}, 'Visibility'), h('th', {}, 'Progress'),
      h('th', {}, h('span', { class: 'visually-hidden' }, 'Remove')))), tbody),
    upload,
    h('h3', {}, 'New text Asset'), text);
}

function drawFunctions(card, state) {
  const rows = h('tbody');
  const editor = h('div', { id: 'function-editor' });
  for (const { item, newest } of state.functions) {
    const v = newest;
    rows.append(h('tr', {},
      h('td', { 'data-label': 'State' }, stateMark(state, v)),
      h('td', { 'data-label': 'Path' }, v ? v.path : item.friendly_name),
      h('td', { 'data-label': 'Visibility' }, v ? v.visibility : ''),
      h('td', { class: 'actions' }, v ? h('button', {
        type: 'button', 'aria-label': `Edit ${v.path}`,
        onclick: () => editFunction(editor, state, item, v),
      }, 'View / edit') : null)));
  }
  if (!state.functions.length) rows.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No Functions.')));
  fill(card, h('h2', {}, 'Functions'),
    h('table', { class: 'stack', id: 'functions' },
      h('thead', {}, h('tr', {}, h('th', {}, 'State'), h('th', {}, 'Path'), h('th', {}, 'Visibility'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))), rows),
    editor,
    h('details', {}, h('summary', {}, 'New Function'),
      form({ id: 'new-function' }, [
        field('Path', 'Path', { required: true, value: '/hello' }),
        h('label', { for: 'new-fn-visibility' }, 'Visibility'),
        visibilitySelect('public', { id: 'new-fn-visibility', name: 'Visibility' }),
        h('label', { for: 'new-fn-code' }, 'Code'),
        h('textarea', { id: 'new-fn-code', name: 'Code' }, "exports.handler = function (context, event, callback) {\n  callback(null, 'Hello');\n};\n"),
      ], 'Create Function', async (data) => {
        const path = data.get('Path').trim();
        const fn = await api.call('POST', `/Services/${state.svc}/Functions`, { FriendlyName: path });
        await api.uploadVersion(state.svc, 'Functions', fn.sid, { path, visibility: data.get('Visibility'), content: data.get('Code'), type: 'application/javascript' });
        await state.redraw();
      })));
}

async function editFunction(box, state, fn, version) {
  const content = await api.call('GET', `/Services/${state.svc}/Functions/${fn.sid}/Versions/${version.sid}/Content`);
  fill(box, h('h3', {}, `Editing ${version.path}`),
    form({ id: 'edit-function' }, [
      h('label', { for: 'fn-code' }, 'Code'),
      h('textarea', { id: 'fn-code', name: 'Code' }, content.content),
    ], 'Save as a new Version', async (data) => {
      await api.uploadVersion(state.svc, 'Functions', fn.sid, { path: version.path, visibility: version.visibility, content: data.get('Code'), type: 'application/javascript' });
      fill(box, );
      await state.redraw();
    }));
  box.querySelector('textarea').focus();
}

async function deployAllTo(state, button, status) {
  // Once started, the Build is deployed even if the page changes; only this page's view
  // is redrawn.
  const page = generation;
  button.disabled = true;
  status.className = 'build-status';
  const say = (text, cls = '') => {
    state.build = { text, cls };
    status.className = `build-status ${cls}`;
    status.textContent = text;
  };
  try {
    const problems = limitProblems(state);
    if (problems.length) throw new Error(problems.join(' '));
    const assets = state.assets.map((a) => a.newest).filter(Boolean).map((v) => v.sid);
    const functions = state.functions.map((f) => f.newest).filter(Boolean).map((v) => v.sid);
    // The Service's dependencies and runtime: those of its newest Build.
    const builds = await api.call('GET', `/Services/${state.svc}/Builds?PageSize=1`);
    const last = builds.builds[0];
    const body = { AssetVersions: assets, FunctionVersions: functions };
    if (last && last.dependencies && last.dependencies.length) body.Dependencies = JSON.stringify(last.dependencies);
    if (last && last.runtime) body.Runtime = last.runtime;
    say('building');
    let build = await api.call('POST', `/Services/${state.svc}/Builds`, body);
    // Polled until it ends, for at most 15 minutes (npm may take 10).
    const until = Date.now() + 15 * 60 * 1000;
    for (;;) {
      if (Date.now() > until) throw new Error('the Build is still building after 15 minutes; see its status later');
      const st = await api.buildStatus(state.svc, build.sid);
      say(st.status);
      if (st.status !== 'building') { build = st; break; }
      await new Promise((r) => setTimeout(r, 500));
    }
    if (build.status === 'failed') {
      say(`failed: ${build.error || 'the Build failed'}`, 'failed');
      return;
    }
    say('completed; deploying', 'completed');
    await api.call('POST', `/Services/${state.svc}/Environments/${state.env.sid}/Deployments`, { BuildSid: build.sid });
    say('deployed', 'completed');
    if (page === generation) await state.redraw();
    else toast(`Deployed Build ${build.sid}`);
  } catch (e) {
    say(`failed: ${errorText(e)}`, 'failed');
  } finally {
    button.disabled = false;
  }
}

async function drawDeployments(card, state) {
  const rows = h('tbody');
  fill(card, h('h2', {}, 'Deployments'),
    h('table', { class: 'stack', id: 'deployment-list' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Build'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))), rows));
  const page = await api.call('GET', `/Services/${state.svc}/Environments/${state.env.sid}/Deployments?PageSize=20`);
  const current = state.env.build_sid;
  for (const [i, d] of page.deployments.entries()) {
    const live = i === 0 && d.build_sid === current;
    rows.append(h('tr', {},
      h('td', { 'data-label': 'When' }, when(d.date_created)),
      h('td', { 'data-label': 'Build' }, d.build_sid, live ? h('strong', {}, ' (live)') : null),
      h('td', { class: 'actions' }, d.build_sid === current ? null : h('button', {
        type: 'button', 'aria-label': `Roll back to ${d.build_sid}`,
        onclick: async () => {
          if (!confirm(`Roll ${state.env.unique_name} back to Build ${d.build_sid}?`)) return;
          try {
            await api.call('POST', `/Services/${state.svc}/Environments/${state.env.sid}/Deployments`, { BuildSid: d.build_sid });
            toast(`Rolled back to ${d.build_sid}`);
            await state.redraw();
          } catch (e) { toast(errorText(e)); }
        },
      }, 'Rollback'))));
  }
  if (!page.deployments.length) rows.append(h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'Nothing deployed yet.')));
}

async function drawLogs(card, state) {
  let page;
  try {
    page = await api.call('GET', `/Services/${state.svc}/Environments/${state.env.sid}/Logs?PageSize=50`);
  } catch (e) {
    fill(card, h('h2', {}, 'Logs'), h('p', { class: 'error' }, errorText(e)));
    return;
  }
  const rows = page.logs.map((l) => h('tr', {},
    h('td', { 'data-label': 'When' }, when(l.date_created)),
    h('td', { 'data-label': 'Level' }, l.level),
    h('td', { 'data-label': 'Message' }, l.message)));
  fill(card, h('h2', {}, 'Logs ', h('span', { class: 'muted' }, '(newest first, refreshed every 5 s)')),
    h('table', { class: 'stack logs', id: 'log-list' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Level'), h('th', {}, 'Message'))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No log lines yet.')))));
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Requests by status class over the last hour, from the Environment's request log lines. */
async function drawChart(card, state) {
  const since = new Date(Date.now() - 3600 * 1000);
  const logs = await api.all(`/Services/${state.svc}/Environments/${state.env.sid}/Logs?StartDate=${encodeURIComponent(since.toISOString())}`, 'logs', 5000);
  const buckets = Array.from({ length: 12 }, () => ({ 2: 0, 3: 0, 4: 0, 5: 0 }));
  let counted = 0;
  for (const l of logs) {
    const m = /^\S+ \S+ ([1-5])\d\d\b/.exec(l.message);
    if (!m) continue;
    const age = Date.now() - new Date(l.date_created).getTime();
    const i = 11 - Math.min(11, Math.floor(age / 300000));
    const cls = Number(m[1]) < 2 ? 2 : Number(m[1]);
    buckets[i][cls] += 1;
    counted += 1;
  }
  const most = Math.max(1, ...buckets.map((b) => b[2] + b[3] + b[4] + b[5]));
  const W = 600, H = 160, bw = W / 12;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H + 20}`, role: 'img', 'aria-labelledby': 'chart-title' },
    s('title', { id: 'chart-title' }, `Requests by status, last hour: ${counted} in all`));
  buckets.forEach((b, i) => {
    let y = H;
    for (const cls of [2, 3, 4, 5]) {
      if (!b[cls]) continue;
      const hgt = (b[cls] / most) * (H - 10);
      y -= hgt;
      svg.append(s('rect', { x: i * bw + 4, y, width: bw - 8, height: hgt, class: `s${cls}` },
        s('title', {}, `${b[cls]} × ${cls}xx, ${60 - i * 5} to ${55 - i * 5} minutes ago`)));
    }
    if (i % 3 === 0) svg.append(s('text', { x: i * bw + 4, y: H + 15, 'font-size': 11, fill: '#5b6476' }, `-${60 - i * 5} min`));
  });
  svg.append(s('text', { x: W - 40, y: H + 15, 'font-size': 11, fill: '#5b6476' }, 'now'));
  const totals = [2, 3, 4, 5].map((c) => buckets.reduce((n, b) => n + b[c], 0));
  fill(card, h('h2', {}, 'Requests in the last hour'),
    h('div', { class: 'legend' }, ...[2, 3, 4, 5].map((c, k) => h('span', {}, h('i', { class: `s${c}` }), `${c}xx: ${totals[k]}`))),
    svg,
    h('p', { class: 'muted' }, logs.length >= 5000
      ? 'From the newest 5,000 log lines (the Logs resource keeps a sample when traffic is high).'
      : 'From the Environment\'s request log lines (the Logs resource keeps a sample when traffic is high).'));
}

// ---------------------------------------------------------------------------------------
// Routing

async function route() {
  generation += 1;
  clearInterval(refresher);
  refresher = null;
  if (!account) account = await api.session();
  if (!account) return signInPage();
  document.getElementById('who').textContent = account.account_sid;
  document.getElementById('sign-out').hidden = false;
  const page = generation;
  // SIDs and names from the URL go into API paths: only letters, digits, '-' and '_', so a
  // crafted link cannot change the request's target.
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  try {
    if (!parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) {
      throw new Error('There is no such page.');
    }
    if (parts[0] === 'services' && parts[1] && parts[2] === 'environments' && parts[3]) {
      await environmentPage(parts[1], parts[3]);
    } else if (parts[0] === 'services' && parts[1]) {
      await servicePage(parts[1]);
    } else {
      await servicesPage();
    }
  } catch (e) {
    if (page !== generation) return;
    if (e.status === 401) { account = null; return signInPage('Your session has ended: sign in again.'); }
    show(h('section', { class: 'card' }, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, errorText(e)),
      h('p', {}, h('a', { href: '#/' }, 'Back to your Services'))));
  }
  main.focus();
}

// One menu open at a time; a choice made, or a click elsewhere, or Escape closes it.
document.addEventListener('click', (ev) => {
  for (const menu of document.querySelectorAll('details.menu[open]')) {
    const inside = menu.contains(ev.target);
    if (!inside || (ev.target.closest('button') && menu.contains(ev.target.closest('button')))) menu.open = false;
  }
});
document.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Escape') return;
  for (const menu of document.querySelectorAll('details.menu[open]')) {
    menu.open = false;
    menu.querySelector('summary').focus();
  }
});

window.addEventListener('hashchange', route);
route();
