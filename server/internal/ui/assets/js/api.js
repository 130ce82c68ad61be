// The client of xtrace's public API. Credentials are what the person typed,
// kept in sessionStorage (gone when the tab closes) and sent exactly as any
// other API client sends them.

const KEY = 'xtrace.credentials';

export function credentials() {
  try {
    const c = JSON.parse(sessionStorage.getItem(KEY));
    return c && (c.token || c.publicKey) ? c : null;
  } catch {
    return null;
  }
}

export function remember(c) {
  sessionStorage.setItem(KEY, JSON.stringify(c));
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

function base64(s) {
  let bin = '';
  for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function authorization(c) {
  return c.kind === 'basic' ? 'Basic ' + base64(`${c.publicKey}:${c.secretKey}`) : 'Bearer ' + c.token;
}

export class ApiError extends Error {
  constructor(status, code, message, requestId, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.body = body;
  }
}

let onUnauthorized = () => {};

// Called when a signed-in request is refused (e.g. the token was rotated away).
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

export function isAbort(err) {
  return err?.name === 'AbortError';
}

// GET path with the query params (empty values left out, arrays repeated).
// 429 answers are retried after Retry-After, as every xtrace client does.
export async function get(path, params = {}, { signal, creds } = {}) {
  const c = creds || credentials();
  if (!c) throw new ApiError(401, 'UNAUTHORIZED', 'Not signed in');
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== undefined && one !== null && one !== '') url.searchParams.append(k, one);
    }
  }
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await fetch(url, { headers: { Authorization: authorization(c), Accept: 'application/json' }, signal, cache: 'no-store' });
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError(0, 'NETWORK', `Cannot reach the xtrace server (${err.message}).`);
    }
    if (resp.status === 429 && attempt < 4) {
      const wait = Math.min(10, Math.max(1, Number(resp.headers.get('Retry-After')) || 1));
      await sleep(wait * 1000 * (1 + Math.random() * 0.2), signal);
      continue;
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (err) {
      if (isAbort(err)) throw err;
    }
    if (resp.ok) return body;
    const message = body?.message || body?.error || `${resp.status} ${resp.statusText}`;
    const err = new ApiError(resp.status, body?.code || body?.errorType || '', message, resp.headers.get('X-Request-Id'), body);
    if (resp.status === 401 && !creds) onUnauthorized(err);
    throw err;
  }
}

// Runs the tasks (functions returning promises) with at most `limit` at once.
export async function pool(tasks, limit = 4) {
  const results = new Array(tasks.length);
  let next = 0;
  async function worker() {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}
