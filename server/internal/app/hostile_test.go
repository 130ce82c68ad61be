package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// The hostile-input catalogue: each row is something a client (careless or
// malicious) can send, the answer it must get, and what must, or must not,
// be stored afterwards. Every row once produced a 500, a lost neighbour, a
// hang or unbounded work; keep them so that none comes back.
type hostileCase struct {
	name    string
	method  string
	path    string
	body    string
	headers []string
	// status is the expected answer; contains must appear in its body.
	status   int
	contains string
	// stored: SQL counts that must be exactly as given afterwards (neighbours
	// kept, the hostile part not written).
	stored map[string]int64
}

// hostileRetentionDays is the metrics retention of the catalogue's server,
// so that the accepted point window is known.
const hostileRetentionDays = 30

func hostileCases(now time.Time) []hostileCase {
	day := func(d int) string { return now.AddDate(0, 0, d).UTC().Format(time.RFC3339) }
	deep := strings.Repeat(`{"kvlistValue":{"values":[{"key":"k","value":`, 100) + `{"stringValue":"x"}` + strings.Repeat(`}]}}`, 100)
	otlpSpan := func(spanID, attrs string) string {
		return `{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"` + spanID + `","name":"s","startTimeUnixNano":"1700000000000000000","attributes":[` + attrs + `]}`
	}
	var manyEvents, tooManyEvents []string
	for i := 0; i < 10001; i++ {
		e := fmt.Sprintf(`{"id":"many-%d","type":"trace-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"many-trace-%d"}}`, i, i)
		tooManyEvents = append(tooManyEvents, e)
		if i < 10000 {
			manyEvents = append(manyEvents, e)
		}
	}
	return []hostileCase{
		// NUL and lone surrogates: each event on its own, text sanitised, ids rejected.
		{name: "ingestion: NUL and lone surrogates in text are stored as U+FFFD, an id with NUL fails alone",
			method: "POST", path: "/api/public/ingestion",
			body: `{"batch":[
				{"id":"nul-1","type":"trace-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"nul-ok","name":"fine"}},
				{"id":"nul-2","type":"generation-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"nul-gen","traceId":"nul-ok","name":"a\u0000b","input":"x\u0000y","output":{"t":"\ud800 lone","k\u0000":"v"},"metadata":{"m":"\udc00"}}},
				{"id":"nul-3","type":"trace-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"bad\u0000id"}},
				{"id":"nul-4","type":"score-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"nul-score","traceId":"nul-ok","name":"q\u0000","value":1,"comment":"\ud83d"}}]}`,
			status: 207, contains: `"id":"nul-3","status":400`,
			stored: map[string]int64{
				"SELECT count(*) FROM traces WHERE id = 'nul-ok'":                                                     1,
				"SELECT count(*) FROM observations WHERE id = 'nul-gen' AND doc->>'input' = 'x' || chr(65533) || 'y'": 1,
				"SELECT count(*) FROM observations WHERE id = 'nul-gen' AND name = 'a' || chr(65533) || 'b'":          1,
				"SELECT count(*) FROM scores WHERE id = 'nul-score'":                                                  1,
				"SELECT count(*) FROM traces WHERE id LIKE 'bad%'":                                                    0,
			}},
		{name: "native batch: NUL in an observation's output is sanitised, the batch is stored",
			method: "POST", path: "/v1/l/batch",
			body:   `{"trace":{"id":"nul-native","input":"\u0000"},"observations":[{"id":"nul-native-obs","output":"ok\ud800"}]}`,
			status: 200,
			stored: map[string]int64{"SELECT count(*) FROM observations WHERE id = 'nul-native-obs' AND doc->>'output' = 'ok' || chr(65533)": 1}},
		{name: "OTLP: NUL and a lone surrogate in attributes are sanitised",
			method: "POST", path: "/v1/traces",
			body:   `{"resourceSpans":[{"scopeSpans":[{"spans":[` + otlpSpan("00f067aa0ba902b7", `{"key":"input.value","value":{"stringValue":"a\u0000b\ud800"}}`) + `]}]}]}`,
			status: 200,
			stored: map[string]int64{"SELECT count(*) FROM observations WHERE id = '00f067aa0ba902b7'": 1}},
		{name: "metrics: NUL in a label value is a 400 naming it, nothing written",
			method: "POST", path: "/v1/metrics/batch",
			body:   `{"metrics":[{"name":"hostile_nul","labels":{"k":"a\u0000"},"value":1},{"name":"hostile_nul_ok","value":1}]}`,
			status: 400, contains: "metrics[0].labels.k: value contains a NUL character",
			stored: map[string]int64{"SELECT count(*) FROM metric_series WHERE name LIKE 'hostile_nul%'": 0}},
		{name: "metrics: a lone surrogate in a label value is a 400 (it would merge with U+FFFD)",
			method: "POST", path: "/v1/metrics/batch",
			body:   `{"metrics":[{"name":"hostile_sur","labels":{"k":"\ud800"},"value":1}]}`,
			status: 400, contains: "metrics[0].labels.k: value contains a lone UTF-16 surrogate",
			stored: map[string]int64{"SELECT count(*) FROM metric_series WHERE name = 'hostile_sur'": 0}},
		{name: "metrics: invalid UTF-8 in a label value is a 400",
			method: "POST", path: "/v1/metrics/batch",
			body:   "{\"metrics\":[{\"name\":\"hostile_utf8\",\"labels\":{\"k\":\"\xff\xfe\"},\"value\":1}]}",
			status: 400, contains: "metrics[0].labels.k: value is not valid UTF-8",
			stored: map[string]int64{"SELECT count(*) FROM metric_series WHERE name = 'hostile_utf8'": 0}},

		// The accepted point window: no partitions for days nobody keeps.
		{name: "metrics: a point older than the retention window is a 400 naming the window, no partition made",
			method: "POST", path: "/v1/metrics/batch",
			body:   `{"metrics":[{"name":"hostile_old","value":1,"timestamp":"` + day(-hostileRetentionDays-1) + `"},{"name":"hostile_old","value":2,"timestamp":"` + day(0) + `"}]}`,
			status: 400, contains: "is outside the accepted window from",
			stored: map[string]int64{"SELECT count(*) FROM metric_series WHERE name = 'hostile_old'": 0,
				"SELECT count(*) FROM pg_class WHERE relname LIKE 'metric_points_m" + now.AddDate(0, 0, -hostileRetentionDays-1).Format("20060102") + "%'": 0}},
		{name: "metrics: 3,000 days in one push are refused at once",
			method: "POST", path: "/v1/metrics/batch", body: manyDays(now, 3000),
			status: 400, contains: "is outside the accepted window",
			stored: map[string]int64{"SELECT count(*) FROM metric_series WHERE name = 'hostile_days'": 0}},
		{name: "metrics: a backfill of the whole window in one push is accepted",
			method: "POST", path: "/v1/metrics/batch", body: manyDays(now, hostileRetentionDays),
			status: 200,
			stored: map[string]int64{"SELECT count(*) FROM metrics WHERE name = 'hostile_days'": hostileRetentionDays}},
		{name: "metrics: a back-fill of a point every 5 minutes over 29 days is accepted with a partition per 2-hour window, not per raw window",
			method: "POST", path: "/v1/metrics/batch", body: everyWindow(now, 29*24*time.Hour),
			status: 200,
			stored: map[string]int64{"SELECT count(*) FROM metrics WHERE name = 'hostile_windows'": 29 * 288,
				// About 29 × 12 chunk windows, plus the partitions other rows made (each splits
				// its chunk window's run in two) and those made ahead; one per point's raw window would be 8,352.
				"SELECT (count(*) < 1000)::int FROM pg_inherits WHERE inhparent = 'metric_points'::regclass": 1}},

		// One request is always small enough to apply; larger ones must be split.
		{name: "ingestion: 10,000 distinct ids in one batch are stored (locks are bucketed, not one per id)",
			method: "POST", path: "/api/public/ingestion", body: `{"batch":[` + strings.Join(manyEvents, ",") + `]}`,
			status: 207, contains: `"errors":[]`,
			stored: map[string]int64{"SELECT count(*) FROM traces WHERE id LIKE 'many-trace-%'": 10000}},
		{name: "ingestion: more events than one request may carry is a 413 asking to split",
			method: "POST", path: "/api/public/ingestion", body: `{"batch":[` + strings.Join(tooManyEvents, ",") + `]}`,
			status: 413, contains: "split it"},

		// 500s that were the client's doing.
		{name: "path id with NUL", method: "GET", path: "/api/public/traces/%00", status: 400, contains: "traceId: contains a NUL character"},
		{name: "path id with invalid UTF-8", method: "GET", path: "/api/public/observations/%ff", status: 400, contains: "observationId: is not valid UTF-8"},
		{name: "session id with NUL", method: "GET", path: "/api/public/sessions/%00", status: 400, contains: "sessionId:"},
		{name: "metric labels of a NUL name", method: "GET", path: "/api/public/metrics/labels?name=%00", status: 400, contains: "name:"},
		{name: "query label filter with NUL", method: "GET", path: "/api/public/metrics/query?name=x&labels=" + url.QueryEscape(`{"k":"\u0000"}`), status: 400, contains: "labels: contains a NUL character"},
		{name: "trace filter with NUL", method: "GET", path: "/api/public/traces?userId=%00", status: 400, contains: "userId: contains a NUL character"},
		{name: "tags filter with invalid UTF-8", method: "GET", path: "/api/public/traces?tags=%ff", status: 400, contains: "tags: is not valid UTF-8"},
		{name: "page that overflows OFFSET", method: "GET", path: "/api/public/traces?page=9223372036854775807", status: 400, contains: "page:"},
		{name: "a trace name longer than an index entry holds",
			method: "POST", path: "/v1/l/batch", body: `{"trace":{"id":"long-name","name":"` + strings.Repeat("n", 3000) + `"}}`,
			status: 400, contains: "trace.name: 3000 bytes long, at most 1000",
			stored: map[string]int64{"SELECT count(*) FROM traces WHERE id = 'long-name'": 0}},
		{name: "an id longer than an index entry holds",
			method: "POST", path: "/v1/l/batch", body: `{"trace":{"id":"` + strings.Repeat("é", 700) + `"}}`,
			status: 400, contains: "trace.id: longer than"},

		// Nesting is capped whichever route it came through.
		{name: "OTLP: a kvlist nested 100 levels is rejected with its span, the neighbour span is stored",
			method: "POST", path: "/v1/traces",
			body: `{"resourceSpans":[{"scopeSpans":[{"spans":[` + otlpSpan("00f067aa0ba902b8", `{"key":"deep","value":`+deep+`}`) + `,` +
				otlpSpan("00f067aa0ba902b9", `{"key":"ok","value":{"stringValue":"fine"}}`) + `]}]}]}`,
			status: 200, contains: `"rejectedSpans":1`,
			stored: map[string]int64{"SELECT count(*) FROM observations WHERE id = '00f067aa0ba902b8'": 0,
				"SELECT count(*) FROM observations WHERE id = '00f067aa0ba902b9'": 1}},

		// Usage is validated: no silent zeros, no negative counts.
		{name: "usage of 1e308 is a per-event 400, not a silent 0",
			method: "POST", path: "/api/public/ingestion",
			body:   `{"batch":[{"id":"u-1","type":"generation-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"huge-usage","usage":{"input":1e308,"output":1e308}}}]}`,
			status: 207, contains: "usageDetails.input",
			stored: map[string]int64{"SELECT count(*) FROM observations WHERE id = 'huge-usage'": 0}},
		{name: "negative token counts are a 400",
			method: "POST", path: "/v1/l/batch", body: `{"trace":{"id":"neg-usage"},"observations":[{"id":"neg-usage-obs","promptTokens":-5}]}`,
			status: 400, contains: "observations[0].usageDetails.input",
			stored: map[string]int64{"SELECT count(*) FROM traces WHERE id = 'neg-usage'": 0}},

		// Time parameters: the documented forms, and a 400 naming them for anything else.
		{name: "from without an offset, a date and unix seconds are accepted",
			method: "GET", path: "/api/public/metrics/query?name=x&from=2026-11-30T09:00:00&to=2026-11-30", status: 400, contains: "from: 2026-11-30T09:00:00Z is after to"},
		{name: "an unencoded + arrives as a space and is understood",
			method: "GET", path: "/api/public/metrics/query?name=x&from=2026-11-30T09:00:00+08:00&to=1796083200000", status: 200},
		{name: "a time in none of the forms is a 400 naming the accepted ones",
			method: "GET", path: "/api/public/traces?fromTimestamp=last-tuesday", status: 400, contains: "a date (2026-11-30), or unix seconds"},
	}
}

// manyDays is a push of one point per day for the last n days.
func manyDays(now time.Time, n int) string {
	var pts []string
	for d := 0; d < n; d++ {
		pts = append(pts, fmt.Sprintf(`{"name":"hostile_days","value":%d,"timestamp":%q}`, d, now.AddDate(0, 0, -d).UTC().Format(time.RFC3339)))
	}
	return `{"metrics":[` + strings.Join(pts, ",") + `]}`
}

// everyWindow is a push of one point every 5 minutes (each in a raw window
// of its own) over the span before now.
func everyWindow(now time.Time, span time.Duration) string {
	var pts []string
	for ts := now.Add(-span + 5*time.Minute); !ts.After(now); ts = ts.Add(5 * time.Minute) {
		pts = append(pts, fmt.Sprintf(`{"name":"hostile_windows","value":1,"timestamp":%q}`, ts.UTC().Format(time.RFC3339)))
	}
	return `{"metrics":[` + strings.Join(pts, ",") + `]}`
}

func TestHostileInputCatalogue(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Env: map[string]string{"METRICS_RETENTION_DAYS": fmt.Sprint(hostileRetentionDays)}})
	db := pgtest.Connect(t, s.DatabaseURL)
	for _, c := range hostileCases(time.Now()) {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := s.Do(t, c.method, c.path, body, c.headers...)
			if r.Status != c.status || !strings.Contains(string(r.Body), c.contains) {
				t.Errorf("%s %s: %d %s\nwant %d containing %q", c.method, c.path, r.Status, clipped(r.Body), c.status, c.contains)
			}
			if r.Status >= 500 {
				t.Errorf("a client caused a %d", r.Status)
			}
			for sql, want := range c.stored {
				if got := db.Int(sql); got != want {
					t.Errorf("%s = %d, want %d", sql, got, want)
				}
			}
		})
	}
}

func clipped(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// TestClientBodyErrorsAreClientErrors: a body cut short, malformed chunked
// framing and a body too slow to arrive get 400/408 — not 500 — and count as
// client errors on /metrics.
func TestClientBodyErrorsAreClientErrors(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{ReadTimeout: time.Second})
	addr := strings.TrimPrefix(s.URL, "http://")
	raw := func(request string, wait bool) string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(request)); err != nil {
			t.Fatal(err)
		}
		if !wait { // the client gives up sending: half-close so the server sees the body end early
			_ = conn.(*net.TCPConn).CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		defer resp.Body.Close()
		var b struct{ Message, Code string }
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return fmt.Sprintf("%d %s %s", resp.StatusCode, b.Code, b.Message)
	}
	head := "POST /v1/metrics/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + servertest.Token + "\r\nContent-Type: application/json\r\n"
	cases := []struct {
		name, request string
		wait          bool
		want          string
	}{
		{"truncated body", head + "Content-Length: 100\r\n\r\n{\"metrics\":[", false, "400 BAD_REQUEST body: incomplete"},
		{"bad chunked framing", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", false, "400 BAD_REQUEST body: incomplete"},
		{"slow body", head + "Content-Length: 100\r\n\r\n{\"metrics\":[", true, "408 REQUEST_TIMEOUT body: not received in time"},
	}
	for _, c := range cases {
		if got := raw(c.request, c.wait); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %s, want %s…", c.name, got, c.want)
		}
	}
	metrics := string(s.Do(t, "GET", "/metrics", nil).Body)
	for _, want := range []string{`xtrace_http_requests_total{code="400",route="POST /v1/metrics/batch"} 2`, `xtrace_http_requests_total{code="408",route="POST /v1/metrics/batch"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `code="500"`) {
		t.Errorf("client body errors counted as 500s")
	}
}
