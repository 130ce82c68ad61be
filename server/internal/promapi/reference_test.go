package promapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/promtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// referenceExpressions are evaluated by Prometheus and by xtrace over the
// same data; wantEmpty marks those whose right answer is no series.
var referenceExpressions = []struct {
	expr      string
	wantEmpty bool
}{
	// The expressions of the Dynamo metrics document and the monitoring strategy.
	{expr: `rate(dynamo_frontend_requests_total[30s])`},
	{expr: `histogram_quantile(0.99, sum(rate(nginx_http_request_duration_seconds_bucket[5m])) by (le))`},
	{expr: `sum(rate(model_output_tokens_total[1m])) by (model_name)`},
	{expr: `sum(rate(nginx_http_requests_total{status=~"5.."}[1m])) / sum(rate(nginx_http_requests_total[1m]))`},
	{expr: `DCGM_FI_DEV_GPU_UTIL`},
	{expr: `up{job="my-service"} == 0`},
	// Counters, across the reset of demo_restarts_total.
	{expr: `rate(demo_restarts_total[6s])`},
	{expr: `irate(demo_restarts_total[6s])`},
	{expr: `increase(demo_restarts_total[10s])`},
	{expr: `resets(demo_restarts_total[20s])`},
	{expr: `rate(demo_requests_total[5s])`},
	{expr: `increase(demo_requests_total[7s])`},
	{expr: `irate(nginx_http_requests_total[4s])`},
	// Aggregations.
	{expr: `sum by (code) (rate(demo_requests_total[5s]))`},
	{expr: `avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)`},
	{expr: `max by (gpu) (DCGM_FI_DEV_GPU_UTIL)`},
	{expr: `min without (gpu) (DCGM_FI_DEV_GPU_UTIL)`},
	{expr: `count by (job) (up)`},
	{expr: `stddev by (Hostname) (DCGM_FI_DEV_GPU_UTIL)`},
	{expr: `quantile by (Hostname) (0.9, DCGM_FI_DEV_GPU_UTIL)`},
	{expr: `count_values("utilisation", DCGM_FI_DEV_GPU_UTIL{gpu="0"})`},
	{expr: `topk(3, DCGM_FI_DEV_GPU_UTIL)`},
	{expr: `bottomk(2, sum by (route) (demo_requests_total))`},
	// Histograms.
	{expr: `histogram_quantile(0.5, rate(nginx_http_request_duration_seconds_bucket[10s]))`},
	{expr: `histogram_quantile(0.9, sum by (le) (increase(nginx_http_request_duration_seconds_bucket[15s])))`},
	{expr: `rate(nginx_http_request_duration_seconds_sum[10s]) / rate(nginx_http_request_duration_seconds_count[10s])`},
	// The _over_time family.
	{expr: `avg_over_time(DCGM_FI_DEV_GPU_UTIL[10s])`},
	{expr: `min_over_time(demo_temperature_celsius[10s])`},
	{expr: `max_over_time(demo_temperature_celsius[10s])`},
	{expr: `sum_over_time(DCGM_FI_DEV_GPU_UTIL{gpu="1"}[5s])`},
	{expr: `count_over_time(up[10s])`},
	{expr: `last_over_time(demo_ephemeral[1m])`},
	{expr: `quantile_over_time(0.75, DCGM_FI_DEV_GPU_UTIL[8s])`},
	{expr: `stddev_over_time(demo_temperature_celsius[10s])`},
	{expr: `present_over_time(demo_ephemeral[3s])`},
	{expr: `changes(DCGM_FI_DEV_GPU_UTIL[10s])`},
	{expr: `deriv(demo_temperature_celsius[10s])`},
	{expr: `delta(demo_temperature_celsius[6s])`},
	{expr: `predict_linear(demo_temperature_celsius[10s], 60)`},
	// Offset, @, subqueries.
	{expr: `DCGM_FI_DEV_GPU_UTIL offset 5s`},
	{expr: `rate(demo_requests_total[5s] offset 3s)`},
	{expr: `DCGM_FI_DEV_GPU_UTIL @ end()`},
	{expr: `max_over_time(rate(demo_requests_total[4s])[12s:2s])`},
	{expr: `avg_over_time(sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)[10s:1s])`},
	// Labels and matchers.
	{expr: `label_replace(DCGM_FI_DEV_GPU_UTIL, "gpu_id", "gpu-$1", "gpu", "(.*)")`},
	{expr: `label_join(demo_requests_total, "key", ":", "code", "route")`},
	{expr: `demo_requests_total{code=~"5.."}`},
	{expr: `demo_requests_total{code!~"2..", route!="/a"}`},
	{expr: `{__name__=~"demo_.*_total", route=~"/a|/b"}`},
	{expr: `{__name__=~"nginx_http_requests_total|dynamo_frontend_requests_total"}`},
	{expr: `DCGM_FI_DEV_GPU_UTIL{Hostname=~"node-[12]", gpu!="3"}`},
	{expr: `absent(nonexistent_metric)`},
	{expr: `absent(DCGM_FI_DEV_GPU_UTIL)`, wantEmpty: true},
	{expr: `absent_over_time(demo_ephemeral{id="y"}[5s])`},
	// Staleness: demo_ephemeral disappears after scrape vanishAfter.
	{expr: `demo_ephemeral`},
	{expr: `timestamp(demo_ephemeral)`},
	// Arithmetic, vector matching, functions.
	{expr: `demo_requests_total / on (route) group_left sum by (route) (demo_requests_total)`},
	{expr: `sum(rate(demo_requests_total{code=~"5.."}[5s])) / ignoring (code) sum(rate(demo_requests_total[5s]))`},
	{expr: `clamp_max(DCGM_FI_DEV_GPU_UTIL, 50) * 2 - 1`},
	{expr: `sort_desc(sum by (model_name) (model_output_tokens_total))`},
	{expr: `time() - timestamp(up)`},
	{expr: `DCGM_FI_DEV_GPU_UTIL > bool 50`},
	{expr: `vector(1) and on () DCGM_FI_DEV_GPU_UTIL{gpu="0", Hostname="node-1"} > 10`},
	// xtrace's own /metrics, scraped by Prometheus and remote-written back.
	{expr: `sum by (job) (rate(xtrace_http_requests_total[5s]))`},
	{expr: `scrape_samples_scraped`},
}

const (
	referenceScrapes = 24
	referenceKey     = "pk-reference"
	referenceSecret  = "sk-reference"
)

// Prometheus scrapes a known exporter and xtrace's own /metrics, and
// remote-writes everything to xtrace. Over the same range and step, every
// expression gives the same label sets and values (relative difference
// ≤ 1e-9) from Prometheus' API and from xtrace's; promtool can query xtrace.
func TestSameAnswersAsPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the reference Prometheus binary (make prometheus)")
	}
	if _, err := promtest.Binary(); err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	xt := servertest.StartProcess(t, servertest.Options{Env: map[string]string{
		"XTRACE_PUBLIC_KEY": referenceKey, "XTRACE_SECRET_KEY": referenceSecret}})
	xtHost := strings.TrimPrefix(xt.URL, "http://")
	exp := startExporter(t)
	downPort, err := devproc.FreePort() // nothing listens: up{job="my-service"} is 0
	if err != nil {
		t.Fatal(err)
	}
	p := promtest.Start(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_timeout: 800ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: exporter
    static_configs: [{targets: [%q]}]
  - job_name: xtrace
    static_configs: [{targets: [%q]}]
  - job_name: my-service
    static_configs: [{targets: ["127.0.0.1:%d"]}]
remote_write:
  - url: %s/api/v1/write
    authorization: {type: Bearer, credentials: %q}
    queue_config: {batch_send_deadline: 500ms, max_samples_per_send: 500, min_backoff: 50ms, max_backoff: 1s}
`, exp.host, xtHost, downPort, xt.URL, servertest.Token))

	var first, last time.Time
	timeout := time.After(2 * time.Minute)
	for n := 0; n < referenceScrapes; {
		select {
		case n = <-exp.scraped:
			if n == 1 {
				first = time.Now()
			}
			last = time.Now()
		case <-timeout:
			t.Fatalf("the exporter was scraped %d times in 2 minutes\n%s", n, p.Log())
		}
	}
	// Samples up to end are in Prometheus' TSDB (scrapes after it have started since).
	start := first.Add(2 * time.Second).Truncate(time.Second)
	end := last.Add(-3 * time.Second).Truncate(time.Second)
	xtAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(referenceKey+":"+referenceSecret))
	ctx := context.Background()

	// Wait until xtrace holds every sample up to end (remote-write is
	// asynchronous): the raw samples of every series must be the same.
	sentinel := url.Values{"query": {`{__name__=~".+"}[1h]`}, "time": {unix(end)}}
	want, err := p.API(ctx, "/api/v1/query", sentinel)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := promtest.Get(ctx, xt.URL, xtAuth, "/api/v1/query", sentinel)
		diff := fmt.Sprint(err)
		if err == nil {
			if diff = compareResults(want, got); diff == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("xtrace did not hold Prometheus' samples within a minute: %s\n%s", diff, p.Log())
		}
		time.Sleep(200 * time.Millisecond) // remote-write delivers in batches; poll again
	}

	// Compare; staleness markers may trail the samples, so a difference is retried until the deadline.
	compareAll := func(phase string, deadline time.Time) {
		var diffs []string
		for attempt := 0; ; attempt++ {
			diffs = diffs[:0]
			for _, e := range referenceExpressions {
				rangeParams := url.Values{"query": {e.expr}, "start": {unix(start)}, "end": {unix(end)}, "step": {"1"}}
				instantParams := url.Values{"query": {e.expr}, "time": {unix(end)}}
				for _, call := range []struct {
					path   string
					params url.Values
				}{{"/api/v1/query_range", rangeParams}, {"/api/v1/query", instantParams}} {
					ref, err := p.API(ctx, call.path, call.params)
					if err != nil {
						t.Fatalf("Prometheus: %v", err)
					}
					got, err := promtest.Get(ctx, xt.URL, xtAuth, call.path, call.params)
					if err != nil {
						diffs = append(diffs, fmt.Sprintf("%s %s: xtrace: %v", call.path, e.expr, err))
						continue
					}
					if d := compareResults(ref, got); d != "" && !(call.path == "/api/v1/query" && !strings.Contains(e.expr, "sort") && compareResults(sortVector(ref), sortVector(got)) == "") {
						diffs = append(diffs, fmt.Sprintf("%s %s: %s", call.path, e.expr, d))
					}
					if call.path == "/api/v1/query_range" && isEmpty(ref) != e.wantEmpty {
						t.Errorf("%s: Prometheus answered %s; the expression does not test what it should", e.expr, ref)
					}
				}
			}
			if len(diffs) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond) // wait for the next remote-write batch
		}
		for _, d := range diffs {
			t.Errorf("%s: %s", phase, d)
		}
	}
	compareAll("raw points", deadline)
	t.Logf("%d expressions compared (range %s … %s at 1s, and instant at the end)", len(referenceExpressions), start.Format(time.TimeOnly), end.Format(time.TimeOnly))

	// The same answers once the samples are compacted into chunks (every
	// window closed, the current one too: later samples are late points).
	st, err := store.Open(ctx, store.Options{URL: xt.DatabaseURL, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.Compact(ctx, time.Now().Add(store.ChunkWindow+store.CompactionGrace), time.Minute)
	if err != nil || res.Points == 0 {
		t.Fatalf("compaction: %+v %v", res, err)
	}
	compareAll("compacted", time.Now().Add(30*time.Second))

	// promtool, Prometheus' own CLI, is a client of xtrace's API.
	promtool(t, xt.URL, "instant", "--time="+unix(end), `sum by (job) (up)`)
	promtool(t, xt.URL, "range", "--start="+unix(start), "--end="+unix(end), "--step=5s", `rate(demo_requests_total[5s])`)
	promtool(t, xt.URL, "series", "--match=demo_restarts_total")
	promtool(t, xt.URL, "labels", "job")
}

// promtool runs `promtool query <args>` against xtrace with Basic credentials in the URL.
func promtool(t *testing.T, base string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (apt-get install prometheus)")
	}
	server := strings.Replace(base, "http://", "http://"+referenceKey+":"+referenceSecret+"@", 1)
	full := append([]string{"query", args[0]}, args[1:len(args)-1]...)
	if args[0] == "series" {
		full = append(full, args[len(args)-1], server)
	} else {
		full = append(full, server, args[len(args)-1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Errorf("promtool %s: %v\n%s", strings.Join(full, " "), err, out)
	}
}

// sortVector orders an instant vector by labels: the API does not define the
// order of a vector's samples (the engine does for matrices), except after sort().
func sortVector(data json.RawMessage) json.RawMessage {
	var r struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  json.RawMessage   `json:"value"`
		} `json:"result"`
	}
	if json.Unmarshal(data, &r) != nil || r.ResultType != "vector" {
		return data
	}
	sort.Slice(r.Result, func(i, j int) bool { return labelsKey(r.Result[i].Metric) < labelsKey(r.Result[j].Metric) })
	out, _ := json.Marshal(r)
	return out
}

// promResult is the data of a query answer.
type promResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

func isEmpty(data json.RawMessage) bool {
	var r promResult
	_ = json.Unmarshal(data, &r)
	return string(r.Result) == "[]"
}

// compareResults describes the first difference between two answers, or "".
func compareResults(want, got json.RawMessage) string {
	var w, g promResult
	if err := json.Unmarshal(want, &w); err != nil {
		return err.Error()
	}
	if err := json.Unmarshal(got, &g); err != nil {
		return err.Error()
	}
	if w.ResultType != g.ResultType {
		return fmt.Sprintf("resultType %s, want %s", g.ResultType, w.ResultType)
	}
	type entry struct {
		Metric map[string]string `json:"metric"`
		Values []sample          `json:"values"`
		Value  *sample           `json:"value"`
	}
	var we, ge []entry
	switch w.ResultType {
	case "matrix", "vector":
		if err := json.Unmarshal(w.Result, &we); err != nil {
			return err.Error()
		}
		if err := json.Unmarshal(g.Result, &ge); err != nil {
			return err.Error()
		}
	default:
		var ws, gs sample
		_ = json.Unmarshal(w.Result, &ws)
		_ = json.Unmarshal(g.Result, &gs)
		we, ge = []entry{{Value: &ws}}, []entry{{Value: &gs}}
	}
	if len(we) != len(ge) {
		return fmt.Sprintf("%d series, want %d: %.300s vs %.300s", len(ge), len(we), g.Result, w.Result)
	}
	for i := range we {
		if labelsKey(we[i].Metric) != labelsKey(ge[i].Metric) {
			return fmt.Sprintf("series %d is %v, want %v", i, ge[i].Metric, we[i].Metric)
		}
		wv, gv := we[i].Values, ge[i].Values
		if we[i].Value != nil {
			wv, gv = []sample{*we[i].Value}, nil
			if ge[i].Value != nil {
				gv = []sample{*ge[i].Value}
			}
		}
		if len(wv) != len(gv) {
			return fmt.Sprintf("%v: %d samples, want %d", we[i].Metric, len(gv), len(wv))
		}
		for j := range wv {
			if wv[j].T != gv[j].T || !sameValue(wv[j].V, gv[j].V) {
				return fmt.Sprintf("%v: sample %d is %v, want %v", we[i].Metric, j, gv[j], wv[j])
			}
		}
	}
	return ""
}

// sameValue: equal within a relative 1e-9 (NaN equals NaN, infinities equal themselves).
func sameValue(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return math.IsNaN(x) && math.IsNaN(y) || x == y
	}
	return math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
}
