package promapi_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// grafanaDashboard is the part of a Grafana dashboard model the test reads.
type grafanaDashboard struct {
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The shipped Grafana dashboard works on xtrace: with the fleet's data
// loaded (node metrics pushed natively, as Nebula's agents do, and the
// frontend's counters and histogram remote-written), every variable's label
// query and every panel's query return data.
func TestGrafanaDashboardPanelsReturnData(t *testing.T) {
	t.Parallel()
	root, err := devproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "grafana", "nebula-fleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	for _, want := range []string{"GPU utilisation per node", "GPU memory used per node", "KV-cache usage per replica",
		"Queue depth per replica", "Request rate by model", "TTFT p95 by model", "5xx ratio"} {
		if !strings.Contains(string(raw), `"title": "`+want+`"`) {
			t.Errorf("no panel %q", want)
		}
	}

	s := servertest.Start(t, servertest.Options{})
	end := time.Now().UTC().Truncate(time.Minute)
	loadFleet(t, s, end.Add(-30*time.Minute), end)

	window := url.Values{"start": {unix(end.Add(-30 * time.Minute))}, "end": {unix(end)}}
	vars := map[string]string{"$__rate_interval": "1m"}
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
		}
		params := url.Values{"match[]": {m[1]}, "start": window["start"], "end": window["end"]}
		var values []string
		prom(t, s, false, "/api/v1/label/"+m[2]+"/values", params).ok(t, &values)
		if len(values) == 0 {
			t.Fatalf("variable %s (%s) has no values", v.Name, v.Definition)
		}
		for i := range values {
			values[i] = regexp.QuoteMeta(values[i])
		}
		vars["$"+v.Name] = strings.Join(values, "|") // what Grafana sends with "All" or several values selected
	}
	for _, p := range dash.Panels {
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %+v, %d queries", p.Title, p.Datasource, len(p.Targets))
		}
		for _, target := range p.Targets {
			expr := target.Expr
			for k, v := range vars {
				expr = strings.ReplaceAll(expr, k, v)
			}
			if strings.Contains(expr, "$") {
				t.Fatalf("panel %q: unknown variable in %s", p.Title, expr)
			}
			got := rangeQuery(t, s, expr, end.Add(-30*time.Minute), end, time.Minute)
			finite := 0
			for _, ser := range got {
				for _, v := range ser.Values {
					if f := v.float(t); !math.IsNaN(f) && !math.IsInf(f, 0) {
						finite++
					}
				}
			}
			if finite == 0 {
				t.Errorf("panel %q: %s returned no data (%d series)", p.Title, expr, len(got))
			}
		}
	}
}

// loadFleet stores a small Nebula fleet over [from, to] at 15 s: 10 nodes ×
// 8 GPUs × 4 metrics and 20 replicas × 3 metrics pushed natively, and the
// frontend's request counters, TTFT histogram and status counters remote-written.
func loadFleet(t *testing.T, s *servertest.Server, from, to time.Time) {
	t.Helper()
	var batch []map[string]any
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if resp := s.Do(t, "POST", "/v1/metrics/batch", map[string]any{"metrics": batch}); resp.Status != 200 {
			t.Fatalf("push: %d %s", resp.Status, resp.Body)
		}
		batch = batch[:0]
	}
	models := []string{"model-0", "model-1", "model-2", "model-3", "model-4"}
	step := 0
	for ts := from; !ts.After(to); ts = ts.Add(15 * time.Second) {
		stamp := ts.Format(time.RFC3339)
		for n := 0; n < 10; n++ {
			for g := 0; g < 8; g++ {
				lbls := map[string]string{"node_id": fmt.Sprintf("node-%d", n), "gpu_index": strconv.Itoa(g)}
				for i, name := range []string{"gpu_utilization", "gpu_temperature", "gpu_memory_used_mb", "gpu_memory_total_mb"} {
					batch = append(batch, map[string]any{"name": name, "labels": lbls, "value": float64((n*31+g*17+step*7+i*3)%100) + 0.5, "timestamp": stamp})
				}
			}
		}
		for r := 0; r < 20; r++ {
			lbls := map[string]string{"model_uid": models[r%len(models)], "replica_id": strconv.Itoa(r / len(models)), "node_id": fmt.Sprintf("node-%d", r%10)}
			for i, name := range []string{"kv_cache_usage", "pending_requests", "prefix_cache_hit_rate"} {
				batch = append(batch, map[string]any{"name": name, "labels": lbls, "value": float64((r*13+step*5+i)%20) / 20, "timestamp": stamp})
			}
		}
		if len(batch) >= 4000 {
			flush()
		}
		step++
	}
	flush()

	var written []prompb.TimeSeries
	buckets := []float64{0.05, 0.1, 0.25, 0.5, 1, math.Inf(1)}
	for mi, model := range models {
		requests := servertest.Series(series("dynamo_frontend_requests_total", "model", model))
		ttft := make([]prompb.TimeSeries, len(buckets))
		for bi, le := range buckets {
			ttft[bi] = servertest.Series(series("dynamo_frontend_time_to_first_token_seconds_bucket", "model", model, "le", formatLe(le)))
		}
		count := 0.0
		for i, ts := 0, from; !ts.After(to); i, ts = i+1, ts.Add(15*time.Second) {
			count += float64(10 + mi + i%3)
			requests.Samples = append(requests.Samples, at(ts, count))
			for bi := range buckets {
				ttft[bi].Samples = append(ttft[bi].Samples, at(ts, count*float64(bi+1)/float64(len(buckets))))
			}
		}
		written = append(written, requests)
		written = append(written, ttft...)
	}
	for si, status := range []string{"200", "404", "502", "503"} {
		nginx := servertest.Series(series("nginx_http_requests_total", "status", status))
		for i, ts := 0, from; !ts.After(to); i, ts = i+1, ts.Add(15*time.Second) {
			nginx.Samples = append(nginx.Samples, at(ts, float64(i*(100>>si))))
		}
		written = append(written, nginx)
	}
	mustWrite(t, s, written...)
}

func formatLe(le float64) string {
	if math.IsInf(le, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(le, 'f', -1, 64)
}
