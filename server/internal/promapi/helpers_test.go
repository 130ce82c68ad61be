package promapi_test

import (
	"encoding/json"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// promResponse is the Prometheus API's envelope.
type promResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`

	httpStatus int
	header     map[string][]string
}

// prom calls a Prometheus API endpoint with GET (or form POST when post) and decodes the envelope.
func prom(t *testing.T, s *servertest.Server, post bool, path string, params url.Values, headers ...string) promResponse {
	t.Helper()
	var resp *servertest.Response
	if post {
		resp = s.Do(t, "POST", path, params.Encode(), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
	} else {
		resp = s.Do(t, "GET", path+"?"+params.Encode(), nil, headers...)
	}
	var r promResponse
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		t.Fatalf("%s %v: %d, not JSON: %s", path, params, resp.Status, resp.Body)
	}
	r.httpStatus, r.header = resp.Status, resp.Header
	return r
}

// ok asserts success and decodes data into v.
func (r promResponse) ok(t *testing.T, v any) {
	t.Helper()
	if r.httpStatus != 200 || r.Status != "success" {
		t.Fatalf("answered %d %s %s: %s", r.httpStatus, r.Status, r.ErrorType, r.Error)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("data %s: %v", r.Data, err)
	}
}

// failed asserts an error answer with the status and errorType.
func (r promResponse) failed(t *testing.T, status int, errorType, contains string) {
	t.Helper()
	if r.httpStatus != status || r.Status != "error" || r.ErrorType != errorType || !strings.Contains(r.Error, contains) {
		t.Fatalf("got %d %q errorType=%q error=%q, want %d error %q containing %q", r.httpStatus, r.Status, r.ErrorType, r.Error, status, errorType, contains)
	}
}

// sample is one [t, "v"] pair of the API.
type sample struct {
	T float64
	V string
}

func (s *sample) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &s.T); err != nil {
		return err
	}
	return json.Unmarshal(raw[1], &s.V)
}

func (s sample) float(t *testing.T) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s.V, 64)
	if err != nil {
		t.Fatalf("value %q: %v", s.V, err)
	}
	return f
}

type matrixSeries struct {
	Metric map[string]string `json:"metric"`
	Values []sample          `json:"values"`
}

type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  sample            `json:"value"`
}

type queryData[T any] struct {
	ResultType string `json:"resultType"`
	Result     T      `json:"result"`
}

func rangeQuery(t *testing.T, s *servertest.Server, q string, start, end time.Time, step time.Duration) []matrixSeries {
	t.Helper()
	var d queryData[[]matrixSeries]
	prom(t, s, false, "/api/v1/query_range", url.Values{"query": {q}, "start": {unix(start)}, "end": {unix(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}).ok(t, &d)
	if d.ResultType != "matrix" {
		t.Fatalf("%s: resultType %q", q, d.ResultType)
	}
	return d.Result
}

func instantQuery(t *testing.T, s *servertest.Server, q string, at time.Time) []vectorSample {
	t.Helper()
	var d queryData[[]vectorSample]
	prom(t, s, false, "/api/v1/query", url.Values{"query": {q}, "time": {unix(at)}}).ok(t, &d)
	if d.ResultType != "vector" {
		t.Fatalf("%s: resultType %q", q, d.ResultType)
	}
	return d.Result
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64) }

// series is a remote-write series of name with alternating label names and values.
func series(name string, lbls ...string) []string { return append([]string{"__name__", name}, lbls...) }

func at(t time.Time, v float64) prompb.Sample {
	return prompb.Sample{Timestamp: t.UnixMilli(), Value: v}
}

func mustWrite(t *testing.T, s *servertest.Server, ts ...prompb.TimeSeries) {
	t.Helper()
	if resp := s.RemoteWrite(t, ts...); resp.Status != 204 {
		t.Fatalf("remote write: %d %s", resp.Status, resp.Body)
	}
}

// encodeV2 builds a snappy-compressed remote-write 2.0 request of one series.
func encodeV2(t *testing.T, symbols []string, refs []uint32, samples ...prompb.Sample) []byte {
	t.Helper()
	ts := writev2.TimeSeries{LabelsRefs: refs}
	for _, s := range samples {
		ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: s.Timestamp, Value: s.Value})
	}
	raw, err := (&writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{ts}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// labelsKey renders a label set for comparisons.
func labelsKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + m[k] + ",")
	}
	return b.String()
}

// base is a whole second a little in the past, so every test point is accepted and queryable.
func base() time.Time { return time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute) }
