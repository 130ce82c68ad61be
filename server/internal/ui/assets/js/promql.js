// PromQL: a query box over the server's Prometheus HTTP API. A range query
// (matrix) is charted; an instant query (vector, scalar) is a table.

import { get, ApiError } from './api.js';
import { h, field, select, errorBox, emptyBox, fmtNumber, timeCell, RANGES, rangeSeconds } from './dom.js';
import { lineChart } from './chart.js';
import { autoStep, seconds } from './metrics.js';

export function seriesName(metric) {
  const { __name__: name = '', ...labels } = metric || {};
  const keys = Object.keys(labels).sort();
  return `${name}{${keys.map((k) => `${k}="${labels[k]}"`).join(', ')}}`;
}

export async function promqlPage(ctx) {
  const q = ctx.params.get('q') || '';
  const mode = ctx.params.get('mode') === 'instant' ? 'instant' : 'range';
  const range = rangeSeconds(ctx.params.get('range')) ? ctx.params.get('range') : '1h';
  const step = ctx.params.get('step') || '';

  const query = h('textarea', { id: 'pq-query', rows: 3, spellcheck: 'false', placeholder: 'avg by (node_id) (gpu_utilization)', value: q });
  const radio = (v, text) => h('label.inline', null, h('input', { type: 'radio', name: 'pq-mode', id: `pq-mode-${v}`, value: v, checked: v === mode }), text);
  const rangeSel = select('pq-range', RANGES.map(([k, t]) => [k, t]), range);
  const stepSel = select('pq-step', [['', 'Auto'], '5s', '15s', '30s', '1m', '5m', '15m', '1h'], step);
  const form = h('form.filters.promql', {
    id: 'pq-form', 'aria-label': 'PromQL query',
    onsubmit: (e) => {
      e.preventDefault();
      const next = { q: query.value.trim(), mode: form.elements['pq-mode'].value, range: rangeSel.value, step: stepSel.value };
      const before = location.hash;
      ctx.go('/promql', next);
      if (location.hash === before) ctx.reload(); // same query again: run it again
    },
  },
  h('div.field.wide', null, h('label', { for: 'pq-query' }, 'PromQL expression'), query, h('small.hint', null, 'Ctrl+Enter runs the query.')),
  h('fieldset', null, h('legend', null, 'Query type'), radio('range', 'Range (chart)'), radio('instant', 'Instant (table)')),
  field('Range', rangeSel), field('Step', stepSel),
  h('div.actions', null, h('button.primary', { type: 'submit', id: 'pq-run' }, 'Run')));
  query.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  const result = h('section', { id: 'pq-result', 'aria-live': 'polite' });
  ctx.root.append(h('h1', null, 'PromQL'), form, result);
  if (!q) {
    result.append(emptyBox('Enter a PromQL expression, for example gpu_utilization or avg by (node_id) (gpu_utilization).'));
    return;
  }

  const end = Date.now() / 1000;
  const secs = rangeSeconds(range);
  const stepSecs = seconds(step || autoStep(secs));
  let body;
  try {
    body = mode === 'range'
      ? await get('/api/v1/query_range', { query: q, start: (end - secs).toFixed(3), end: end.toFixed(3), step: stepSecs }, { signal: ctx.signal })
      : await get('/api/v1/query', { query: q, time: end.toFixed(3) }, { signal: ctx.signal });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      result.append(h('div.notice', { id: 'pq-unavailable', role: 'status' },
        'Prometheus API not available on this server: ', h('code', null, mode === 'range' ? '/api/v1/query_range' : '/api/v1/query'), ' answered 404.'));
      return;
    }
    if (err instanceof ApiError && err.body && err.body.errorType) {
      result.append(h('div.error', { id: 'pq-error', role: 'alert' }, `${err.body.errorType}: ${err.body.error}`));
      return;
    }
    throw err;
  }
  const data = body.data || {};
  if (body.warnings && body.warnings.length) result.append(h('ul.warn', { id: 'pq-warnings' }, body.warnings.map((w) => h('li', null, w))));
  const rows = data.result || [];
  if (data.resultType === 'matrix' && mode === 'range') {
    if (!rows.length) {
      result.append(emptyBox('No data.'));
      return;
    }
    const box = h('div.chart', { id: 'pq-chart' });
    result.append(h('p.status', null, `${rows.length} series · step ${stepSecs} s`), box);
    const chart = lineChart(box, rows.map((r) => ({ label: seriesName(r.metric), points: (r.values || []).map(([t, v]) => [t * 1000, Number(v)]) })));
    ctx.onCleanup(() => chart.destroy());
    return;
  }
  result.append(resultTable(data.resultType, rows));
}

function resultTable(type, rows) {
  let body = [];
  if (type === 'vector') body = rows.map((r) => [seriesName(r.metric), r.value[1], r.value[0]]);
  else if (type === 'scalar' || type === 'string') body = [[type, rows[1], rows[0]]];
  else if (type === 'matrix') body = rows.map((r) => [`${seriesName(r.metric)} (${r.values.length} samples)`, r.values[r.values.length - 1]?.[1], r.values[r.values.length - 1]?.[0]]);
  if (!body.length) return emptyBox('No data.');
  return h('div.table-wrap', null, h('table.data', { id: 'pq-table' },
    h('caption', null, `Result: ${type}`),
    h('thead', null, h('tr', null, ['Series', 'Value', 'Timestamp'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, body.map(([name, v, t]) => h('tr', null,
      h('th', { scope: 'row' }, name),
      h('td.num', null, type === 'string' ? v : fmtNumber(v, 6)),
      h('td', null, t === undefined ? '—' : timeCell(new Date(t * 1000).toISOString())))))));
}
