// Fleet: nodes × GPUs coloured by the latest gpu_utilization, and each
// replica's KV-cache usage and queue depth, with stale values marked. A click
// opens the series in the metrics explorer.

import { get, pool } from './api.js';
import { h, select, emptyBox, fmtNumber, labelText, RANGES } from './dom.js';
import { newestPoint, freshnessLevel, LEVEL_TEXT, ageText, legend } from './freshness.js';
import { explorerLink, seconds } from './metrics.js';

const REFRESH = [['', 'Off'], ['15s', 'Every 15 s'], ['30s', 'Every 30 s'], ['1m', 'Every minute']];
const natural = new Intl.Collator('en', { numeric: true }).compare;

// Every series of a metric's latest values in the window. The query API
// answers at most 50 series, so a truncated answer is asked again per value of
// the label with the most values (one node's GPUs, say), a few at a time.
async function latest(name, windowSecs, signal) {
  const now = Date.now();
  const base = {
    name, agg: 'last', step: `${windowSecs}s`,
    from: new Date(now - windowSecs * 1000).toISOString(), to: new Date(now).toISOString(),
  };
  const first = await get('/api/public/metrics/query', base, { signal });
  if (!first.meta.truncated) return { series: flatten(first), incomplete: false };
  const keys = (await get('/api/public/metrics/labels', { name }, { signal })).data;
  const [key, values] = Object.entries(keys).sort((a, b) => b[1].length - a[1].length)[0] || [];
  if (!key) return { series: flatten(first), incomplete: true };
  const parts = await pool(values.map((v) => () => get('/api/public/metrics/query', { ...base, labels: JSON.stringify({ [key]: v }) }, { signal })), 4);
  return { series: parts.flatMap(flatten), incomplete: parts.some((p) => p.meta.truncated) };
}

function flatten(res) {
  return res.data.map((d) => {
    const last = d.values[d.values.length - 1];
    return { labels: d.labels, value: last ? last.value : null, newest: newestPoint(d, res.meta, res.data.length) };
  });
}

// 0–100 % (or 0–1) into ten colour steps.
function heat(value, scale) {
  if (value === null || !Number.isFinite(value)) return 'heat-none';
  return `heat-${Math.max(0, Math.min(9, Math.floor((value / scale) * 10)))}`;
}

function scaleOf(series) {
  return series.every((s) => s.value === null || s.value <= 1) ? 1 : 100;
}

function pct(value, scale) {
  return value === null ? '—' : `${fmtNumber(scale === 1 ? value * 100 : value, 1)}%`;
}

export async function fleetPage(ctx) {
  const windowKey = RANGES.some(([k]) => k === ctx.params.get('window')) ? ctx.params.get('window') : '15m';
  const refresh = ctx.params.get('refresh') || '';
  const windowSecs = RANGES.find(([k]) => k === windowKey)[2];
  const go = (changes) => ctx.go('/fleet', { window: windowKey === '15m' ? '' : windowKey, refresh, ...changes });

  const status = h('p.status', { id: 'fleet-status', role: 'status' }, 'Loading…');
  const body = h('div', { id: 'fleet-body' });
  ctx.root.append(h('h1', null, 'Fleet'),
    h('form.filters', { 'aria-label': 'Fleet options', onsubmit: (e) => e.preventDefault() },
      h('div.field', null, h('label', { for: 'fleet-window' }, 'Latest value within'),
        select('fleet-window', RANGES.slice(0, 5).map(([k, t]) => [k, t.replace('Last ', 'the last ')]), windowKey, { onchange: (e) => go({ window: e.target.value === '15m' ? '' : e.target.value }) })),
      h('div.field', null, h('label', { for: 'fleet-refresh' }, 'Auto-refresh'),
        select('fleet-refresh', REFRESH, refresh, { onchange: (e) => go({ refresh: e.target.value }) })),
      h('div.actions', null, h('button', { type: 'button', id: 'fleet-reload', onclick: () => run().catch(() => {}) }, 'Refresh now'))),
    status, legend(), body);

  const run = async () => {
    const [gpus, kv, queue] = await Promise.all(['gpu_utilization', 'kv_cache_usage', 'pending_requests']
      .map((m) => latest(m, windowSecs, ctx.signal)));
    const now = Date.now();
    const stale = [...gpus.series, ...kv.series, ...queue.series].filter((s) => s.newest && freshnessLevel(now - s.newest.ms) !== 'fresh').length;
    status.replaceChildren(`${new Set(gpus.series.map((s) => s.labels.node_id)).size} nodes · ${gpus.series.length} GPUs · ${kv.series.length} replicas · ${stale} stale values · updated ${new Date().toLocaleTimeString()}`,
      gpus.incomplete || kv.incomplete || queue.incomplete ? h('strong.warn', null, ' · some series are missing (over 50 per query even when split)') : '',
      [...gpus.series, ...kv.series, ...queue.series].some((s) => s.newest && s.newest.approx)
        ? h('strong.warn', null, ' · this server reports no newest point per series (latest_ts), so ages are approximate and err towards stale') : '');
    body.replaceChildren(gpuGrid(gpus.series, now), replicaTable(kv.series, queue.series, now));
  };
  await run();
  const every = seconds(refresh);
  if (every) {
    const timer = setInterval(() => { if (!document.hidden) run().catch(() => {}); }, every * 1000);
    ctx.onCleanup(() => clearInterval(timer));
  }
}

function staleMark(newest, now) {
  if (!newest) return { level: 'fresh', text: '' };
  const age = now - newest.ms;
  const level = freshnessLevel(age);
  return { level, text: `${LEVEL_TEXT[level]}, newest point ${ageText(age)}` };
}

function gpuGrid(series, now) {
  if (!series.length) return h('section', { id: 'fleet-gpus' }, h('h2', null, 'GPU utilisation'), emptyBox('No gpu_utilization series in this window.'));
  const nodes = [...new Set(series.map((s) => s.labels.node_id ?? '(none)'))].sort(natural);
  const gpus = [...new Set(series.map((s) => s.labels.gpu_index ?? '(none)'))].sort(natural);
  const at = new Map(series.map((s) => [`${s.labels.node_id ?? '(none)'}\u0000${s.labels.gpu_index ?? '(none)'}`, s]));
  const scale = scaleOf(series);
  return h('section', { id: 'fleet-gpus' }, h('h2', null, 'GPU utilisation (latest)'),
    h('div.table-wrap', null, h('table.grid', { id: 'fleet-grid' },
      h('caption.sr-only', null, 'Latest GPU utilisation per node and GPU'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Node'), gpus.map((g) => h('th', { scope: 'col' }, `GPU ${g}`)))),
      h('tbody', null, nodes.map((n) => h('tr', { dataset: { node: n } },
        h('th', { scope: 'row' }, n),
        gpus.map((g) => {
          const s = at.get(`${n}\u0000${g}`);
          if (!s) return h('td.cell.heat-none', null, h('span.sr-only', null, 'no data'));
          const mark = staleMark(s.newest, now);
          return h('td.cell', { class: `${heat(s.value, scale)} ${mark.level}` },
            h('a.cell-link', {
              href: explorerLink('gpu_utilization', s.labels), dataset: { node: n, gpu: g },
              'aria-label': `${n} GPU ${g}: ${pct(s.value, scale)} utilisation, ${mark.text}`, title: mark.text,
            }, pct(s.value, scale), mark.level !== 'fresh' ? h('span.stale-mark', { 'aria-hidden': 'true' }, mark.level === 'stale-scheduler' ? ' ▲▲' : ' ▲') : null));
        })))))),
    h('p.scale', { 'aria-hidden': 'true' }, '0%', ...Array.from({ length: 10 }, (_, i) => h('span', { class: `swatch heat-${i}` })), '100%'));
}

function replicaTable(kv, queue, now) {
  const key = (l) => `${l.model_uid}\u0000${l.replica_id}\u0000${l.node_id}`;
  const rows = new Map();
  for (const [kind, list] of [['kv', kv], ['queue', queue]]) {
    for (const s of list) {
      const k = key(s.labels);
      if (!rows.has(k)) rows.set(k, { labels: { model_uid: s.labels.model_uid, replica_id: s.labels.replica_id, node_id: s.labels.node_id } });
      rows.get(k)[kind] = s;
    }
  }
  const list = [...rows.values()].sort((a, b) => natural(labelText(a.labels), labelText(b.labels)));
  if (!list.length) return h('section', { id: 'fleet-replicas' }, h('h2', null, 'Replicas'), emptyBox('No kv_cache_usage or pending_requests series in this window.'));
  const scale = scaleOf(kv);
  const cell = (name, s, text, chipClass = '') => {
    if (!s) return h('td', null, '—');
    const mark = staleMark(s.newest, now);
    return h('td', { class: mark.level }, h('span.chip', { class: chipClass },
      h('a', { href: explorerLink(name, s.labels), title: mark.text, 'aria-label': `${name} ${text}, ${mark.text}` }, text)),
    mark.level !== 'fresh' ? h('span.stale-mark', { 'aria-hidden': 'true' }, mark.level === 'stale-scheduler' ? ' ▲▲ stale' : ' ▲ stale') : null);
  };
  return h('section', { id: 'fleet-replicas' }, h('h2', null, 'Replicas'),
    h('div.table-wrap', null, h('table.data', { id: 'fleet-replica-table' },
      h('caption.sr-only', null, 'Latest KV-cache usage and queue depth per replica'),
      h('thead', null, h('tr', null, ['Model', 'Replica', 'Node', 'KV-cache usage', 'Queue depth (pending requests)'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, list.map((r) => h('tr', { dataset: { model: r.labels.model_uid ?? '', replica: r.labels.replica_id ?? '', node: r.labels.node_id ?? '' } },
        h('td', null, r.labels.model_uid ?? '—'), h('td', null, r.labels.replica_id ?? '—'), h('td', null, r.labels.node_id ?? '—'),
        cell('kv_cache_usage', r.kv, r.kv ? pct(r.kv.value, scale) : '', r.kv ? heat(r.kv.value, scale) : ''),
        cell('pending_requests', r.queue, r.queue ? fmtNumber(r.queue.value, 0) : '')))))));
}
