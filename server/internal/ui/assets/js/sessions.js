// Sessions: the list, and one session as its traces in time order.

import { get } from './api.js';
import { h, select, emptyBox, activateRow, timeCell, fmtSeconds, fmtCost, jsonView, href, RANGES, rangeSeconds } from './dom.js';

export async function sessionsPage(ctx) {
  const range = ctx.params.get('range') || '';
  const page = Math.max(1, parseInt(ctx.params.get('page'), 10) || 1);
  const go = (changes) => ctx.go('/sessions', { range, page: '', ...changes });
  const rangeSel = select('s-range', [['', 'All time'], ...RANGES.map(([k, t]) => [k, t])], range, { onchange: (e) => go({ range: e.target.value }) });
  ctx.root.append(h('h1', null, 'Sessions'),
    h('form.filters', { role: 'search', 'aria-label': 'Filter sessions', onsubmit: (e) => e.preventDefault() },
      h('div.field', null, h('label', { for: 's-range' }, 'Created'), rangeSel)));

  const secs = rangeSeconds(range);
  const list = await get('/api/public/sessions', {
    page, limit: 50, fromTimestamp: secs ? new Date(Date.now() - secs * 1000).toISOString() : '',
  }, { signal: ctx.signal });
  if (!list.data.length) {
    ctx.root.append(emptyBox('No sessions. A trace joins a session when it has a sessionId.'));
    return;
  }
  const pages = Math.max(1, list.meta.totalPages);
  ctx.root.append(
    h('div.table-wrap', null, h('table.data', { id: 'sessions-table' },
      h('caption.sr-only', null, 'Sessions'),
      h('thead', null, h('tr', null, ['Session', 'Created', 'Environment'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, list.data.map((s) => activateRow(h('tr', { dataset: { sessionId: s.id } },
        h('td', null, h('a', { href: href('/session/' + encodeURIComponent(s.id)) }, s.id)),
        h('td', null, timeCell(s.createdAt)),
        h('td', null, s.environment || '—')), () => { location.hash = href('/session/' + encodeURIComponent(s.id)); }))))),
    h('nav.pager', { 'aria-label': 'Pages' },
      h('button', { type: 'button', disabled: page <= 1, onclick: () => go({ page: page - 1 }) }, '← Previous'),
      h('span', null, `Page ${page} of ${pages} · ${list.meta.totalItems.toLocaleString('en-US')} sessions`),
      h('button', { type: 'button', disabled: page >= pages, onclick: () => go({ page: page + 1 }) }, 'Next →')));
}

export async function sessionPage(ctx) {
  const id = ctx.args[0];
  const s = await get(`/api/public/sessions/${encodeURIComponent(id)}`, {}, { signal: ctx.signal });
  const traces = [...(s.traces || [])].sort((a, b) => new Date(a.timestamp) - new Date(b.timestamp));
  ctx.root.append(
    h('p.crumbs', null, h('a', { href: '#/sessions' }, 'Sessions'), ' / ', s.id),
    h('h1', null, `Session ${s.id}`),
    h('p.muted', null, `${traces.length} traces · created `, timeCell(s.createdAt), s.environment ? ` · ${s.environment}` : ''),
    h('ol.session-traces', { id: 'session-traces' }, traces.map((t) => h('li.card', { dataset: { traceId: t.id } },
      h('div.card-head', null,
        h('a', { href: href('/trace/' + encodeURIComponent(t.id)) }, t.name || t.id),
        h('span.muted', null, ' · ', timeCell(t.timestamp), ' · ', t.userId || 'no user', ' · ', fmtSeconds(t.latency), ' · ', fmtCost(t.totalCost))),
      h('div.io', null,
        h('div', null, h('h3', null, 'Input'), jsonView(t.input)),
        h('div', null, h('h3', null, 'Output'), jsonView(t.output)))))),
  );
}
