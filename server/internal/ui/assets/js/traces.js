// Traces: filters (in the URL), paging and sortable columns.

import { get, pool, isAbort } from './api.js';
import {
  h, add, field, select, emptyBox, activateRow, timeCell, fmtSeconds, fmtNumber, fmtCost,
  RANGES, rangeSeconds, href, localInputToISO, isoToLocalInput,
} from './dom.js';
import { traceSummary, levelBadge, LEVELS } from './summary.js';

// Columns the API sorts (over every page) and the ones sorted here within the page.
const SERVER_SORT = { timestamp: 'timestamp', name: 'name', user: 'userId', session: 'sessionId' };
const COLUMNS = [
  ['timestamp', 'Timestamp'], ['name', 'Name'], ['user', 'User'], ['session', 'Session'],
  ['latency', 'Latency'], ['tokens', 'Tokens'], ['cost', 'Cost'], ['level', 'Level'],
];
const FILTERS = ['range', 'from', 'to', 'name', 'userId', 'sessionId', 'tags', 'environment'];

function state(params) {
  const s = {};
  for (const k of [...FILTERS, 'sort', 'dir', 'page', 'limit']) s[k] = params.get(k) || '';
  s.sort = COLUMNS.some(([c]) => c === s.sort) ? s.sort : 'timestamp';
  s.dir = s.dir === 'asc' ? 'asc' : 'desc';
  s.page = Math.max(1, parseInt(s.page, 10) || 1);
  s.limit = [20, 50, 100].includes(Number(s.limit)) ? Number(s.limit) : 20; // each row costs one more request (its tokens and level)
  return s;
}

// The API's query for a state; the time range is resolved against now.
function query(s) {
  const q = {
    page: s.page, limit: s.limit, name: s.name, userId: s.userId, sessionId: s.sessionId,
    environment: s.environment, tags: s.tags.split(',').map((t) => t.trim()).filter(Boolean),
    orderBy: `${SERVER_SORT[s.sort] || 'timestamp'}.${SERVER_SORT[s.sort] ? s.dir : 'desc'}`,
  };
  const secs = rangeSeconds(s.range);
  if (secs) q.fromTimestamp = new Date(Date.now() - secs * 1000).toISOString();
  if (s.range === 'custom') {
    q.fromTimestamp = s.from;
    q.toTimestamp = s.to;
  }
  return q;
}

export async function tracesPage(ctx) {
  const s = state(ctx.params);
  const go = (changes) => {
    const next = { ...s, ...changes, page: changes.page || 1 };
    // Defaults stay out of the URL, so shared links are short.
    if (Number(next.limit) === 20) next.limit = '';
    if (next.page === 1) next.page = '';
    if (next.sort === 'timestamp' && next.dir === 'desc') next.sort = next.dir = '';
    ctx.go('/traces', next);
  };

  ctx.root.append(h('h1', null, 'Traces'), filterForm(s, go));
  const results = h('section', { id: 'traces-results', 'aria-live': 'polite', 'aria-busy': 'true' }, h('p.muted', null, 'Loading…'));
  ctx.root.append(results);

  const list = await get('/api/public/traces', query(s), { signal: ctx.signal });
  results.replaceChildren();
  results.setAttribute('aria-busy', 'false');
  if (!list.data.length) {
    results.append(emptyBox(FILTERS.some((k) => s[k]) ? 'No trace matches these filters.' : 'No traces yet. Send one with POST /v1/l/batch or a Langfuse SDK.'));
    return;
  }
  const rows = list.data.map((t) => traceRow(t));
  const tbody = h('tbody', null, rows.map((r) => r.tr));
  const clientSort = !SERVER_SORT[s.sort];
  const table = h('table.data', { id: 'traces-table' },
    h('caption.sr-only', null, 'Traces'),
    h('thead', null, h('tr', null, COLUMNS.map(([col, text]) => sortHeader(col, text, s, go)))),
    tbody);
  add(results,
    clientSort ? h('p.muted', null, `Sorted by ${s.sort} within this page; the API orders pages by timestamp.`) : null,
    h('div.table-wrap', null, table),
    pager(list.meta, s, go));
  if (clientSort) sortRows(tbody, rows, s);

  // Tokens and level come from each trace's observations.
  await pool(rows.map((r) => async () => {
    try {
      r.fill(await traceSummary(r.trace, ctx.signal));
    } catch (err) {
      if (isAbort(err)) throw err;
      r.fail(err);
    }
  }), 4);
  if (clientSort) sortRows(tbody, rows, s);
}

function filterForm(s, go) {
  const input = (id, value, props = {}) => h('input', { id, name: id, type: 'text', value, autocomplete: 'off', ...props });
  const range = select('f-range', [['', 'All time'], ...RANGES.map(([k, t]) => [k, t]), ['custom', 'Custom…']], s.range);
  const from = input('f-from', isoToLocalInput(s.from), { type: 'datetime-local', step: 1 });
  const to = input('f-to', isoToLocalInput(s.to), { type: 'datetime-local', step: 1 });
  const custom = h('div.custom-range', { hidden: s.range !== 'custom' }, field('From', from), field('To', to));
  range.addEventListener('change', () => { custom.hidden = range.value !== 'custom'; });
  const name = input('f-name', s.name);
  const user = input('f-user', s.userId);
  const session = input('f-session', s.sessionId);
  const tags = input('f-tags', s.tags);
  const env = input('f-env', s.environment);
  const form = h('form.filters', {
    id: 'traces-filters', role: 'search', 'aria-label': 'Filter traces',
    onsubmit: (e) => {
      e.preventDefault();
      go({
        range: range.value, from: range.value === 'custom' ? localInputToISO(from.value) : '', to: range.value === 'custom' ? localInputToISO(to.value) : '',
        name: name.value.trim(), userId: user.value.trim(), sessionId: session.value.trim(), tags: tags.value.trim(), environment: env.value.trim(),
      });
    },
  },
  field('Time range', range), custom, field('Name', name), field('User', user), field('Session', session),
  field('Tags', tags, 'comma-separated, all must match'), field('Environment', env),
  h('div.actions', null,
    h('button.primary', { type: 'submit', id: 'f-apply' }, 'Apply'),
    h('button', { type: 'button', id: 'f-clear', onclick: () => go(Object.fromEntries(FILTERS.map((k) => [k, '']))) }, 'Clear')));
  return form;
}

function sortHeader(col, text, s, go) {
  const active = s.sort === col;
  const next = active && s.dir === 'desc' ? 'asc' : 'desc';
  return h('th', { scope: 'col', 'aria-sort': active ? (s.dir === 'asc' ? 'ascending' : 'descending') : null, class: `col-${col}` },
    h('button.sort', { type: 'button', id: `sort-${col}`, onclick: () => go({ sort: col, dir: next, page: s.page }) },
      text, active ? (s.dir === 'asc' ? ' ▲' : ' ▼') : h('span.sort-hint', { 'aria-hidden': 'true' }, ' ↕')));
}

function traceRow(t) {
  const tokens = h('td.num.col-tokens', { 'aria-busy': 'true' }, '…');
  const level = h('td.col-level', { 'aria-busy': 'true' }, '…');
  const open = () => { location.hash = href('/trace/' + encodeURIComponent(t.id)); };
  const tr = activateRow(h('tr', { dataset: { traceId: t.id } },
    h('td.col-timestamp', null, timeCell(t.timestamp)),
    h('td.col-name', null, h('a', { href: href('/trace/' + encodeURIComponent(t.id)) }, t.name || t.id)),
    h('td.col-user', null, t.userId || '—'),
    h('td.col-session', null, t.sessionId ? h('a', { href: href('/session/' + encodeURIComponent(t.sessionId)) }, t.sessionId) : '—'),
    h('td.num.col-latency', null, fmtSeconds(t.latency)),
    tokens,
    h('td.num.col-cost', null, fmtCost(t.totalCost)),
    level), open);
  const row = {
    trace: t, tr,
    values: { timestamp: t.timestamp, name: t.name, user: t.userId, session: t.sessionId, latency: t.latency ?? -1, cost: t.totalCost ?? 0, tokens: -1, level: -1 },
    fill(sum) {
      tokens.textContent = fmtNumber(sum.tokens, 0);
      tokens.removeAttribute('aria-busy');
      level.replaceChildren(levelBadge(sum.level));
      level.removeAttribute('aria-busy');
      if (sum.statusMessage) level.title = sum.statusMessage;
      tr.classList.toggle('row-error', sum.level === 'ERROR');
      tr.classList.toggle('row-warning', sum.level === 'WARNING');
      row.values.tokens = sum.tokens;
      row.values.level = LEVELS.indexOf(sum.level);
    },
    fail(err) {
      tokens.textContent = level.textContent = '?';
      tokens.title = level.title = err.message;
      tokens.removeAttribute('aria-busy');
      level.removeAttribute('aria-busy');
    },
  };
  return row;
}

function sortRows(tbody, rows, s) {
  const sign = s.dir === 'asc' ? 1 : -1;
  const sorted = [...rows].sort((a, b) => sign * (a.values[s.sort] - b.values[s.sort]));
  tbody.append(...sorted.map((r) => r.tr));
}

function pager(meta, s, go) {
  const pages = Math.max(1, meta.totalPages);
  const limit = select('f-limit', [20, 50, 100], s.limit, { onchange: (e) => go({ limit: e.target.value, page: 1 }) });
  return h('nav.pager', { 'aria-label': 'Pages' },
    h('button', { type: 'button', id: 'page-prev', disabled: s.page <= 1, onclick: () => go({ page: s.page - 1 }) }, '← Previous'),
    h('span', { id: 'page-info' }, `Page ${meta.page} of ${pages} · ${meta.totalItems.toLocaleString('en-US')} traces`),
    h('button', { type: 'button', id: 'page-next', disabled: s.page >= pages, onclick: () => go({ page: s.page + 1 }) }, 'Next →'),
    h('label', { for: 'f-limit' }, 'Per page'), limit);
}
