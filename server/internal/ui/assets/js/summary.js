// Token totals and the worst level of a trace, from its observations. A trace
// in a list carries only observation ids, so the list asks for each visible
// trace once (a few at a time) and remembers the answer until the trace changes.

import { get } from './api.js';

export const LEVELS = ['DEBUG', 'DEFAULT', 'WARNING', 'ERROR'];

export function observationTokens(o) {
  const u = o.usageDetails || {};
  if (Number.isFinite(u.total)) return u.total;
  const sum = (Number(u.input) || 0) + (Number(u.output) || 0);
  return sum || Number(o.totalTokens) || 0;
}

export function summarize(observations) {
  let tokens = 0;
  let level = 'DEFAULT';
  let statusMessage = '';
  for (const o of observations || []) {
    tokens += observationTokens(o);
    if (LEVELS.indexOf(o.level) > LEVELS.indexOf(level)) {
      level = o.level;
      statusMessage = o.statusMessage || '';
    }
  }
  return { tokens, level, statusMessage };
}

const cache = new Map(); // trace id → {updatedAt, summary}

export async function traceSummary(trace, signal) {
  const hit = cache.get(trace.id);
  if (hit && hit.updatedAt === trace.updatedAt) return hit.summary;
  const full = await get(`/api/public/traces/${encodeURIComponent(trace.id)}`, {}, { signal });
  const summary = summarize(full.observations);
  if (cache.size > 2000) cache.clear();
  cache.set(trace.id, { updatedAt: trace.updatedAt, summary });
  return summary;
}

export function levelBadge(level) {
  const el = document.createElement('span');
  el.className = `level level-${level || 'DEFAULT'}`;
  el.textContent = level || 'DEFAULT';
  return el;
}
