// Shared by the OpenTelemetry scripts: the Basic credentials of the server
// under test, and an exporter wrapper that records every export's result, so
// a failed export cannot hide behind a resolved forceFlush.
export const basic = "Basic " + Buffer.from(`${process.env.XTRACE_PUBLIC_KEY}:${process.env.XTRACE_SECRET_KEY}`).toString("base64");

export class RecordingExporter {
  constructor(inner) {
    this.inner = inner;
    this.results = [];
  }
  export(items, done) {
    this.inner.export(items, (result) => {
      this.results.push(result);
      done(result);
    });
  }
  // Metric exporters only: the reader asks the exporter for these.
  selectAggregationTemporality(kind) {
    return this.inner.selectAggregationTemporality(kind);
  }
  selectAggregation(kind) {
    return this.inner.selectAggregation(kind);
  }
  forceFlush() {
    return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
  }
  shutdown() {
    return this.inner.shutdown();
  }
}
