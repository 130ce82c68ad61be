// The shell: sign-in, navigation and a hash router. The URL (after '#') holds
// each page's state, so any view can be bookmarked or shared.

import { credentials, remember, forget, get, ApiError, isAbort, setUnauthorizedHandler } from './api.js';
import { h, clear, errorBox, href } from './dom.js';
import { tracesPage } from './traces.js';
import { tracePage } from './trace.js';
import { sessionsPage, sessionPage } from './sessions.js';
import { metricsPage } from './metrics.js';
import { promqlPage } from './promql.js';
import { fleetPage } from './fleet.js';

const routes = [
  { path: /^\/traces$/, page: tracesPage, nav: 'traces', title: 'Traces' },
  { path: /^\/trace\/(.+)$/, page: tracePage, nav: 'traces', title: 'Trace' },
  { path: /^\/sessions$/, page: sessionsPage, nav: 'sessions', title: 'Sessions' },
  { path: /^\/session\/(.+)$/, page: sessionPage, nav: 'sessions', title: 'Session' },
  { path: /^\/metrics$/, page: metricsPage, nav: 'metrics', title: 'Metrics' },
  { path: /^\/promql$/, page: promqlPage, nav: 'promql', title: 'PromQL' },
  { path: /^\/fleet$/, page: fleetPage, nav: 'fleet', title: 'Fleet' },
];

const NAV = [['traces', 'Traces'], ['sessions', 'Sessions'], ['metrics', 'Metrics'], ['promql', 'PromQL'], ['fleet', 'Fleet']];

const header = document.getElementById('top');
const main = document.getElementById('main');
let current = null; // {controller, cleanups}

// #/a/b?x=1 → {path: '/a/b', params}
function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/traces';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

function stop() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups) fn();
  current = null;
}

async function render() {
  const focusedId = document.activeElement && main.contains(document.activeElement) ? document.activeElement.id : '';
  stop();
  if (!credentials()) {
    renderSignIn();
    return;
  }
  const { path, params } = parseHash();
  const route = routes.find((r) => r.path.test(path));
  renderHeader(route?.nav);
  clear(main);
  if (!route) {
    main.append(errorBox(`No page at ${path}.`));
    return;
  }
  const args = path.match(route.path).slice(1).map(decodeURIComponent);
  const controller = new AbortController();
  current = { controller, cleanups: [] };
  document.title = `${route.title} · xtrace`;
  const ctx = {
    root: main, params, args, signal: controller.signal,
    // go changes the page state and adds a history entry; replace only updates the URL.
    go: (p, ps) => { location.hash = href(p, ps); },
    replace: (p, ps) => { history.replaceState(null, '', href(p, ps)); },
    onCleanup: (fn) => current?.controller === controller && current.cleanups.push(fn),
    reload: render,
  };
  try {
    await route.page(ctx);
    const again = focusedId && document.getElementById(focusedId);
    if (again) again.focus();
  } catch (err) {
    if (isAbort(err) || controller.signal.aborted) return;
    if (err instanceof ApiError && err.status === 401) return; // the sign-in screen is showing
    main.append(errorBox(err));
  }
}

function renderHeader(active) {
  const c = credentials();
  clear(header).append(
    h('a.brand', { href: '#/traces' }, 'xtrace'),
    h('nav', { 'aria-label': 'Main' }, h('ul', null, NAV.map(([id, text]) =>
      h('li', null, h('a', { href: '#/' + id, id: 'nav-' + id, 'aria-current': id === active ? 'page' : null }, text))))),
    h('div.who', null,
      h('span.muted', null, c.kind === 'basic' ? `Key ${c.publicKey}` : 'API token'),
      h('button', { type: 'button', id: 'sign-out', onclick: signOut }, 'Sign out')),
  );
}

function signOut() {
  forget();
  stop();
  renderSignIn('You are signed out; the credentials are forgotten.');
}

function renderSignIn(notice, isError = false) {
  stop();
  clear(header).append(h('span.brand', null, 'xtrace'));
  document.title = 'Sign in · xtrace';
  const kind = (v) => h('label.inline', null, h('input', { type: 'radio', name: 'kind', value: v, checked: v === 'bearer', onchange: toggle }), v === 'bearer' ? 'API token' : 'Public and secret key');
  const token = h('input', { id: 'signin-token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const pub = h('input', { id: 'signin-public', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const secret = h('input', { id: 'signin-secret', type: 'password', autocomplete: 'off' });
  const tokenBox = h('div', null, h('label', { for: 'signin-token' }, 'API token'), token,
    h('small.hint', null, 'One of the server\'s API_BEARER_TOKEN values (make run-server prints it).'));
  const keyBox = h('div', { hidden: true }, h('label', { for: 'signin-public' }, 'Public key'), pub,
    h('label', { for: 'signin-secret' }, 'Secret key'), secret);
  const message = h('div', { id: 'signin-message', role: isError ? 'alert' : 'status', class: isError ? 'error' : notice ? 'notice' : '' }, notice || '');
  const submit = h('button.primary', { type: 'submit', id: 'signin-submit' }, 'Sign in');
  function toggle() {
    const basic = form.elements.kind.value === 'basic';
    keyBox.hidden = !basic;
    tokenBox.hidden = basic;
    token.required = !basic;
    pub.required = secret.required = basic;
  }
  const form = h('form.signin', { id: 'signin', 'aria-labelledby': 'signin-title', onsubmit: async (e) => {
    e.preventDefault();
    const c = form.elements.kind.value === 'basic'
      ? { kind: 'basic', publicKey: pub.value.trim(), secretKey: secret.value }
      : { kind: 'bearer', token: token.value.trim() };
    submit.disabled = true;
    message.className = '';
    message.setAttribute('role', 'status');
    message.textContent = 'Checking…';
    try {
      await get('/api/public/projects', {}, { creds: c });
      remember(c);
      render();
    } catch (err) {
      submit.disabled = false;
      message.className = 'error';
      message.setAttribute('role', 'alert');
      message.textContent = err.status === 401
        ? 'The server refused these credentials (401 Unauthorized). Check the token or the key pair and try again.'
        : `Sign-in failed: ${err.message}`;
    }
  } },
  h('h1', { id: 'signin-title' }, 'Sign in to xtrace'),
  h('p.muted', null, 'The UI calls the public API with the credentials you enter. They stay in this browser tab (sessionStorage) until you sign out or close it.'),
  h('fieldset', null, h('legend', null, 'Sign in with'), kind('bearer'), kind('basic')),
  tokenBox, keyBox, message, submit);
  clear(main).append(form);
  token.focus();
}

setUnauthorizedHandler(() => {
  forget();
  renderSignIn('The server no longer accepts these credentials (401). Sign in again.', true);
});

window.addEventListener('hashchange', render);
render();
