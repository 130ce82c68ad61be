// Metrics explorer: a metric, label filters, agg/step/group_by and a range
// (all in the URL), a line per series, and each series' freshness.

import { get, isAbort } from './api.js';
import {
  h, field, select, errorBox, emptyBox, fmtNumber, timeCell, labelText,
  RANGES, rangeSeconds, localInputToISO, isoToLocalInput,
} from './dom.js';
import { lineChart, color } from './chart.js';
import { newestPoint, freshnessLevel, freshnessBadge, ageText, legend } from './freshness.js';

const AGGS = ['avg', 'min', 'max', 'sum', 'count', 'last', 'p50', 'p90', 'p95', 'p99'];
const STEPS = [['', 'Auto'], '5s', '15s', '30s', '1m', '5m', '10m', '30m', '1h', '6h', '1d'];
const REFRESH = [['', 'Off'], ['5s', 'Every 5 s'], ['15s', 'Every 15 s'], ['30s', 'Every 30 s'], ['1m', 'Every minute']];
const NICE = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

export function seconds(d) {
  const m = /^(\d+)(s|m|h|d)$/.exec(d || '');
  return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : 0;
}

// About 200 buckets over the range, rounded to a step people recognise.
export function autoStep(rangeSecs) {
  const want = rangeSecs / 200;
  const s = NICE.find((n) => n >= want) || 86400;
  return s % 86400 === 0 ? `${s / 86400}d` : s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`;
}

function state(params) {
  let labels = {};
  try {
    const parsed = JSON.parse(params.get('labels') || '{}');
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) labels = parsed;
  } catch { /* a hand-edited URL: ignore the filter */ }
  return {
    name: params.get('name') || '',
    labels,
    groupBy: (params.get('group_by') || '').split(',').filter(Boolean),
    agg: AGGS.includes(params.get('agg')) ? params.get('agg') : 'avg',
    step: params.get('step') || '',
    range: params.get('range') || '1h',
    from: params.get('from') || '',
    to: params.get('to') || '',
    refresh: params.get('refresh') || '',
  };
}

export function explorerLink(name, labels, extra = {}) {
  const q = new URLSearchParams({ name, ...extra });
  if (labels && Object.keys(labels).length) q.set('labels', JSON.stringify(labels));
  return '#/metrics?' + q.toString();
}

function urlParams(s) {
  return {
    name: s.name, labels: Object.keys(s.labels).length ? JSON.stringify(s.labels) : '',
    group_by: s.groupBy.join(','), agg: s.agg === 'avg' ? '' : s.agg, step: s.step, range: s.range === '1h' ? '' : s.range,
    from: s.range === 'custom' ? s.from : '', to: s.range === 'custom' ? s.to : '', refresh: s.refresh,
  };
}

function timeWindow(s) {
  if (s.range === 'custom') {
    const from = Date.parse(s.from);
    const to = s.to ? Date.parse(s.to) : Date.now();
    return { from: s.from, to: s.to, secs: Math.max(1, (to - from) / 1000) || 3600 };
  }
  const secs = rangeSeconds(s.range) || 3600;
  const now = Date.now();
  return { from: new Date(now - secs * 1000).toISOString(), to: new Date(now).toISOString(), secs };
}

export async function metricsPage(ctx) {
  const s = state(ctx.params);
  const go = (changes) => ctx.go('/metrics', urlParams({ ...s, ...changes }));
  ctx.root.append(h('h1', null, 'Metrics explorer'));

  const names = (await get('/api/public/metrics/names', {}, { signal: ctx.signal })).data;
  if (!names.length) {
    ctx.root.append(emptyBox('No metrics yet. Push points with POST /v1/metrics/batch.'));
    return;
  }
  const keys = s.name ? (await get('/api/public/metrics/labels', { name: s.name }, { signal: ctx.signal })).data : {};
  ctx.root.append(controls(s, names, keys, go));
  if (!s.name) {
    ctx.root.append(emptyBox('Choose a metric.'));
    return;
  }

  const status = h('p.status', { id: 'm-status', role: 'status' }, 'Loading…');
  const problem = h('div', { id: 'm-error' });
  const chartBox = h('div.chart', { id: 'm-chart' });
  const tbody = h('tbody');
  const table = h('table.data', { id: 'm-series' },
    h('caption', null, 'Series and their freshness'),
    h('thead', null, h('tr', null, ['Series', 'Last value', 'Newest point', 'Age', 'Freshness'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  ctx.root.append(status, problem, chartBox, legend(), h('div.table-wrap', null, table));

  let chart = null;
  let rows = []; // [{tr, ageCell, freshCell, newest}]
  ctx.onCleanup(() => chart && chart.destroy());

  const tick = () => {
    const now = Date.now();
    for (const r of rows) {
      if (!r.newest) continue;
      const age = now - r.newest.ms;
      r.ageCell.textContent = ageText(age);
      const level = freshnessLevel(age);
      if (r.level !== level) {
        r.level = level;
        r.tr.className = `series-row ${level}`;
        r.freshCell.replaceChildren(freshnessBadge(age, r.newest.approx));
      }
    }
  };

  const run = async () => {
    const w = timeWindow(s);
    const step = s.step || autoStep(w.secs);
    const res = await get('/api/public/metrics/query', {
      name: s.name, labels: Object.keys(s.labels).length ? JSON.stringify(s.labels) : '', agg: s.agg, step,
      group_by: s.groupBy.join(','), from: w.from, to: w.to,
    }, { signal: ctx.signal });
    problem.replaceChildren();
    const list = res.data.map((d) => ({ label: labelText(d.labels), points: d.values.map((v) => [Date.parse(v.timestamp), v.value]), d }));
    status.replaceChildren(`${res.meta.series_count} series · step ${step} · agg ${s.agg} · updated `, timeCell(new Date().toISOString()),
      res.meta.truncated ? h('strong.warn', null, ' · truncated: the API returns at most 50 series and 1,000 points each; narrow the filters or widen the step') : '');
    if (!list.length) {
      if (chart) chart.destroy();
      chart = null;
      chartBox.replaceChildren(emptyBox('No points in this range.'));
      rows = [];
      tbody.replaceChildren();
      return;
    }
    if (chart) chart.update(list);
    else {
      chartBox.replaceChildren();
      chart = lineChart(chartBox, list, { label: s.name });
    }
    rows = list.map((l, i) => {
      const newest = newestPoint(l.d, res.meta, res.data.length);
      const last = l.d.values[l.d.values.length - 1];
      const ageCell = h('td.num');
      const freshCell = h('td');
      const tr = h('tr.series-row', { dataset: { series: l.label } },
        h('th', { scope: 'row' }, h('span.swatch', { style: { background: color(i) }, 'aria-hidden': 'true' }), ' ', l.label),
        h('td.num', null, last ? fmtNumber(last.value) : '—'),
        h('td', null, newest ? timeCell(new Date(newest.ms).toISOString()) : '—'),
        ageCell, freshCell);
      return { tr, ageCell, freshCell, newest, level: '' };
    });
    tbody.replaceChildren(...rows.map((r) => r.tr));
    tick();
  };

  await run();
  const ticker = setInterval(tick, 1000);
  ctx.onCleanup(() => clearInterval(ticker));
  const every = seconds(s.refresh);
  if (every) {
    const timer = setInterval(() => {
      if (document.hidden) return;
      run().catch((err) => {
        if (!isAbort(err)) problem.replaceChildren(errorBox(err));
      });
    }, every * 1000);
    ctx.onCleanup(() => clearInterval(timer));
  }
}

function controls(s, names, keys, go) {
  const name = select('m-name', [['', 'Choose…'], ...names], s.name, { onchange: (e) => go({ name: e.target.value, labels: {}, groupBy: [] }) });
  const keyList = Object.keys(keys).sort();
  const filters = keyList.map((k) => field(k, select(`m-label-${k}`, [['', 'any'], ...keys[k]], s.labels[k] || '', {
    onchange: (e) => {
      const labels = { ...s.labels };
      if (e.target.value) labels[k] = e.target.value;
      else delete labels[k];
      go({ labels });
    },
  })));
  const groups = keyList.map((k) => h('label.inline', null, h('input', {
    type: 'checkbox', id: `m-group-${k}`, checked: s.groupBy.includes(k),
    onchange: (e) => go({ groupBy: e.target.checked ? [...s.groupBy, k] : s.groupBy.filter((g) => g !== k) }),
  }), k));
  const range = select('m-range', [...RANGES.map(([k, t]) => [k, t]), ['custom', 'Custom…']], s.range, {
    onchange: (e) => (e.target.value === 'custom' ? (custom.hidden = false) : go({ range: e.target.value })),
  });
  const from = h('input', { id: 'm-from', type: 'datetime-local', step: 1, value: isoToLocalInput(s.from) });
  const to = h('input', { id: 'm-to', type: 'datetime-local', step: 1, value: isoToLocalInput(s.to) });
  const custom = h('div.custom-range', { hidden: s.range !== 'custom' }, field('From', from), field('To (empty: now)', to),
    h('button', { type: 'button', id: 'm-custom-apply', onclick: () => go({ range: 'custom', from: localInputToISO(from.value), to: localInputToISO(to.value) }) }, 'Apply range'));
  return h('form.filters', { id: 'metrics-controls', 'aria-label': 'Query', onsubmit: (e) => e.preventDefault() },
    field('Metric', name),
    keyList.length ? h('fieldset', null, h('legend', null, 'Label filters'), filters) : null,
    keyList.length ? h('fieldset', null, h('legend', null, 'Group by'), groups) : null,
    field('Aggregation', select('m-agg', AGGS, s.agg, { onchange: (e) => go({ agg: e.target.value }) })),
    field('Step', select('m-step', STEPS, s.step, { onchange: (e) => go({ step: e.target.value }) })),
    field('Time range', range), custom,
    field('Auto-refresh', select('m-refresh', REFRESH, s.refresh, { onchange: (e) => go({ refresh: e.target.value }) })));
}
