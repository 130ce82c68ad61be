package app_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// Hostile input that needs some state first: an open reader, a dropped
// partition, a failing write, huge stored values.

// TestNewDayPartitionDoesNotWaitForReaders: a push that needs a new day's
// partition succeeds while another session holds a long read transaction on
// the points table (the partition is attached under a lock that readers and
// writers do not conflict with), and reads go on meanwhile.
func TestNewDayPartitionDoesNotWaitForReaders(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	push(t, s, []point{{"reader_metric", nil, 1, time.Now().Add(-time.Minute)}})
	reader := pgtest.Connect(t, s.DatabaseURL).Begin()
	defer reader.Rollback()
	reader.Exec("SELECT count(*) FROM metric_points") // holds ACCESS SHARE on the table until rollback
	newDay := time.Now().AddDate(0, 0, -20)
	done := make(chan *servertest.Response, 1)
	go func() {
		r, err := s.Try("POST", "/v1/metrics/batch", fmt.Sprintf(`{"metrics":[{"name":"reader_metric","value":2,"timestamp":%q}]}`, newDay.Format(time.RFC3339)))
		if err != nil {
			r = &servertest.Response{Status: -1, Body: []byte(err.Error())}
		}
		done <- r
	}()
	select {
	case r := <-done:
		if r.Status != 200 {
			t.Fatalf("push into a new day while a reader is open: %d %s", r.Status, r.Body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a push into a new day waited for an unrelated open read transaction")
	}
	if got := query(t, s, url.Values{"name": {"reader_metric"}, "from": {newDay.Add(-time.Hour).Format(time.RFC3339)}, "agg": {"count"}, "step": {"1d"}}); len(got.Data) != 1 {
		t.Fatalf("query meanwhile: %+v", got)
	}
}

// TestPushAfterExternalRetentionDroppedTheDay: the CronJob (another process)
// dropped a day's partition that this server believes exists; the next push
// into that day re-creates it instead of failing until a restart.
func TestPushAfterExternalRetentionDroppedTheDay(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	day := time.Now().AddDate(0, 0, -3).UTC()
	body := func(v int) string {
		return fmt.Sprintf(`{"metrics":[{"name":"dropped_day","labels":{"a":"b"},"value":%d,"timestamp":%q},{"name":"kept_day","value":%d}]}`, v, day.Format(time.RFC3339), v)
	}
	if r := s.Do(t, "POST", "/v1/metrics/batch", body(1)); r.Status != 200 {
		t.Fatalf("first push: %d %s", r.Status, r.Body)
	}
	db := pgtest.Connect(t, s.DatabaseURL)
	// What an out-of-process retention (or compaction) pass does; closed
	// time's partition holds a quarter hour.
	quarter := day.Truncate(store.ClosedTimeWindow)
	db.Exec("DROP TABLE metric_points_m" + quarter.Format("200601021504") + "_" + quarter.Add(store.ClosedTimeWindow).Format("200601021504"))
	if r := s.Do(t, "POST", "/v1/metrics/batch", body(2)); r.Status != 200 {
		t.Fatalf("push into the dropped day: %d %s", r.Status, r.Body)
	}
	if n := db.Int("SELECT count(*) FROM metrics WHERE name = 'dropped_day'"); n != 1 {
		t.Fatalf("points in the re-created day: %d, want 1", n)
	}
	if n := db.Int("SELECT count(*) FROM metrics WHERE name = 'kept_day'"); n != 2 {
		t.Fatalf("points of the other day: %d, want 2 (none lost with the retry)", n)
	}
}

// TestFailedWriteLeavesNoSeries: when writing points fails after
// validation, the series created for them are rolled back too, so names and
// labels never list a metric without points.
func TestFailedWriteLeavesNoSeries(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	push(t, s, []point{{"warm_metric", nil, 1, time.Now()}}) // today's partition exists
	db := pgtest.Connect(t, s.DatabaseURL)
	// A write that fails inside the database, after the server validated it.
	db.Exec(`CREATE FUNCTION refuse_666() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.value = 666 THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$`)
	db.Exec(`CREATE TRIGGER refuse_666 BEFORE INSERT ON metric_points FOR EACH ROW EXECUTE FUNCTION refuse_666()`)
	r := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"orphan_metric","labels":{"x":"1"},"value":666},{"name":"orphan_metric","labels":{"x":"2"},"value":1}]}`)
	if r.Status != 500 {
		t.Fatalf("write refused by the database: %d %s, want 500", r.Status, r.Body)
	}
	if n := db.Int("SELECT count(*) FROM metric_series WHERE name = 'orphan_metric'"); n != 0 {
		t.Fatalf("%d series left behind by a failed write", n)
	}
	names := string(s.Do(t, "GET", "/api/public/metrics/names", nil).Body)
	if strings.Contains(names, "orphan_metric") {
		t.Fatalf("names list a metric with no points: %s", names)
	}
}

// TestAggregatesNeverOverflowIntoErrors: sums and averages of huge values
// answer (±Inf where the true value is out of range, as Prometheus does)
// instead of failing the whole query.
func TestAggregatesNeverOverflowIntoErrors(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	base := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	push(t, s, []point{
		{"huge", map[string]string{"s": "a"}, 1e300, base}, {"huge", map[string]string{"s": "a"}, 1e300, base.Add(time.Second)},
		{"huge", map[string]string{"s": "b"}, 1.5e308, base}, {"huge", map[string]string{"s": "b"}, 1.5e308, base.Add(time.Second)},
		{"huge", map[string]string{"s": "c"}, -1.5e308, base}, {"huge", map[string]string{"s": "c"}, 1.5e308, base.Add(time.Second)},
	})
	want := map[string]map[string]string{ // series → agg → value as sent
		"a": {"sum": "2e+300", "avg": "1e+300", "p50": "1e+300", "max": "1e+300"},
		"b": {"sum": `"+Inf"`, "avg": "1.5e+308", "p99": "1.5e+308"},
		"c": {"sum": "0", "avg": "0", "p50": "0"},
	}
	for series, aggs := range want {
		for agg, value := range aggs {
			q := url.Values{"name": {"huge"}, "labels": {`{"s":"` + series + `"}`}, "from": {base.Format(time.RFC3339)},
				"to": {base.Add(time.Minute).Format(time.RFC3339)}, "agg": {agg}}
			r := s.Do(t, "GET", "/api/public/metrics/query?"+q.Encode(), nil)
			if r.Status != 200 || !strings.Contains(string(r.Body), `"value":`+value+`}`) {
				t.Errorf("%s of series %s: %d %s, want value %s", agg, series, r.Status, r.Body, value)
			}
		}
	}
}

// TestListsBoundHugeFields: a page of traces whose inputs are megabytes
// stays small: fields over the list limit are replaced by a note and named;
// getting the trace returns them whole.
func TestListsBoundHugeFields(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	huge := strings.Repeat("x", 2<<20)
	for i := 0; i < 4; i++ {
		body := fmt.Sprintf(`{"trace":{"id":"huge-%d","userId":"big","input":%q,"metadata":{"m":%q}},"observations":[{"id":"huge-obs-%d","output":%q}]}`, i, huge, huge, i, huge)
		if r := s.Do(t, "POST", "/v1/l/batch", body); r.Status != 200 {
			t.Fatalf("push: %d %s", r.Status, r.Body)
		}
	}
	r := s.Do(t, "GET", "/api/public/traces?userId=big", nil)
	if r.Status != 200 || len(r.Body) > 200<<10 {
		t.Fatalf("list of 4 traces with 4 MiB each: %d, %d bytes", r.Status, len(r.Body))
	}
	var list struct {
		Data []struct {
			Input           any      `json:"input"`
			TruncatedFields []string `json:"truncatedFields"`
		}
	}
	r.JSON(t, &list)
	if len(list.Data) != 4 || strings.Join(list.Data[0].TruncatedFields, ",") != "input,metadata" ||
		!strings.Contains(fmt.Sprint(list.Data[0].Input), "too large for a list") {
		t.Fatalf("list items: %+v", list.Data)
	}
	obs := s.Do(t, "GET", "/api/public/observations?traceId=huge-0", nil)
	if !strings.Contains(string(obs.Body), `"truncatedFields":["output"]`) || len(obs.Body) > 100<<10 {
		t.Fatalf("observation list: %d bytes, %s", len(obs.Body), clipped(obs.Body))
	}
	one := s.Do(t, "GET", "/api/public/traces/huge-0", nil)
	if one.Status != 200 || len(one.Body) < 6<<20 || strings.Contains(string(one.Body), "truncatedFields") {
		t.Fatalf("single trace: %d, %d bytes; want every field whole", one.Status, len(one.Body))
	}
}
