package app_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestEveryIngestRouteAcceptsGzip: one body reader serves every ingest route,
// so gzip works on all of them, and the size limit applies to the inflated size.
func TestEveryIngestRouteAcceptsGzip(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Env: map[string]string{"XTRACE_MAX_REQUEST_BODY_BYTES": "65536"}})
	routes := []struct{ path, body string }{
		{"/v1/metrics/batch", `{"metrics":[{"name":"gz_metric","labels":{"a":"b"},"value":1}]}`},
		{"/v1/l/batch", `{"trace":{"id":"gz-trace"},"observations":[{"id":"gz-obs"}]}`},
		{"/api/public/ingestion", `{"batch":[{"id":"e1","type":"trace-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"gz-trace-2"}}]}`},
	}
	for _, r := range routes {
		resp := s.Do(t, "POST", r.path, gzipped(t, r.body), "Content-Encoding", "gzip")
		if resp.Status != 200 && resp.Status != 207 {
			t.Errorf("%s gzip: %d %s", r.path, resp.Status, resp.Body)
		}
		// 1 MiB of zeros compresses to ~1 KiB: under the wire limit, over it once inflated.
		bomb := gzipped(t, `{"metrics":[`+strings.Repeat(" ", 1<<20)+`]}`)
		if resp := s.Do(t, "POST", r.path, bomb, "Content-Encoding", "gzip"); resp.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s inflated past the limit: %d %s, want 413", r.path, resp.Status, resp.Body)
		}
		if resp := s.Do(t, "POST", r.path, "not gzip", "Content-Encoding", "gzip"); resp.Status != 400 || !strings.Contains(string(resp.Body), "not gzip data") {
			t.Errorf("%s corrupt gzip: %d %s, want 400 naming gzip", r.path, resp.Status, resp.Body)
		}
		if resp := s.Do(t, "POST", r.path, r.body, "Content-Encoding", "br"); resp.Status != 400 || !strings.Contains(string(resp.Body), "Content-Encoding") {
			t.Errorf("%s unsupported encoding: %d %s, want 400 naming Content-Encoding", r.path, resp.Status, resp.Body)
		}
	}
	db := pgtest.Connect(t, s.DatabaseURL)
	if n := db.Int("SELECT count(*) FROM traces WHERE id IN ('gz-trace', 'gz-trace-2')"); n != 2 {
		t.Errorf("gzip-ingested traces stored: %d, want 2", n)
	}
	if n := db.Int("SELECT count(*) FROM metrics WHERE name = 'gz_metric'"); n != 1 {
		t.Errorf("gzip-pushed points stored: %d, want 1", n)
	}
}

// TestConcurrentLargeBodiesStayWithinMemory sends 64 maximum-size bodies at
// once to the real server binary. The body budget lets only a few be read and
// parsed at a time (the rest wait briefly, then get 429 with Retry-After), so
// the server's peak RSS stays under a bound instead of growing with the
// number of concurrent requests.
func TestConcurrentLargeBodiesStayWithinMemory(t *testing.T) {
	const (
		maxBody  = 20 << 20 // the default XTRACE_MAX_REQUEST_BODY_BYTES
		budget   = 64 << 20 // the default XTRACE_INGEST_MEMORY_BYTES
		clients  = 64
		rssBound = 512 << 20 // documented in the README (limits)
	)
	p := servertest.StartProcess(t, servertest.Options{})
	// Twenty ~1 MiB events that the server must decode but cannot store (no
	// body id): every byte is parsed, nothing is written.
	event := `{"id":"e%d","type":"trace-create","timestamp":"2026-02-14T10:00:00Z","body":{"input":"` + strings.Repeat("x", 1000*1000) + `"}}`
	var events []string
	for i := 0; len(strings.Join(events, ","))+len(event) < maxBody-64; i++ {
		events = append(events, fmt.Sprintf(event, i))
	}
	body := []byte(`{"batch":[` + strings.Join(events, ",") + `]}`)
	baseline := p.PeakRSS(t)

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	var missingRetryAfter int
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", p.URL+"/api/public/ingestion", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+servertest.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[-1]++
				return
			}
			resp.Body.Close()
			statuses[resp.StatusCode]++
			if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
				missingRetryAfter++
			}
		}()
	}
	wg.Wait()
	peak := p.PeakRSS(t)
	t.Logf("%d concurrent %d MiB bodies (budget %d MiB): outcomes %v; peak RSS %d MiB (idle %d MiB, bound %d MiB)",
		clients, len(body)>>20, budget>>20, statuses, peak>>20, baseline>>20, rssBound>>20)
	for code, n := range statuses {
		if code != 207 && code != 429 {
			t.Errorf("%d requests answered %d; want only 207 or 429", n, code)
		}
	}
	if statuses[207] == 0 {
		t.Errorf("no request was processed: %v", statuses)
	}
	if missingRetryAfter > 0 {
		t.Errorf("%d 429s without Retry-After", missingRetryAfter)
	}
	if peak > rssBound {
		t.Errorf("peak RSS %d MiB exceeds the bound of %d MiB", peak>>20, rssBound>>20)
	}
	if n := pgtest.Connect(t, p.DatabaseURL).Int("SELECT count(*) FROM traces"); n != 0 {
		t.Errorf("%d traces stored from invalid events", n)
	}
}
