// Drives the xtrace server with the real OpenTelemetry JS metrics SDK and its
// OTLP/HTTP metrics exporters (JSON and protobuf, with and without gzip): a
// counter, a gauge and a histogram per variant, then reads them back with
// PromQL through xtrace's Prometheus API. Run by compat_test.go.
import assert from "node:assert/strict";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { OTLPMetricExporter as JSONExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPMetricExporter as ProtoExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { basic, RecordingExporter } from "./recording-exporter.mjs";

const baseUrl = process.env.XTRACE_URL;

async function promql(query) {
  const url = `${baseUrl}/api/v1/query?${new URLSearchParams({ query })}`;
  const res = await fetch(url, { headers: { Authorization: basic } });
  const body = await res.json();
  assert.equal(res.status, 200, `${query}: ${JSON.stringify(body)}`);
  assert.equal(body.status, "success");
  return body.data.result;
}

async function runVariant(name, Exporter, compression) {
  const service = `compat-metrics-${name}`;
  const exporter = new RecordingExporter(
    new Exporter({ url: `${baseUrl}/v1/metrics`, headers: { Authorization: basic }, compression }),
  );
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ "service.name": service, "service.instance.id": `${service}-1` }),
    readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60000 })],
  });
  const meter = provider.getMeter("compat-suite", "1.0.0");
  const requests = meter.createCounter("compat.requests", { unit: "{request}", description: "Requests served." });
  requests.add(3, { route: "/v1/chat" });
  requests.add(4, { route: "/v1/chat" });
  const depth = meter.createGauge("compat.queue.depth", { unit: "{request}" });
  depth.record(12, { replica: "0" });
  const latency = meter.createHistogram("compat.latency", { unit: "s", advice: { explicitBucketBoundaries: [0.1, 0.5, 1] } });
  for (const v of [0.05, 0.2, 0.3, 0.7, 2]) latency.record(v, { model: "qwen" });

  await provider.forceFlush(); // must resolve
  await provider.shutdown();
  assert.ok(exporter.results.length > 0, `${name}: nothing exported`);
  for (const r of exporter.results) {
    assert.equal(r.code, 0, `${name}: export failed: ${r.error}`);
  }

  const job = `job="${service}"`;
  const counter = await promql(`compat_requests_total{${job}, route="/v1/chat"}`);
  assert.equal(counter.length, 1, `${name}: counter ${JSON.stringify(counter)}`);
  assert.equal(counter[0].value[1], "7");
  assert.equal(counter[0].metric.instance, `${service}-1`);
  const gauge = await promql(`compat_queue_depth{${job}, replica="0"}`);
  assert.equal(gauge.length, 1, `${name}: gauge ${JSON.stringify(gauge)}`);
  assert.equal(gauge[0].value[1], "12");
  const buckets = await promql(`compat_latency_seconds_bucket{${job}, model="qwen"}`);
  assert.deepEqual(
    buckets.map((b) => [b.metric.le, b.value[1]]).sort(),
    [["+Inf", "5"], ["0.1", "1"], ["0.5", "3"], ["1", "4"]].sort(),
    `${name}: buckets ${JSON.stringify(buckets)}`,
  );
  const count = await promql(`compat_latency_seconds_count{${job}}`);
  assert.equal(count[0].value[1], "5");
  const sum = await promql(`compat_latency_seconds_sum{${job}}`);
  assert.ok(Math.abs(Number(sum[0].value[1]) - 3.25) < 1e-9, `${name}: sum ${sum[0].value[1]}`);
  const median = await promql(`histogram_quantile(0.5, compat_latency_seconds_bucket{${job}})`);
  assert.equal(median.length, 1);
  assert.ok(Number(median[0].value[1]) > 0.1 && Number(median[0].value[1]) <= 0.5, `${name}: median ${median[0].value[1]}`);
  console.log(`otel metrics ${name}: ok (${exporter.results.length} exports)`);
}

await runVariant("json", JSONExporter, "none");
await runVariant("json-gzip", JSONExporter, "gzip");
await runVariant("proto", ProtoExporter, "none");
await runVariant("proto-gzip", ProtoExporter, "gzip");
console.log("opentelemetry metrics exporter compatibility: ok");
