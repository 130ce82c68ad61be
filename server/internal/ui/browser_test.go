package ui_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

const (
	publicKey = "pk-ui-test"
	secretKey = "sk-ui-test"
)

// TestBrowser drives the UI in headless Chromium against a real server on a
// throwaway database loaded with known traces and metrics. One browser, one
// tab per test; every test fails on a browser console error.
func TestBrowser(t *testing.T) {
	b := startBrowser(t)
	srv := servertest.Start(t, servertest.Options{Env: map[string]string{"XTRACE_PUBLIC_KEY": publicKey, "XTRACE_SECRET_KEY": secretKey}})
	now := time.Now().UTC()
	seedTraces(t, srv, now.Add(-5*time.Minute))
	seedMetrics(t, srv, now)
	signedIn := func(t *testing.T) *tab {
		tb := b.tab(t, srv.URL)
		tb.signIn(servertest.Token)
		return tb
	}

	t.Run("SignInAndOut", func(t *testing.T) {
		tb := b.tab(t, srv.URL)
		tb.open("")
		tb.waitFor("the sign-in form", `document.querySelector('#signin-token')`)
		tb.screenshot("signin", false)
		tb.typeInto("#signin-token", servertest.Token)
		tb.click("#signin-submit")
		tb.waitFor("the traces page", `document.querySelector('#traces-table')`)
		var stored string
		tb.eval(`sessionStorage.getItem('xtrace.credentials') || ''`, &stored)
		if !strings.Contains(stored, servertest.Token) {
			t.Fatalf("credentials not kept in sessionStorage: %q", stored)
		}
		tb.click("#sign-out")
		tb.waitFor("the sign-in form after signing out", `document.querySelector('#signin-token')`)
		tb.waitText("#signin-message", "signed out")
		tb.do(chromedp.Reload())
		tb.waitFor("the sign-in form after a reload", `document.querySelector('#signin-token')`)
		if n := tb.count("#nav-traces"); n != 0 {
			t.Fatal("signed in again after sign-out and reload")
		}
		var left int
		tb.eval(`sessionStorage.length`, &left)
		if left != 0 {
			t.Fatalf("sessionStorage still holds %d items after sign-out", left)
		}
	})

	t.Run("WrongTokenRefused", func(t *testing.T) {
		tb := b.tab(t, srv.URL)
		tb.allow(`status of 401`) // the browser logs the refused request itself
		tb.open("#/traces")
		tb.waitFor("the sign-in form", `document.querySelector('#signin-token')`)
		tb.typeInto("#signin-token", "not-the-token")
		tb.click("#signin-submit")
		tb.waitText("#signin-message", "refused these credentials")
		tb.screenshot("wrong-token", false)
		var stored int
		tb.eval(`sessionStorage.length`, &stored)
		if stored != 0 || tb.count("#nav-traces") != 0 {
			t.Fatal("a wrong token was kept or let in")
		}
		// The key pair (Basic auth) signs in, and the shared link opens where it pointed.
		tb.click("input[name=kind][value=basic]")
		tb.typeInto("#signin-public", publicKey)
		tb.typeInto("#signin-secret", secretKey)
		tb.click("#signin-submit")
		tb.waitFor("the traces list after a key-pair sign-in", `document.querySelector('#traces-table tr[data-trace-id="req-ui-0001"]')`)
	})

	t.Run("TraceListAndFilterByUser", func(t *testing.T) {
		tb := signedIn(t)
		tb.waitFor("the known trace", `document.querySelector('#traces-table tr[data-trace-id="req-ui-0001"]')`)
		row := `#traces-table tr[data-trace-id="req-ui-0001"]`
		tb.waitText(row+" .col-tokens", "42")
		if got := tb.text(row + " .col-name"); got != "/v1/chat/completions" {
			t.Errorf("name cell = %q", got)
		}
		if got := tb.text(row + " .col-user"); got != "team-a" {
			t.Errorf("user cell = %q", got)
		}
		tb.waitFor("the error trace highlighted", `document.querySelector('#traces-table tr[data-trace-id="req-ui-0002"]').classList.contains('row-error')`)
		if got := tb.text(`#traces-table tr[data-trace-id="req-ui-0002"] .col-level`); got != "ERROR" {
			t.Errorf("level of the failed trace = %q", got)
		}
		if n := tb.count("#traces-table tbody tr"); n != 3 {
			t.Errorf("%d rows, want the 3 seeded traces", n)
		}
		tb.screenshot("traces", false)

		// Sort by tokens (within the page), most first, then least first.
		tb.click("#sort-tokens")
		tb.waitFor("rows sorted by tokens", `document.querySelector('#traces-table tbody tr')?.dataset.traceId === 'req-ui-0001' && document.querySelector('th.col-tokens').getAttribute('aria-sort') === 'descending'`)
		tb.waitText(`#traces-table tbody tr:last-child .col-tokens`, "7")
		tb.click("#sort-tokens")
		tb.waitFor("rows sorted by tokens ascending", `document.querySelector('#traces-table tbody tr:first-child .col-tokens')?.textContent === '7'`)

		// Filter by user: the form puts it in the URL, and the URL alone reproduces the view.
		tb.typeInto("#f-user", "team-b")
		tb.click("#f-apply")
		tb.waitFor("only team-b's trace", `document.querySelectorAll('#traces-table tbody tr').length === 1 && document.querySelector('#traces-table tbody tr').dataset.traceId === 'req-ui-0002'`)
		if h := tb.hash(); !strings.Contains(h, "userId=team-b") {
			t.Errorf("the filter is not in the URL: %s", h)
		}
		tb.do(chromedp.Reload())
		tb.waitFor("the filtered list after a reload", `document.querySelectorAll('#traces-table tbody tr').length === 1 && document.querySelector('#f-user').value === 'team-b'`)
		tb.screenshot("traces-filtered", false)
	})

	t.Run("TraceDetail", func(t *testing.T) {
		tb := signedIn(t)
		tb.waitFor("the known trace", `document.querySelector('#traces-table tr[data-trace-id="req-ui-0001"] .col-name a')`)
		tb.click(`#traces-table tr[data-trace-id="req-ui-0001"] .col-name a`)
		tb.waitFor("the observation tree", `document.querySelector('#trace-tree')`)
		tree := tb.text("#trace-tree")
		for _, want := range []string{"gateway", "routing", "chat", "12 → 30 (Σ 42) tokens"} {
			if !strings.Contains(tree, want) {
				t.Errorf("tree lacks %q: %s", want, tree)
			}
		}
		var depth string
		tb.eval(`document.querySelector('[data-obs-id="req-ui-0001-gen"]').getAttribute('aria-level')`, &depth)
		if depth != "2" {
			t.Errorf("the generation is at tree level %s, want 2 (under the gateway span)", depth)
		}
		tb.click(`[data-obs-id="req-ui-0001-gen"]`)
		tb.waitText("#obs-input", "What is the capital of France?")
		tb.waitText("#obs-output", "Paris is the capital of France.")
		for sel, want := range map[string]string{"#obs-model": "qwen-72b", "#obs-usage": "42", "#obs-params": "temperature", "#obs-cost": "$0.0012"} {
			if got := tb.text(sel); !strings.Contains(got, want) {
				t.Errorf("%s = %q, want %q in it", sel, got, want)
			}
		}
		if h := tb.hash(); !strings.Contains(h, "obs=req-ui-0001-gen") {
			t.Errorf("the selected observation is not in the URL: %s", h)
		}
		if got := tb.text("#trace-scores"); !strings.Contains(got, "quality") || !strings.Contains(got, "0.9") {
			t.Errorf("scores = %q", got)
		}
		tb.screenshot("trace", true)

		// The keyboard moves through the tree.
		tb.do(chromedp.KeyEvent(kb.ArrowUp))
		tb.waitFor("the observation above selected and focused", `document.activeElement?.dataset.obsId === 'req-ui-0001-route' && document.activeElement.getAttribute('aria-selected') === 'true' && document.querySelector('[data-obs-id="req-ui-0001-gen"]').getAttribute('aria-selected') === 'false'`)
		tb.waitText("#obs-detail", "node-a/replica-0")

		// The error and its status message, on the other trace.
		tb.route("#/trace/req-ui-0002")
		tb.waitFor("the failed generation", `document.querySelector('[data-obs-id="req-ui-0002-gen"]')`)
		tb.click(`[data-obs-id="req-ui-0002-gen"]`)
		tb.waitText("#obs-status", "upstream timeout")

		// The link to the session, and the session's traces in order.
		tb.route("#/trace/req-ui-0001")
		tb.waitFor("the session link", `document.querySelector('#trace-session')`)
		tb.click("#trace-session")
		tb.waitFor("the session's traces", `document.querySelectorAll('#session-traces > li').length === 2`)
		var order []string
		tb.eval(`[...document.querySelectorAll('#session-traces > li')].map(li => li.dataset.traceId)`, &order)
		if strings.Join(order, ",") != "req-ui-0001,req-ui-0002" {
			t.Errorf("session traces in order %v", order)
		}
		tb.screenshot("session", false)
	})

	t.Run("SessionsKeyboard", func(t *testing.T) {
		tb := signedIn(t)
		tb.route("#/sessions")
		tb.waitFor("the sessions list", `document.querySelector('#sessions-table tr[data-session-id="conv-ui-42"]')`)
		tb.do(chromedp.Focus(chromedp.CSS(`#sessions-table tr[data-session-id="conv-ui-42"]`)), chromedp.KeyEvent(kb.Enter))
		tb.waitFor("the session opened with Enter", `document.querySelectorAll('#session-traces > li').length === 2`)
		tb.screenshot("sessions", false)
	})

	t.Run("MetricsExplorer", func(t *testing.T) {
		tb := signedIn(t)
		pushFresh(t, srv)
		tb.click("#nav-metrics")
		tb.waitFor("the metric picker", `document.querySelector('#m-name')`)
		tb.choose("#m-name", "gpu_utilization")
		tb.waitFor("the chart", `document.querySelector('#m-chart canvas') && document.querySelectorAll('#m-series tbody tr').length === 12`)
		var drawn bool
		tb.eval(`(() => { const c = document.querySelector('#m-chart canvas'); if (!c.width || !c.height) return false;
			const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) return true; return false; })()`, &drawn)
		if !drawn {
			t.Error("the chart's canvas is empty")
		}
		legend := tb.text("#m-chart .u-legend")
		for _, want := range []string{`gpu_index="0", node_id="node-a"`, `gpu_index="3", node_id="node-c"`} {
			if !strings.Contains(legend, want) {
				t.Errorf("legend lacks %s: %s", want, legend)
			}
		}
		if h := tb.hash(); !strings.Contains(h, "name=gpu_utilization") {
			t.Errorf("the metric is not in the URL: %s", h)
		}
		// Label filters and group_by narrow the chart.
		tb.choose("#m-label-node_id", "node-a")
		tb.waitFor("node-a's 4 GPUs", `document.querySelectorAll('#m-series tbody tr').length === 4`)
		tb.click("#m-group-node_id")
		tb.waitFor("one group", `document.querySelectorAll('#m-series tbody tr').length === 1 && document.querySelector('#m-series tbody tr').dataset.series === 'node_id="node-a"'`)
		tb.screenshot("metrics-grouped", false)
	})

	t.Run("StaleSeriesFlagged", func(t *testing.T) {
		tb := signedIn(t)
		pushFresh(t, srv)
		tb.route(`#/metrics?name=gpu_utilization&range=15m&step=5s&agg=last&refresh=5s`)
		tb.waitFor("the series table", `document.querySelectorAll('#m-series tbody tr').length === 12`)
		row := func(node, gpu string) string {
			return `document.querySelector(` + jsString(fmt.Sprintf(`#m-series tr[data-series='gpu_index="%s", node_id="%s"']`, gpu, node)) + `)`
		}
		// node-c stopped 2 minutes ago: stale for both; node-b 20 s ago: at least for the Router.
		tb.waitFor("node-c stale for the Scheduler", row("node-c", "0")+`.classList.contains('stale-scheduler')`)
		tb.waitFor("node-b stale", `['stale-router', 'stale-scheduler'].some(c => `+row("node-b", "1")+`.classList.contains(c))`)
		tb.waitFor("node-a fresh", row("node-a", "2")+`.classList.contains('fresh')`)
		if got := tb.text(`#m-series tr.stale-scheduler td:last-child`); !strings.Contains(got, "stale for the Router and the Scheduler") {
			t.Errorf("the stale badge reads %q", got)
		}
		tb.screenshot("metrics", true)

		// Auto-refresh (every 5 s here) picks up a new point without a reload.
		push(t, srv, []point{{"gpu_utilization", map[string]string{"node_id": "node-a", "gpu_index": "0"}, 77.25, ts(time.Now())}})
		tb.waitFor("the refreshed value", row("node-a", "0")+`.querySelector('td').textContent === '77.25'`)
	})

	t.Run("PromQL", func(t *testing.T) {
		tb := signedIn(t)
		pushFresh(t, srv)
		tb.click("#nav-promql")
		tb.waitFor("the PromQL form", `document.querySelector('#pq-query')`)
		// A range query is charted, one line per node.
		tb.typeInto("#pq-query", "avg by (node_id) (gpu_utilization)")
		tb.click("#pq-run")
		tb.waitFor("the chart", `document.querySelector('#pq-chart canvas')`)
		legend := tb.text("#pq-chart .u-legend")
		for _, want := range []string{`{node_id="node-a"}`, `{node_id="node-b"}`, `{node_id="node-c"}`} {
			if !strings.Contains(legend, want) {
				t.Errorf("legend lacks %s: %s", want, legend)
			}
		}
		if h := tb.hash(); !strings.Contains(h, "q=avg") || !strings.Contains(h, "mode=range") {
			t.Errorf("the query is not in the URL: %s", h)
		}
		tb.screenshot("promql", true)

		// An instant query is a table of the vector: node-a's 4 GPUs.
		tb.route("#/promql?" + url.Values{"q": {`gpu_utilization{node_id="node-a"}`}, "mode": {"instant"}}.Encode())
		tb.waitFor("the vector", `document.querySelectorAll('#pq-table tbody tr').length === 4`)
		if got := tb.text("#pq-table caption"); got != "Result: vector" {
			t.Errorf("caption %q", got)
		}
		if got := tb.text("#pq-table tbody tr th"); !strings.Contains(got, `gpu_utilization{gpu_index="0", node_id="node-a"}`) {
			t.Errorf("first row names %q", got)
		}
		// A wrong expression shows the server's error, in Prometheus' terms.
		tb.allow(`status of 400 .*/api/v1/query\?`)
		tb.route("#/promql?" + url.Values{"q": {"sum(gpu_utilization"}, "mode": {"instant"}}.Encode())
		tb.waitFor("the error", `document.querySelector('#pq-error')`)
		if got := tb.text("#pq-error"); !strings.HasPrefix(got, "bad_data:") {
			t.Errorf("error reads %q", got)
		}
	})

	t.Run("Fleet", func(t *testing.T) {
		tb := signedIn(t)
		pushFresh(t, srv)
		tb.click("#nav-fleet")
		tb.waitFor("the fleet grid", `document.querySelector('#fleet-grid tr[data-node="node-a"]')`)
		if n := tb.count(`#fleet-grid tbody tr`); n != 3 {
			t.Errorf("%d node rows, want 3", n)
		}
		if n := tb.count(`#fleet-grid tr[data-node="node-a"] td.cell a`); n != 4 {
			t.Errorf("node-a has %d GPU cells, want 4", n)
		}
		if got := tb.text(`#fleet-grid a[data-node="node-a"][data-gpu="1"]`); !strings.Contains(got, "%") {
			t.Errorf("node-a GPU 1 cell = %q", got)
		}
		tb.waitFor("node-c's stale cells marked", `document.querySelectorAll('#fleet-grid tr[data-node="node-c"] td.cell.stale-scheduler').length === 4`)
		requirePerSeriesFreshness(t, srv)
		tb.waitFor("node-a's cells fresh", `document.querySelectorAll('#fleet-grid tr[data-node="node-a"] td.cell.fresh').length === 4`)
		tb.waitFor("the replicas", `document.querySelector('#fleet-replica-table tr[data-model="qwen-72b"][data-replica="0"]')`)
		if got := tb.text(`#fleet-replica-table tr[data-replica="0"]`); !strings.Contains(got, "40%") || !strings.Contains(got, "3") {
			t.Errorf("replica 0 row = %q, want 40%% KV cache and queue 3", got)
		}
		tb.waitFor("replica 1 stale", `document.querySelector('#fleet-replica-table tr[data-replica="1"] td.stale-scheduler')`)
		tb.screenshot("fleet", false)

		// A click opens that series in the explorer.
		tb.click(`#fleet-grid a[data-node="node-a"][data-gpu="1"]`)
		tb.waitFor("the explorer on one series", `document.querySelectorAll('#m-series tbody tr').length === 1`)
		var shown string
		tb.eval(`document.querySelector('#m-series tbody tr').dataset.series`, &shown)
		if shown != `gpu_index="1", node_id="node-a"` {
			t.Errorf("explorer shows %q", shown)
		}
		if h := tb.hash(); !strings.Contains(h, `"node_id":"node-a"`) || !strings.Contains(h, "name=gpu_utilization") {
			t.Errorf("explorer URL %s", h)
		}
	})
}

// requirePerSeriesFreshness checks that the server reports latest_ts per
// series (SPEC §3.5), which the fleet page's freshness marks read.
func requirePerSeriesFreshness(t *testing.T, srv *servertest.Server) {
	var res struct {
		Data []map[string]json.RawMessage `json:"data"`
	}
	srv.Do(t, "GET", "/api/public/metrics/query?name=gpu_utilization", nil).JSON(t, &res)
	if len(res.Data) == 0 {
		t.Fatal("no gpu_utilization data")
	}
	if _, ok := res.Data[0]["latest_ts"]; !ok {
		t.Fatal("the query answer has no per-series latest_ts")
	}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// seedTraces loads three traces: a chat with a span tree, a generation and a
// score; a failed embedding in the same session; and a second chat of team-a.
func seedTraces(t *testing.T, srv *servertest.Server, t0 time.Time) {
	t.Helper()
	ms := func(n int) string { return ts(t0.Add(time.Duration(n) * time.Millisecond)) }
	batches := []map[string]any{{
		"trace": map[string]any{"id": "req-ui-0001", "name": "/v1/chat/completions", "userId": "team-a", "sessionId": "conv-ui-42",
			"tags": []string{"gateway"}, "timestamp": ms(0), "release": "v1.4.0",
			"input":  map[string]any{"messages": []map[string]string{{"role": "user", "content": "What is the capital of France?"}}},
			"output": "Paris is the capital of France."},
		"observations": []map[string]any{
			{"id": "req-ui-0001-root", "type": "SPAN", "name": "gateway", "startTime": ms(0), "endTime": ms(1200)},
			{"id": "req-ui-0001-route", "type": "SPAN", "name": "routing", "parentObservationId": "req-ui-0001-root",
				"startTime": ms(10), "endTime": ms(60), "metadata": map[string]string{"endpoint": "node-a/replica-0"}},
			{"id": "req-ui-0001-gen", "type": "GENERATION", "name": "chat", "parentObservationId": "req-ui-0001-root", "model": "qwen-72b",
				"modelParameters": map[string]any{"temperature": 0.2, "max_tokens": 256},
				"startTime":       ms(100), "completionStartTime": ms(400), "endTime": ms(1100),
				"input":  []map[string]string{{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": "What is the capital of France?"}},
				"output": "Paris is the capital of France.", "promptTokens": 12, "completionTokens": 30,
				"costDetails": map[string]float64{"input": 0.0003, "output": 0.0009}},
		},
	}, {
		"trace": map[string]any{"id": "req-ui-0002", "name": "/v1/embeddings", "userId": "team-b", "sessionId": "conv-ui-42", "timestamp": ms(30000),
			"input": "embed this"},
		"observations": []map[string]any{
			{"id": "req-ui-0002-gen", "type": "GENERATION", "name": "embed", "model": "bge-m3", "startTime": ms(30000), "endTime": ms(35000),
				"promptTokens": 7, "level": "ERROR", "statusMessage": "upstream timeout after 5 s"},
		},
	}, {
		"trace": map[string]any{"id": "req-ui-0003", "name": "/v1/chat/completions", "userId": "team-a", "timestamp": ms(60000)},
		"observations": []map[string]any{
			{"id": "req-ui-0003-gen", "type": "GENERATION", "name": "chat", "model": "qwen-72b", "startTime": ms(60000), "endTime": ms(60800),
				"promptTokens": 5, "completionTokens": 9},
		},
	}}
	for _, b := range batches {
		if r := srv.Do(t, "POST", "/v1/l/batch", b); r.Status != 200 {
			t.Fatalf("seed trace: %d %s", r.Status, r.Body)
		}
	}
	score := map[string]any{"batch": []map[string]any{{"id": "evt-score-1", "type": "score-create", "timestamp": ms(2000),
		"body": map[string]any{"id": "score-ui-1", "traceId": "req-ui-0001", "name": "quality", "value": 0.9, "comment": "concise"}}}}
	if r := srv.Do(t, "POST", "/api/public/ingestion", score); r.Status != 207 || strings.Contains(string(r.Body), `"status":4`) {
		t.Fatalf("seed score: %d %s", r.Status, r.Body)
	}
}

type point struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	Value     float64           `json:"value"`
	Timestamp string            `json:"timestamp"`
}

// seedMetrics loads ten minutes of a small fleet: node-a reports, node-b
// stopped 20 s ago, node-c two minutes ago; replica 0 reports, replica 1 stopped.
func seedMetrics(t *testing.T, srv *servertest.Server, now time.Time) {
	t.Helper()
	var pts []point
	stops := []time.Duration{0, 20 * time.Second, 2 * time.Minute} // node-a, node-b, node-c
	for n, stop := range stops {
		for g := 0; g < 4; g++ {
			for at := 10 * time.Minute; at >= stop; at -= 10 * time.Second {
				busy := 55 + 35*math.Sin(at.Seconds()/120+float64(n*4+g))
				pts = append(pts, point{"gpu_utilization", map[string]string{"node_id": "node-" + string(rune('a'+n)), "gpu_index": fmt.Sprint(g)},
					math.Round(busy*10) / 10, ts(now.Add(-at))})
			}
		}
	}
	for at := 10 * time.Minute; at >= 0; at -= 10 * time.Second {
		pts = append(pts, replicaPoints("0", "node-a", now.Add(-at))...)
		if at >= 2*time.Minute {
			pts = append(pts, replicaPoints("1", "node-b", now.Add(-at))...)
		}
	}
	push(t, srv, pts)
}

func replicaPoints(replica, node string, at time.Time) []point {
	l := map[string]string{"model_uid": "qwen-72b", "replica_id": replica, "node_id": node}
	return []point{{"kv_cache_usage", l, 40, ts(at)}, {"pending_requests", l, 3, ts(at)}}
}

// pushFresh gives node-a and replica 0 a point now, and node-b one 20 s ago,
// just before a test looks at freshness.
func pushFresh(t *testing.T, srv *servertest.Server) {
	t.Helper()
	now := time.Now()
	var pts []point
	for g := 0; g < 4; g++ {
		pts = append(pts, point{"gpu_utilization", map[string]string{"node_id": "node-a", "gpu_index": fmt.Sprint(g)}, float64(50 + g), ts(now)},
			point{"gpu_utilization", map[string]string{"node_id": "node-b", "gpu_index": fmt.Sprint(g)}, float64(70 + g), ts(now.Add(-20 * time.Second))})
	}
	push(t, srv, append(pts, replicaPoints("0", "node-a", now)...))
}

func push(t *testing.T, srv *servertest.Server, pts []point) {
	t.Helper()
	if r := srv.Do(t, "POST", "/v1/metrics/batch", map[string]any{"metrics": pts}); r.Status != 200 {
		t.Fatalf("push metrics: %d %s", r.Status, r.Body)
	}
}
