// Freshness as Nebula reads it: the Router treats a series whose newest point
// is older than 15 s as stale, the Scheduler older than 30 s.

import { h, fmtAge } from './dom.js';

export const ROUTER_STALE_MS = 15000;
export const SCHEDULER_STALE_MS = 30000;

export const LEVEL_TEXT = {
  fresh: 'fresh',
  'stale-router': 'stale for the Router (> 15 s)',
  'stale-scheduler': 'stale for the Router and the Scheduler (> 30 s)',
};

export function freshnessLevel(ageMs) {
  if (ageMs > SCHEDULER_STALE_MS) return 'stale-scheduler';
  if (ageMs > ROUTER_STALE_MS) return 'stale-router';
  return 'fresh';
}

// The newest raw point of one element of a query's data (SPEC §3.5): its own
// latest_ts. A server without it gives meta.latest_ts, exact only when there
// is one series; otherwise the start of the series' last bucket stands in
// (older than the truth by less than a step, so it errs towards stale).
export function newestPoint(series, meta, seriesCount) {
  if (series.latest_ts) return { ms: Date.parse(series.latest_ts), approx: false };
  if (seriesCount === 1 && meta && meta.latest_ts) return { ms: Date.parse(meta.latest_ts), approx: false };
  const last = series.values && series.values[series.values.length - 1];
  return last ? { ms: Date.parse(last.timestamp), approx: true } : null;
}

export function freshnessBadge(ageMs, approx) {
  const level = freshnessLevel(ageMs);
  return h('span.fresh-badge', { class: level, title: approx ? 'Approximate: the server did not report this series\' newest point, so this is the start of its last bucket' : null },
    level === 'fresh' ? '● ' : '▲ ', LEVEL_TEXT[level], approx ? ' (approx.)' : '');
}

export function ageText(ageMs) {
  return `${fmtAge(ageMs)} ago`;
}

export function legend() {
  return h('p.fresh-legend', null, 'Freshness: ',
    h('span.fresh-badge.fresh', null, '● fresh (≤ 15 s)'), ' ',
    h('span.fresh-badge.stale-router', null, '▲ stale for the Router (> 15 s)'), ' ',
    h('span.fresh-badge.stale-scheduler', null, '▲ stale for the Scheduler too (> 30 s)'));
}
