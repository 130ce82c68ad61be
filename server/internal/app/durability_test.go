package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// TestAckedWritesSurviveADatabaseCrash pushes from several clients while the
// database crashes and comes back: every 200-acknowledged point must be
// stored, every failure must be a 503 (or 429), and the server must recover by itself.
func TestAckedWritesSurviveADatabaseCrash(t *testing.T) {
	cluster := pgtest.StartPrivate(t)
	dbURL := cluster.URL("postgres")
	s := servertest.Start(t, servertest.Options{DatabaseURL: dbURL})

	var (
		out  servertest.Outcomes // ids: series label "c<client>-b<batch>"
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for b := 0; !stop.Load(); b++ {
				id := fmt.Sprintf("c%d-b%d", c, b)
				var resp *servertest.Response
				var err error
				if c%2 == 0 { // metrics
					var pts []map[string]any
					for i := 0; i < 50; i++ {
						pts = append(pts, map[string]any{"name": "outage", "labels": map[string]string{"batch": id},
							"value": i, "timestamp": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)})
					}
					resp, err = s.Try("POST", "/v1/metrics/batch", map[string]any{"metrics": pts})
				} else { // traces: one trace with two observations
					resp, err = s.Try("POST", "/v1/l/batch", map[string]any{
						"trace":        map[string]any{"id": id, "name": "outage"},
						"observations": []map[string]any{{"id": id + "-o1"}, {"id": id + "-o2", "type": "GENERATION"}},
					})
				}
				out.Record(id, resp, err)
				time.Sleep(2 * time.Millisecond)
			}
		}(c)
	}

	servertest.WaitFor(t, 10*time.Second, "some acknowledged pushes", func() bool { return out.Count(200) >= 20 })
	cluster.Crash()
	servertest.WaitFor(t, 15*time.Second, "readyz to report 503", func() bool {
		r, err := s.Try("GET", "/readyz", nil)
		return err == nil && r.Status == http.StatusServiceUnavailable
	})
	servertest.WaitFor(t, 15*time.Second, "pushes to fail with 503", func() bool { return out.Count(503) >= 4 })

	cluster.Restart()
	s.WaitReady(t, 30*time.Second)
	ackedBefore := out.Count(200)
	servertest.WaitFor(t, 15*time.Second, "pushes to succeed again", func() bool { return out.Count(200) > ackedBefore+5 })
	stop.Store(true)
	wg.Wait()

	statuses, acked := out.Statuses(), out.Acked()
	for code := range statuses {
		if code != 200 && code != 503 && code != 429 {
			t.Errorf("unexpected outcome %d (%d times); want only 200, 503 or 429", code, statuses[code])
		}
	}
	db := pgtest.Connect(t, dbURL)
	stored := map[string]int{}
	for _, row := range db.Rows(`SELECT labels->>'batch', count(*) FROM metric_series s JOIN metric_points p ON p.series_id = s.id WHERE s.name = 'outage' GROUP BY 1`) {
		stored[row[0].(string)] = int(row[1].(int64))
	}
	for _, row := range db.Rows(`SELECT trace_id, count(*) FROM observations GROUP BY 1`) {
		stored[row[0].(string)] = int(row[1].(int64))
	}
	kinds := map[bool]int{}
	for id := range acked {
		isTrace := strings.HasPrefix(id, "c1-") || strings.HasPrefix(id, "c3-")
		kinds[isTrace]++
		want := 50
		if isTrace {
			want = 2
		}
		if stored[id] != want {
			t.Errorf("acknowledged batch %s has %d of %d rows stored", id, stored[id], want)
		}
	}
	if kinds[true] == 0 || kinds[false] == 0 {
		t.Fatalf("acknowledged batches: %d trace, %d metric; want both", kinds[true], kinds[false])
	}
	t.Logf("outcomes: %v; acknowledged batches: %d, all stored", statuses, len(acked))
}

func TestServerStartsBeforeTheDatabase(t *testing.T) {
	cluster := pgtest.StartPrivate(t)
	cluster.Stop()
	// The server starts with the database down: alive, not ready, 503 on writes.
	s := servertest.Start(t, servertest.Options{DatabaseURL: cluster.URL("postgres"), NoWait: true})
	if r := s.Do(t, "GET", "/healthz", nil); r.Status != 200 {
		t.Fatalf("healthz %d", r.Status)
	}
	if r := s.Do(t, "GET", "/readyz", nil); r.Status != 503 || !strings.Contains(string(r.Body), `"status":"not_ready"`) {
		t.Fatalf("readyz %d %s", r.Status, r.Body)
	}
	start := time.Now()
	r := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"x","value":1}]}`)
	if r.Status != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("push with database down: %d %s", r.Status, r.Body)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("503 took %s; must be bounded", took)
	}
	if r := s.Do(t, "GET", "/api/public/health", nil); r.Status != 503 {
		t.Fatalf("public health with database down: %d", r.Status)
	}
	cluster.Restart()
	s.WaitReady(t, 30*time.Second)
	if r := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"x","value":1}]}`); r.Status != 200 {
		t.Fatalf("push after recovery: %d %s", r.Status, r.Body)
	}
}
