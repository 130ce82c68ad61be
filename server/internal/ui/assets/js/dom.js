// Small DOM helpers. Everything is built with createElement and textContent,
// never innerHTML, so trace contents (which anyone who can ingest controls)
// cannot inject markup; styles are set through the CSSOM, which the
// Content-Security-Policy allows while it forbids inline style attributes.

const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'open', 'indeterminate']);

// h('tag.class1.class2', {attr: value, onclick: fn, style: {left: '3px'}}, ...children)
export function h(tag, props, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false && !PROPS.has(k)) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
      else if (k === 'style') Object.assign(el.style, v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ');
      else if (PROPS.has(k)) el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// add appends children to el and put replaces them, leaving out null,
// undefined and false (the DOM's own append would show them as text).
export function add(el, ...children) {
  append(el, children);
  return el;
}

export function put(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A labelled form field: <div class="field"><label for=id>text</label>control</div>.
export function field(label, control, hint) {
  return h('div.field', null, h('label', { for: control.id }, label), control, hint ? h('small.hint', null, hint) : null);
}

export function select(id, options, value, props = {}) {
  return h('select', { id, name: id, ...props },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: String(v) === String(value ?? '') }, text);
    }));
}

export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h('div.error', { role: 'alert' }, msg, err && err.requestId ? h('small', null, ` (request id ${err.requestId})`) : null);
}

export function emptyBox(text) {
  return h('p.empty', null, text);
}

// Rows that open something: focusable, Enter/Space open them, arrow keys move.
export function activateRow(tr, open) {
  tr.tabIndex = 0;
  tr.classList.add('clickable');
  tr.addEventListener('click', (e) => {
    if (e.target.closest('a, button, input, select, summary')) return;
    open();
  });
  tr.addEventListener('keydown', (e) => {
    if (e.target !== tr) return;
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); }
    else if (e.key === 'ArrowDown' && tr.nextElementSibling) { e.preventDefault(); tr.nextElementSibling.focus(); }
    else if (e.key === 'ArrowUp' && tr.previousElementSibling) { e.preventDefault(); tr.previousElementSibling.focus(); }
  });
  return tr;
}

// The URL of a page: href('/traces', {userId: 'a'}) → '#/traces?userId=a' (empty values left out).
export function href(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString() : '';
  return '#' + path + (q ? '?' + q : '');
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// Local time, to the millisecond; the ISO form goes in the title.
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function timeCell(iso) {
  return h('time', { datetime: iso || '', title: iso || '' }, fmtTime(iso));
}

export function fmtSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '—';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function fmtAge(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function fmtNumber(v, digits = 3) {
  if (v === null || v === undefined || v === '') return '—';
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function fmtCost(v) {
  if (v === null || v === undefined || Number(v) === 0) return '—';
  return '$' + Number(v).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 });
}

// {node_id: "n1", gpu_index: "0"} → 'gpu_index="0", node_id="n1"' (sorted keys, stable).
export function labelText(labels) {
  const keys = Object.keys(labels || {}).sort();
  if (!keys.length) return '(no labels)';
  return keys.map((k) => `${k}="${labels[k]}"`).join(', ');
}

// Preset time ranges shared by the pages, in seconds.
export const RANGES = [
  ['5m', 'Last 5 minutes', 300], ['15m', 'Last 15 minutes', 900], ['1h', 'Last hour', 3600],
  ['6h', 'Last 6 hours', 21600], ['24h', 'Last 24 hours', 86400], ['7d', 'Last 7 days', 604800],
  ['30d', 'Last 30 days', 2592000],
];

export function rangeSeconds(key) {
  const r = RANGES.find(([k]) => k === key);
  return r ? r[2] : null;
}

// The value of a datetime-local input as an ISO instant (the browser's zone), or ''.
export function localInputToISO(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export function isoToLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// Folded text: long values show their start and a button to show all.
export function folded(text, limit = 1200) {
  const pre = h('pre.value');
  if (text.length <= limit) {
    pre.textContent = text;
    return pre;
  }
  pre.textContent = text.slice(0, limit) + '…';
  const more = h('button.link', {
    type: 'button', 'aria-expanded': 'false',
    onclick: () => {
      const open = more.getAttribute('aria-expanded') === 'true';
      pre.textContent = open ? text.slice(0, limit) + '…' : text;
      more.setAttribute('aria-expanded', String(!open));
      more.textContent = open ? `Show all (${text.length.toLocaleString('en-US')} characters)` : 'Show less';
    },
  }, `Show all (${text.length.toLocaleString('en-US')} characters)`);
  return h('div.folded', null, pre, more);
}

// A JSON value for reading: strings as they are, other values pretty-printed;
// chat messages ([{role, content}] or {messages: [...]}) as a conversation.
export function jsonView(value) {
  if (value === null || value === undefined) return h('p.muted', null, 'none');
  const messages = Array.isArray(value) ? value : Array.isArray(value?.messages) ? value.messages : null;
  if (messages && messages.length && messages.every((m) => m && typeof m === 'object' && 'role' in m)) {
    return h('ol.messages', null, messages.map((m) => h('li.message', null,
      h('span.role', null, String(m.role)),
      typeof m.content === 'string' ? folded(m.content) : folded(JSON.stringify(m.content ?? m, null, 2)))));
  }
  return folded(typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}
