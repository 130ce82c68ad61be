// Drives the xtrace server with the real Langfuse JS SDK (v3) and reads the
// data back through the SDK's own fetch methods. Run by compat_test.go with
// XTRACE_URL, XTRACE_PUBLIC_KEY and XTRACE_SECRET_KEY set; exits non-zero on
// the first failed assertion.
import assert from "node:assert/strict";
import { Langfuse } from "langfuse";

const baseUrl = process.env.XTRACE_URL;
const publicKey = process.env.XTRACE_PUBLIC_KEY;
const secretKey = process.env.XTRACE_SECRET_KEY;
const run = process.env.RUN_ID ?? String(Date.now());

// Every ingestion response must be a 207 with an empty errors list.
const ingestion = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, options) => {
  const res = await realFetch(url, options);
  if (String(url).includes("/api/public/ingestion")) {
    const body = await res.clone().json();
    ingestion.push({ status: res.status, errors: body.errors });
  }
  return res;
};

const langfuse = new Langfuse({ publicKey, secretKey, baseUrl, flushAt: 3, flushInterval: 100, release: "rel-1" });
langfuse.on("error", (err) => {
  console.error("langfuse error:", err);
  process.exitCode = 1;
});

const traceId = `trace-${run}`;
const sessionId = `session-${run}`;
const started = new Date("2026-02-14T10:00:00.000Z");
const trace = langfuse.trace({
  id: traceId,
  timestamp: started,
  name: "/v1/chat/completions",
  userId: "team-a",
  sessionId,
  input: { messages: [{ role: "user", content: "hello" }] },
  output: null,
  metadata: { region: "eu", nested: { a: 1 } },
  tags: ["gateway", "compat"],
  version: "v1",
  public: true,
});

const span = trace.span({ id: `span-${run}`, name: "routing", startTime: new Date(started.getTime() + 10), input: { candidates: 3 } });
span.event({ id: `event-${run}`, name: "endpoint-chosen", startTime: new Date(started.getTime() + 20), metadata: { endpoint: "node-7" } });
span.update({ output: { endpoint: "node-7" }, endTime: new Date(started.getTime() + 50) });

const generation = trace.generation({
  id: `gen-${run}`,
  name: "chat",
  startTime: new Date(started.getTime() + 100),
  completionStartTime: new Date(started.getTime() + 400),
  model: "qwen-72b",
  modelParameters: { temperature: 0.2, max_tokens: 256 },
  input: [{ role: "user", content: "hello" }],
  usageDetails: { input: 12, output: 30 },
  costDetails: { input: 0.001, output: 0.002 },
});
generation.update({ metadata: { attempt: 1 } });
generation.update({ output: { role: "assistant", content: "hi there" }, endTime: new Date(started.getTime() + 1100) });

trace.update({ output: { content: "hi there" }, metadata: { nested: { b: 2 } }, tags: ["updated"] });
trace.score({ id: `score-${run}`, name: "quality", value: 0.9, comment: "good" });
langfuse.score({ id: `score2-${run}`, traceId, observationId: `gen-${run}`, name: "verdict", value: "pass" });

// A second trace in the same session, for the sessions read.
langfuse.trace({ id: `${traceId}-b`, timestamp: new Date(started.getTime() + 60_000), name: "/v1/embeddings", sessionId, tags: ["gateway"] });

await langfuse.shutdownAsync();

assert.ok(ingestion.length > 0, "the SDK sent nothing");
for (const r of ingestion) {
  assert.equal(r.status, 207, `ingestion answered ${r.status}`);
  assert.deepEqual(r.errors, [], `ingestion reported errors: ${JSON.stringify(r.errors)}`);
}

// fetchTrace: the full trace with observations and scores.
const { data: t } = await langfuse.fetchTrace(traceId);
assert.equal(t.id, traceId);
assert.equal(t.name, "/v1/chat/completions");
assert.equal(t.userId, "team-a");
assert.equal(t.sessionId, sessionId);
assert.equal(t.release, "rel-1");
assert.equal(t.version, "v1");
assert.equal(t.public, true);
assert.equal(t.timestamp, "2026-02-14T10:00:00.000Z", "trace.update() must not move the original timestamp");
assert.deepEqual(t.tags, ["compat", "gateway", "updated"]);
assert.deepEqual(t.metadata, { region: "eu", nested: { a: 1, b: 2 } });
assert.deepEqual(t.input, { messages: [{ role: "user", content: "hello" }] });
assert.deepEqual(t.output, { content: "hi there" });
assert.equal(t.environment, "default");
assert.ok(Math.abs(t.latency - 1.09) < 1e-9, `latency ${t.latency}`); // first start (span, +10 ms) to last end (generation, +1100 ms)
assert.ok(Math.abs(t.totalCost - 0.003) < 1e-12, `totalCost ${t.totalCost}`);
assert.equal(t.observations.length, 3);
const byId = Object.fromEntries(t.observations.map((o) => [o.id, o]));
const gen = byId[`gen-${run}`];
assert.equal(gen.type, "GENERATION");
assert.equal(gen.model, "qwen-72b");
assert.deepEqual(gen.modelParameters, { temperature: 0.2, max_tokens: 256 });
assert.deepEqual(gen.usageDetails, { input: 12, output: 30, total: 42 });
assert.deepEqual(gen.usage, { unit: "TOKENS", input: 12, output: 30, total: 42 });
assert.equal(gen.promptTokens, 12);
assert.equal(gen.completionTokens, 30);
assert.equal(gen.totalTokens, 42);
assert.ok(Math.abs(gen.calculatedTotalCost - 0.003) < 1e-12);
assert.deepEqual(gen.output, { role: "assistant", content: "hi there" });
assert.deepEqual(gen.metadata, { attempt: 1 });
assert.equal(gen.startTime, "2026-02-14T10:00:00.100Z");
assert.equal(gen.endTime, "2026-02-14T10:00:01.100Z");
assert.equal(gen.latency, 1);
assert.ok(Math.abs(gen.timeToFirstToken - 0.3) < 1e-9);
assert.equal(gen.level, "DEFAULT");
const sp = byId[`span-${run}`];
assert.equal(sp.type, "SPAN");
assert.deepEqual(sp.output, { endpoint: "node-7" });
assert.equal(sp.endTime, "2026-02-14T10:00:00.050Z");
const ev = byId[`event-${run}`];
assert.equal(ev.type, "EVENT");
assert.equal(ev.parentObservationId, `span-${run}`);
assert.equal(t.scores.length, 2);
const scores = Object.fromEntries(t.scores.map((s) => [s.name, s]));
assert.equal(scores.quality.value, 0.9);
assert.equal(scores.quality.dataType, "NUMERIC");
assert.equal(scores.quality.comment, "good");
assert.equal(scores.verdict.stringValue, "pass");
assert.equal(scores.verdict.dataType, "CATEGORICAL");
assert.equal(scores.verdict.observationId, `gen-${run}`);

// fetchTraces: filters and both tag encodings (the SDK sends a comma-joined list).
const list = await langfuse.fetchTraces({ userId: "team-a", tags: ["gateway", "compat"], limit: 10 });
assert.equal(list.meta.totalItems, 1);
assert.deepEqual(list.data.map((x) => x.id), [traceId]);
assert.deepEqual([...list.data[0].observations].sort(), [`event-${run}`, `gen-${run}`, `span-${run}`].sort());
const repeated = await realFetch(`${baseUrl}/api/public/traces?tags=gateway&tags=compat`, {
  headers: { Authorization: "Basic " + Buffer.from(`${publicKey}:${secretKey}`).toString("base64") },
});
assert.equal(repeated.status, 200);
assert.deepEqual((await repeated.json()).data.map((x) => x.id), [traceId]);
const session = await langfuse.fetchTraces({ sessionId, orderBy: "timestamp.asc" });
assert.deepEqual(session.data.map((x) => x.id), [traceId, `${traceId}-b`]);
assert.deepEqual(session.meta, { page: 1, limit: 50, totalItems: 2, totalPages: 1 });

// fetchObservations.
const gens = await langfuse.fetchObservations({ traceId, type: "GENERATION" });
assert.equal(gens.data.length, 1);
assert.equal(gens.data[0].id, `gen-${run}`);
assert.equal(gens.data[0].model, "qwen-72b");
const all = await langfuse.fetchObservations({ traceId, limit: 2, page: 2 });
assert.equal(all.meta.totalItems, 3);
assert.equal(all.data.length, 1);
const one = await langfuse.fetchObservation(`span-${run}`);
assert.equal(one.data.name, "routing");

// fetchSessions.
const sessions = await langfuse.fetchSessions({});
assert.ok(sessions.data.some((s) => s.id === sessionId), `session ${sessionId} not listed`);
assert.equal(typeof sessions.meta.totalItems, "number");

console.log(`langfuse SDK compatibility: ok (${ingestion.length} ingestion requests)`);
