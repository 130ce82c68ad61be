// One trace: its observations as a timeline tree, the selected observation's
// details, the trace's input/output and its scores.

import { get } from './api.js';
import { h, add, put, timeCell, fmtSeconds, fmtNumber, fmtCost, jsonView, href, emptyBox } from './dom.js';
import { summarize, observationTokens, levelBadge } from './summary.js';

const ms = (iso) => (iso ? new Date(iso).getTime() : NaN);

export async function tracePage(ctx) {
  const id = ctx.args[0];
  const t = await get(`/api/public/traces/${encodeURIComponent(id)}`, {}, { signal: ctx.signal });
  const obs = t.observations || [];
  const sum = summarize(obs);

  add(ctx.root,
    h('p.crumbs', null, h('a', { href: '#/traces' }, 'Traces'), ' / ', t.id),
    h('h1', null, t.name || t.id),
    h('dl.facts', { id: 'trace-facts' },
      fact('Trace id', h('code', null, t.id)),
      fact('Timestamp', timeCell(t.timestamp)),
      fact('User', t.userId || '—'),
      fact('Session', t.sessionId ? h('a', { id: 'trace-session', href: href('/session/' + encodeURIComponent(t.sessionId)) }, t.sessionId) : '—'),
      fact('Environment', t.environment || '—'),
      t.release ? fact('Release', t.release) : null,
      t.version ? fact('Version', t.version) : null,
      fact('Tags', (t.tags || []).length ? (t.tags || []).map((g) => h('span.tag', null, g)) : '—'),
      fact('Latency', fmtSeconds(t.latency)),
      fact('Tokens', fmtNumber(sum.tokens, 0)),
      fact('Cost', fmtCost(t.totalCost)),
      fact('Level', levelBadge(sum.level))),
  );

  const detail = h('section.obs-detail', { id: 'obs-detail', 'aria-live': 'polite', 'aria-label': 'Selected observation' });
  const tree = timeline(obs, (o) => {
    showObservation(detail, o);
    ctx.replace('/trace/' + encodeURIComponent(t.id), { obs: o.id });
  });
  ctx.root.append(h('div.trace-layout', null,
    h('section.timeline', { 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, `Timeline · ${obs.length} observations`), tree.el),
    detail));
  const wanted = ctx.params.get('obs');
  tree.select(obs.find((o) => o.id === wanted) || tree.first, false);

  add(ctx.root,
    h('section', { id: 'trace-io' }, h('h2', null, 'Trace input and output'),
      h('div.io', null, h('div', null, h('h3', null, 'Input'), jsonView(t.input)), h('div', null, h('h3', null, 'Output'), jsonView(t.output)))),
    t.metadata && Object.keys(t.metadata).length ? h('section', null, h('h2', null, 'Trace metadata'), jsonView(t.metadata)) : null,
    scores(t.scores || [], obs));
}

function fact(term, ...value) {
  return h('div', null, h('dt', null, term), h('dd', null, ...value));
}

// The observation tree in start order, drawn as a waterfall against the trace's span of time.
function timeline(obs, onSelect) {
  if (!obs.length) return { el: emptyBox('This trace has no observations.'), select() {}, first: null };
  const byId = new Map(obs.map((o) => [o.id, o]));
  const children = new Map();
  for (const o of obs) {
    const parent = o.parentObservationId && byId.has(o.parentObservationId) ? o.parentObservationId : '';
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(o);
  }
  for (const list of children.values()) list.sort((a, b) => ms(a.startTime) - ms(b.startTime));
  const start = Math.min(...obs.map((o) => ms(o.startTime)));
  const end = Math.max(...obs.map((o) => Math.max(ms(o.startTime), ms(o.endTime) || 0)));
  const total = Math.max(end - start, 1);

  const ordered = [];
  const walk = (parent, depth, seen) => {
    for (const o of children.get(parent) || []) {
      if (seen.has(o.id)) continue; // a cycle in parent ids: show each observation once
      seen.add(o.id);
      ordered.push([o, depth]);
      walk(o.id, depth + 1, seen);
    }
  };
  walk('', 0, new Set());

  const items = new Map();
  let selected = null;
  const select = (o, focus = true) => {
    if (!o) return;
    if (selected) {
      selected.setAttribute('aria-selected', 'false');
      selected.tabIndex = -1;
    }
    selected = items.get(o.id);
    selected.setAttribute('aria-selected', 'true');
    selected.tabIndex = 0;
    if (focus) selected.focus();
    onSelect(o);
  };
  const list = h('ul.tree', { id: 'trace-tree', role: 'tree', 'aria-label': 'Observations' });
  ordered.forEach(([o, depth], i) => {
    const s = ms(o.startTime);
    const e = ms(o.endTime);
    const dur = Number.isFinite(e) ? (e - s) / 1000 : null;
    const tokens = observationTokens(o);
    const usage = o.usageDetails || {};
    const bar = h('span.bar', {
      class: `bar-${o.type}`,
      style: { left: `${((s - start) / total) * 100}%`, width: Number.isFinite(e) ? `${Math.max(((e - s) / total) * 100, 0.4)}%` : '0.4%' },
    });
    const li = h('li.obs', {
      role: 'treeitem', 'aria-level': depth + 1, 'aria-selected': 'false', tabindex: -1,
      class: `level-row-${o.level}`, dataset: { obsId: o.id, type: o.type },
      onclick: () => select(o),
      onkeydown: (ev) => {
        const move = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: ordered.length - 1 }[ev.key];
        if (move !== undefined && ordered[move]) { ev.preventDefault(); select(ordered[move][0]); }
        else if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(o); }
      },
    },
    h('span.obs-label', { style: { paddingLeft: `${depth * 1.1}rem` } },
      h('span.type', { class: `type-${o.type}` }, typeShort(o.type)),
      h('span.obs-name', null, o.name || o.id),
      tokens ? h('span.obs-tokens', null, `${fmtNumber(usage.input ?? o.promptTokens, 0)} → ${fmtNumber(usage.output ?? o.completionTokens, 0)} (Σ ${fmtNumber(tokens, 0)}) tokens`) : null,
      o.level === 'ERROR' || o.level === 'WARNING' ? levelBadge(o.level) : null),
    h('span.track', { 'aria-hidden': 'true' }, bar),
    h('span.obs-dur', null, dur === null ? '—' : fmtSeconds(dur)));
    items.set(o.id, li);
    list.append(li);
  });
  return { el: list, select, first: ordered[0][0] };
}

function typeShort(type) {
  return { GENERATION: 'GEN', SPAN: 'SPAN', EVENT: 'EVENT' }[type] || type;
}

function showObservation(panel, o) {
  const s = ms(o.startTime);
  const e = ms(o.endTime);
  const usage = o.usageDetails || {};
  const cost = o.costDetails || {};
  const kv = (obj, fmt) => h('table.kv', null, h('tbody', null, Object.entries(obj).map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td.num', null, fmt(v))))));
  put(panel,
    h('h2', null, h('span.type', { class: `type-${o.type}` }, typeShort(o.type)), ' ', o.name || o.id),
    h('dl.facts', null,
      fact('Observation id', h('code', null, o.id)),
      fact('Type', o.type),
      fact('Start', timeCell(o.startTime)),
      fact('End', timeCell(o.endTime)),
      fact('Duration', Number.isFinite(e) ? fmtSeconds((e - s) / 1000) : '—'),
      o.timeToFirstToken !== null && o.timeToFirstToken !== undefined ? fact('Time to first token', fmtSeconds(o.timeToFirstToken)) : null,
      o.model ? fact('Model', h('code', { id: 'obs-model' }, o.model)) : null,
      fact('Level', levelBadge(o.level)),
      o.statusMessage ? fact('Status message', h('span', { id: 'obs-status' }, o.statusMessage)) : null,
      o.version ? fact('Version', o.version) : null,
      o.promptName ? fact('Prompt', `${o.promptName}${o.promptVersion ? ' v' + o.promptVersion : ''}`) : null),
    o.modelParameters && Object.keys(o.modelParameters).length ? h('section', { id: 'obs-params' }, h('h3', null, 'Model parameters'), jsonView(o.modelParameters)) : null,
    Object.keys(usage).length ? h('section', { id: 'obs-usage' }, h('h3', null, 'Usage (tokens)'), kv(usage, (v) => fmtNumber(v, 0))) : null,
    Object.keys(cost).length ? h('section', { id: 'obs-cost' }, h('h3', null, 'Cost'), kv(cost, fmtCost)) : null,
    h('section', { id: 'obs-input' }, h('h3', null, 'Input'), jsonView(o.input)),
    h('section', { id: 'obs-output' }, h('h3', null, 'Output'), jsonView(o.output)),
    o.metadata && Object.keys(o.metadata).length ? h('section', { id: 'obs-metadata' }, h('h3', null, 'Metadata'), jsonView(o.metadata)) : null,
  );
}

function scores(list, obs) {
  const names = new Map(obs.map((o) => [o.id, o.name || o.id]));
  return h('section', { id: 'trace-scores' }, h('h2', null, `Scores · ${list.length}`),
    list.length ? h('div.table-wrap', null, h('table.data', null,
      h('thead', null, h('tr', null, ['Name', 'Value', 'Type', 'Observation', 'Comment', 'Time'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, list.map((sc) => h('tr', null,
        h('td', null, sc.name),
        h('td.num', null, sc.stringValue ?? fmtNumber(sc.value)),
        h('td', null, sc.dataType || '—'),
        h('td', null, sc.observationId ? names.get(sc.observationId) || sc.observationId : '—'),
        h('td', null, sc.comment || '—'),
        h('td', null, timeCell(sc.timestamp))))))) : emptyBox('No scores.'));
}
