// Drives the xtrace server with the real OpenTelemetry JS SDK and its
// OTLP/HTTP exporters (JSON and protobuf, with and without gzip), then reads
// the traces back through xtrace's public API. Run by compat_test.go.
import assert from "node:assert/strict";
import { context, trace, SpanStatusCode } from "@opentelemetry/api";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { OTLPTraceExporter as JSONExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { basic, RecordingExporter } from "./recording-exporter.mjs";

const baseUrl = process.env.XTRACE_URL;

async function runVariant(name, Exporter, compression) {
  const exporter = new RecordingExporter(
    new Exporter({ url: `${baseUrl}/api/public/otel/v1/traces`, headers: { Authorization: basic }, compression }),
  );
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "nebula-gateway", "deployment.environment.name": `compat-${name}` }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer("compat-suite", "1.0.0");
  const root = tracer.startSpan("POST /v1/chat/completions", {
    attributes: {
      "langfuse.trace.name": `chat-${name}`,
      "user.id": `user-${name}`,
      "session.id": `session-${name}`,
      "langfuse.trace.tags": ["gateway", name],
    },
  });
  const child = tracer.startSpan(
    "chat qwen-72b",
    {
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "qwen-72b",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 30,
      },
    },
    trace.setSpan(context.active(), root),
  );
  child.setStatus({ code: SpanStatusCode.ERROR, message: "upstream timeout" });
  child.end();
  root.end();

  await provider.forceFlush(); // must resolve
  await provider.shutdown();
  assert.ok(exporter.results.length > 0, `${name}: nothing exported`);
  for (const r of exporter.results) {
    assert.equal(r.code, 0, `${name}: export failed: ${r.error}`);
  }

  const traceId = root.spanContext().traceId;
  const res = await fetch(`${baseUrl}/api/public/traces/${traceId}`, { headers: { Authorization: basic } });
  assert.equal(res.status, 200, `${name}: GET trace ${traceId} answered ${res.status}`);
  const t = await res.json();
  assert.equal(t.id, traceId);
  assert.equal(t.name, `chat-${name}`);
  assert.equal(t.userId, `user-${name}`);
  assert.equal(t.sessionId, `session-${name}`);
  assert.deepEqual(t.tags, [name, "gateway"].sort());
  assert.equal(t.environment, `compat-${name}`);
  assert.equal(t.observations.length, 2);
  const gen = t.observations.find((o) => o.id === child.spanContext().spanId);
  assert.ok(gen, `${name}: generation ${child.spanContext().spanId} missing`);
  assert.equal(gen.type, "GENERATION");
  assert.equal(gen.parentObservationId, root.spanContext().spanId);
  assert.equal(gen.model, "qwen-72b");
  assert.deepEqual(gen.modelParameters, { temperature: 0.2 });
  assert.deepEqual(gen.usageDetails, { input: 12, output: 30, total: 42 });
  assert.equal(gen.level, "ERROR");
  assert.equal(gen.statusMessage, "upstream timeout");
  assert.equal(gen.environment, `compat-${name}`);
  const span = t.observations.find((o) => o.id === root.spanContext().spanId);
  assert.equal(span.type, "SPAN");
  assert.equal(span.level, "DEFAULT");
  console.log(`otel ${name}: ok (${exporter.results.length} exports)`);
}

await runVariant("json", JSONExporter, "none");
await runVariant("json-gzip", JSONExporter, "gzip");
await runVariant("proto", ProtoExporter, "none");
await runVariant("proto-gzip", ProtoExporter, "gzip");
console.log("opentelemetry exporter compatibility: ok");
