package promapi_test

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// Every endpoint answers in the Prometheus API's JSON shape, for GET and for
// the form-encoded POST Grafana sends.
func TestEndpointShapes(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	mustWrite(t, s,
		servertest.Series(series("gpu_utilization", "node_id", "node-1", "gpu_index", "0"), at(t0, 10), at(t0.Add(time.Minute), 20)),
		servertest.Series(series("gpu_utilization", "node_id", "node-2", "gpu_index", "0"), at(t0, 30), at(t0.Add(time.Minute), 40)),
		servertest.Series(series("pending_requests", "model_uid", "m1", "replica_id", "0"), at(t0, 1)),
	)
	window := url.Values{"start": {unix(t0)}, "end": {unix(t0.Add(time.Minute))}}
	for _, post := range []bool{false, true} {
		var vec queryData[[]vectorSample]
		prom(t, s, post, "/api/v1/query", url.Values{"query": {"avg by (node_id) (gpu_utilization)"}, "time": {t0.Add(time.Minute).Format(time.RFC3339)}}).ok(t, &vec)
		if vec.ResultType != "vector" || len(vec.Result) != 2 || vec.Result[0].Metric["node_id"] != "node-1" || vec.Result[0].Value.V != "20" ||
			vec.Result[0].Value.T != float64(t0.Add(time.Minute).Unix()) {
			t.Fatalf("post=%v query: %+v", post, vec)
		}
		var mat queryData[[]matrixSeries]
		prom(t, s, post, "/api/v1/query_range", url.Values{"query": {"gpu_utilization"}, "start": window["start"], "end": window["end"], "step": {"30s"}}).ok(t, &mat)
		if mat.ResultType != "matrix" || len(mat.Result) != 2 || len(mat.Result[1].Values) != 3 || mat.Result[1].Values[2].V != "40" {
			t.Fatalf("post=%v query_range: %+v", post, mat)
		}
		var scalar queryData[sample]
		prom(t, s, post, "/api/v1/query", url.Values{"query": {"1.5 * 2"}, "time": {"1700000000.5"}}).ok(t, &scalar)
		if scalar.ResultType != "scalar" || scalar.Result.V != "3" || scalar.Result.T != 1700000000.5 {
			t.Fatalf("post=%v scalar: %+v", post, scalar)
		}
		var str queryData[sample]
		prom(t, s, post, "/api/v1/query", url.Values{"query": {`"hello"`}, "time": {"1700000000"}}).ok(t, &str)
		if str.ResultType != "string" || str.Result.V != "hello" {
			t.Fatalf("post=%v string: %+v", post, str)
		}

		var seriesList []map[string]string
		prom(t, s, post, "/api/v1/series", url.Values{"match[]": {`{__name__=~"gpu_.*"}`, `pending_requests`}, "start": window["start"], "end": window["end"]}).ok(t, &seriesList)
		if len(seriesList) != 3 || seriesList[0]["__name__"] != "gpu_utilization" || seriesList[2]["model_uid"] != "m1" {
			t.Fatalf("post=%v series: %+v", post, seriesList)
		}
		var names []string
		prom(t, s, post, "/api/v1/labels", window).ok(t, &names)
		if !reflect.DeepEqual(names, []string{"__name__", "gpu_index", "model_uid", "node_id", "replica_id"}) {
			t.Fatalf("post=%v labels: %v", post, names)
		}
		prom(t, s, post, "/api/v1/labels", url.Values{"match[]": {"pending_requests"}}).ok(t, &names)
		if !reflect.DeepEqual(names, []string{"__name__", "model_uid", "replica_id"}) {
			t.Fatalf("post=%v labels of pending_requests: %v", post, names)
		}
	}
	var cut queryData[[]matrixSeries]
	cutAnswer := prom(t, s, false, "/api/v1/query_range", url.Values{"query": {"gpu_utilization"}, "start": window["start"], "end": window["end"], "step": {"30s"}, "limit": {"1"}})
	cutAnswer.ok(t, &cut)
	if len(cut.Result) != 1 || len(cutAnswer.Warnings) != 1 || !strings.Contains(cutAnswer.Warnings[0], "truncated") {
		t.Fatalf("limit=1: %+v, warnings %v", cut.Result, cutAnswer.Warnings)
	}
	var values []string
	prom(t, s, false, "/api/v1/label/node_id/values", window).ok(t, &values)
	if !reflect.DeepEqual(values, []string{"node-1", "node-2"}) {
		t.Fatalf("label values: %v", values)
	}
	prom(t, s, false, "/api/v1/label/__name__/values", url.Values{"match[]": {`{node_id="node-2"}`}}).ok(t, &values)
	if !reflect.DeepEqual(values, []string{"gpu_utilization"}) {
		t.Fatalf("metric names of node-2: %v", values)
	}
	limited := prom(t, s, false, "/api/v1/label/node_id/values", url.Values{"limit": {"1"}})
	limited.ok(t, &values)
	if len(values) != 1 || len(limited.Warnings) != 1 {
		t.Fatalf("limit=1: %v, warnings %v", values, limited.Warnings)
	}

	var meta map[string]any
	prom(t, s, false, "/api/v1/metadata", nil).ok(t, &meta)
	if len(meta) != 0 {
		t.Errorf("metadata: %v", meta)
	}
	var exemplars []any
	prom(t, s, false, "/api/v1/query_exemplars", url.Values{"query": {"gpu_utilization"}}).ok(t, &exemplars)
	if exemplars == nil || len(exemplars) != 0 {
		t.Errorf("exemplars: %v", exemplars)
	}
	var build map[string]string
	prom(t, s, false, "/api/v1/status/buildinfo", nil).ok(t, &build)
	if build["version"] == "" || build["goVersion"] == "" {
		t.Errorf("buildinfo: %v", build)
	}
}

// Errors come in Prometheus' shape with Prometheus' status codes, including
// those the middleware produces (401, 429) and paths xtrace does not serve.
func TestErrorsInPrometheusShape(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Env: map[string]string{"XTRACE_PROMQL_MAX_SAMPLES": "1000"}})
	t0 := base()
	var samples []prompb.Sample
	for i := 0; i < 1200; i++ {
		samples = append(samples, at(t0.Add(time.Duration(i)*100*time.Millisecond), float64(i)))
	}
	mustWrite(t, s, servertest.Series(series("dense", "k", "v"), samples...))
	mustWrite(t, s, servertest.Series(series("dup", "a", "1", "b", "x"), at(t0, 1)), servertest.Series(series("dup", "a", "1", "b", "y"), at(t0, 2)))

	q := func(query string) url.Values {
		return url.Values{"query": {query}, "time": {unix(t0.Add(time.Minute))}}
	}
	prom(t, s, false, "/api/v1/query", q("sum(")).failed(t, 400, "bad_data", `invalid parameter "query"`)
	prom(t, s, false, "/api/v1/query", url.Values{"query": {"1"}, "time": {"yesterday"}}).failed(t, 400, "bad_data", `invalid parameter "time"`)
	prom(t, s, false, "/api/v1/query_range", url.Values{"query": {"1"}, "start": {"10"}, "end": {"5"}, "step": {"1"}}).failed(t, 400, "bad_data", "end timestamp must not be before start time")
	prom(t, s, false, "/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"5"}, "step": {"0"}}).failed(t, 400, "bad_data", "zero or negative")
	prom(t, s, false, "/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"20000"}, "step": {"1"}}).failed(t, 400, "bad_data", "11,000 points")
	prom(t, s, false, "/api/v1/series", nil).failed(t, 400, "bad_data", "no match[] parameter provided")
	prom(t, s, false, "/api/v1/series", url.Values{"match[]": {`{a=~".*"}`}}).failed(t, 400, "bad_data", "at least one non-empty matcher")
	prom(t, s, false, "/api/v1/label/%FF/values", nil).failed(t, 400, "bad_data", "invalid label name")
	prom(t, s, false, "/api/v1/query", url.Values{"query": {"dense[10m]"}, "time": {unix(t0.Add(3 * time.Minute))}}).failed(t, 422, "execution", "more than 1000 samples")
	prom(t, s, false, "/api/v1/query", q(`label_replace(dup, "b", "", "b", ".*")`)).failed(t, 422, "execution", "same labelset")
	prom(t, s, false, "/api/v1/query", q("1"), "Authorization", "Bearer wrong").failed(t, 401, "unauthorized", "credentials")
	prom(t, s, false, "/api/v1/rules", nil).failed(t, 404, "not_found", "/api/v1/rules")
	prom(t, s, true, "/api/v1/status/buildinfo", nil).failed(t, 405, "bad_data", "GET")

	limited := servertest.Start(t, servertest.Options{Env: map[string]string{"RATE_LIMIT_QPS": "0.001", "RATE_LIMIT_BURST": "1"}})
	prom(t, limited, false, "/api/v1/query", q("1")).ok(t, new(json.RawMessage))
	r := prom(t, limited, false, "/api/v1/query", q("1"))
	r.failed(t, 429, "unavailable", "Too Many Requests")
	if r.header["Retry-After"] == nil {
		t.Error("429 without Retry-After")
	}
}
