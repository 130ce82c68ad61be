package promapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// otlpExport builds an export of one resource (service.name, service.instance.id
// and one more attribute) with a gauge, a monotonic sum, a histogram and a
// summary, all at ts.
func otlpExport(ts time.Time, service string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", service)
	rm.Resource().Attributes().PutStr("service.instance.id", "pod-1")
	rm.Resource().Attributes().PutStr("k8s.node.name", "node-7")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("compat")
	now := pcommon.NewTimestampFromTime(ts)
	start := pcommon.NewTimestampFromTime(ts.Add(-time.Minute))

	g := sm.Metrics().AppendEmpty()
	g.SetName("kv_cache.usage")
	g.SetUnit("1")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(now)
	dp.SetDoubleValue(0.75)
	dp.Attributes().PutStr("model", "qwen")

	c := sm.Metrics().AppendEmpty()
	c.SetName("http.server.requests")
	c.SetUnit("{request}")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cp := sum.DataPoints().AppendEmpty()
	cp.SetStartTimestamp(start)
	cp.SetTimestamp(now)
	cp.SetIntValue(42)
	cp.Attributes().PutStr("http.response.status_code", "200")

	h := sm.Metrics().AppendEmpty()
	h.SetName("ttft")
	h.SetUnit("s")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hist.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(start)
	hp.SetTimestamp(now)
	hp.ExplicitBounds().FromRaw([]float64{0.1, 0.5})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	hp.SetCount(6)
	hp.SetSum(4.2)

	s := sm.Metrics().AppendEmpty()
	s.SetName("latency_summary")
	sp := s.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetStartTimestamp(start)
	sp.SetTimestamp(now)
	sp.SetCount(10)
	sp.SetSum(5)
	q := sp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(0.4)
	return md
}

// OTLP metrics (protobuf, JSON, gzip) land under the names and labels
// Prometheus' own OTLP receiver gives them.
func TestOTLPMetricsTranslatedAsPrometheusDoes(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	for i, variant := range []struct {
		path, contentType string
		gzip              bool
	}{
		{"/v1/metrics", "application/x-protobuf", false},
		{"/api/public/otel/v1/metrics", "application/json", false},
		{"/v1/metrics", "application/json", true},
	} {
		service := []string{"checkout", "router", "gateway"}[i]
		req := pmetricotlp.NewExportRequestFromMetrics(otlpExport(t0, service))
		var body []byte
		var err error
		if variant.contentType == "application/json" {
			body, err = req.MarshalJSON()
		} else {
			body, err = req.MarshalProto()
		}
		if err != nil {
			t.Fatal(err)
		}
		headers := []string{"Content-Type", variant.contentType}
		if variant.gzip {
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = gz.Bytes()
			headers = append(headers, "Content-Encoding", "gzip")
		}
		resp := s.Do(t, "POST", variant.path, body, headers...)
		if resp.Status != 200 {
			t.Fatalf("%+v: %d %s", variant, resp.Status, resp.Body)
		}
		if variant.contentType == "application/x-protobuf" && (len(resp.Body) != 0 || resp.Header.Get("Content-Type") != "application/x-protobuf") {
			t.Errorf("protobuf answer: %q %v", resp.Body, resp.Header)
		}
	}

	want := map[string]string{
		`kv_cache_usage_ratio{job="checkout",instance="pod-1",model="qwen"}`:       "0.75",
		`http_server_requests_total{job="router",http_response_status_code="200"}`: "42",
		`ttft_seconds_bucket{job="gateway",le="0.1"}`:                              "1",
		`ttft_seconds_bucket{job="gateway",le="0.5"}`:                              "3",
		`ttft_seconds_bucket{job="gateway",le="+Inf"}`:                             "6",
		`ttft_seconds_count{job="gateway"}`:                                        "6",
		`ttft_seconds_sum{job="gateway"}`:                                          "4.2",
		`latency_summary{job="checkout",quantile="0.5"}`:                           "0.4",
		`latency_summary_count{job="checkout"}`:                                    "10",
		`target_info{job="checkout",instance="pod-1",k8s_node_name="node-7"}`:      "1",
	}
	for q, v := range want {
		got := instantQuery(t, s, q, t0.Add(time.Second))
		if len(got) != 1 || got[0].Value.V != v {
			t.Errorf("%s = %+v, want one sample of %s", q, got, v)
		}
	}
}

// A body that is not OTLP, or whose metrics all cannot be stored, is a 400;
// when only some data points cannot be stored, the rest is and
// partialSuccess says what was rejected.
func TestOTLPMetricsBadInput(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	post := func(md pmetric.Metrics) *servertest.Response {
		body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return s.Do(t, "POST", "/v1/metrics", body, "Content-Type", "application/json")
	}
	if resp := s.Do(t, "POST", "/v1/metrics", []byte("\x0a\xff\xff"), "Content-Type", "application/x-protobuf"); resp.Status != 400 {
		t.Errorf("garbage protobuf: %d %s", resp.Status, resp.Body)
	}
	if resp := s.Do(t, "POST", "/v1/metrics", "{}", "Content-Type", "text/plain"); resp.Status != 400 {
		t.Errorf("text/plain: %d %s", resp.Status, resp.Body)
	}

	delta := pmetric.NewMetrics()
	m := delta.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("delta_requests")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.DataPoints().AppendEmpty().SetTimestamp(pcommon.NewTimestampFromTime(t0))
	if resp := post(delta); resp.Status != 400 || !strings.Contains(string(resp.Body), "delta_requests") {
		t.Errorf("delta temporality only: %d %s", resp.Status, resp.Body)
	}

	mixed := otlpExport(t0, "mixed")
	bad := mixed.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	bad.SetName("queue")
	bp := bad.SetEmptyGauge().DataPoints().AppendEmpty()
	bp.SetTimestamp(pcommon.NewTimestampFromTime(time.Unix(1, 0))) // 1970: outside the accepted range
	bp.SetIntValue(1)
	resp := post(mixed)
	var partial struct {
		PartialSuccess struct {
			RejectedDataPoints int
			ErrorMessage       string
		}
	}
	if err := json.Unmarshal(resp.Body, &partial); err != nil || resp.Status != 200 ||
		partial.PartialSuccess.RejectedDataPoints != 1 || !strings.Contains(partial.PartialSuccess.ErrorMessage, "queue") {
		t.Errorf("one bad data point: %d %s", resp.Status, resp.Body)
	}
	if got := instantQuery(t, s, `kv_cache_usage_ratio{job="mixed"}`, t0.Add(time.Second)); len(got) != 1 {
		t.Errorf("the good data points of a partly bad export: %+v", got)
	}
	if n := pgtest.Connect(t, s.DatabaseURL).Int(`SELECT count(*) FROM metric_series WHERE name = 'queue'`); n != 0 {
		t.Errorf("the rejected data point created a series")
	}
}
