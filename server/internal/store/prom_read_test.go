package store

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// promFixture stores series with awkward label values and returns them as
// PromQL sees them.
func promFixture(t *testing.T, s *Store, ts time.Time) []labels.Labels {
	t.Helper()
	sets := []map[string]string{
		{"status": "500", "route": "/api"},
		{"status": "503", "route": "/api/v1"},
		{"status": "1500", "route": "/"},
		{"status": "200", "route": "/api", "empty": ""},
		{"status": "404"},
		{"route": "line\nbreak"},
		{"route": "ünïcode"},
		{"route": "a.b", "status": "5xx"},
		{"route": "A.B"},
		{"route": `back\slash`},
		{"route": "percent%_under"},
		{},
	}
	var points []metrics.Point
	var out []labels.Labels
	for i, l := range sets {
		for _, name := range []string{"http_requests_total", "nginx_up"} {
			points = append(points, metrics.Point{Name: name, LabelsJSON: metrics.CanonicalLabels(l), Value: float64(i), Time: ts})
			b := labels.NewBuilder(labels.FromStrings(labels.MetricName, name))
			for k, v := range l {
				b.Set(k, v)
			}
			out = append(out, b.Labels())
		}
	}
	if err := s.WritePoints(context.Background(), "p", points); err != nil {
		t.Fatal(err)
	}
	// Another project's series must never show.
	if err := s.WritePoints(context.Background(), "other", points[:4]); err != nil {
		t.Fatal(err)
	}
	return out
}

// SelectSeries chooses exactly the series Prometheus' matchers choose,
// whatever part of them SQL can take (equality, sets, prefixes, translated
// regular expressions, or nothing) — anchored, absent = empty, as in Prometheus.
func TestSelectSeriesMatchesLikePrometheus(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	all := promFixture(t, s, ts)
	selectors := [][]*labels.Matcher{
		{m(labels.MatchEqual, "__name__", "http_requests_total")},
		{m(labels.MatchEqual, "__name__", "http_requests_total"), m(labels.MatchEqual, "status", "500")},
		{m(labels.MatchRegexp, "status", "5..")},
		{m(labels.MatchRegexp, "status", "5.*"), m(labels.MatchNotEqual, "route", "/api")},
		{m(labels.MatchNotRegexp, "status", "5.."), m(labels.MatchEqual, "__name__", "nginx_up")},
		{m(labels.MatchRegexp, "status", "500|503|404")},
		{m(labels.MatchNotRegexp, "status", "500|503")},
		{m(labels.MatchRegexp, "__name__", "http_.*")},
		{m(labels.MatchRegexp, "__name__", ".+_up|http_requests_total")},
		{m(labels.MatchRegexp, "route", ".*")},
		{m(labels.MatchRegexp, "route", ".+")},
		{m(labels.MatchRegexp, "route", "line.break")},
		{m(labels.MatchRegexp, "route", "(?i)a\\.b")},
		{m(labels.MatchRegexp, "route", "a\\.b")},
		{m(labels.MatchRegexp, "route", "[a-z]\\.[a-z]")},
		{m(labels.MatchRegexp, "route", "[^/]+")},
		{m(labels.MatchRegexp, "route", "/api(/v[0-9])?")},
		{m(labels.MatchRegexp, "route", "\\d+|.{2}")},
		{m(labels.MatchRegexp, "route", "ü.*")},
		{m(labels.MatchRegexp, "route", "percent%_.*")},
		{m(labels.MatchRegexp, "route", "back\\\\slash")},
		{m(labels.MatchEqual, "status", "")},
		{m(labels.MatchNotEqual, "status", "")},
		{m(labels.MatchEqual, "empty", "")},
		{m(labels.MatchRegexp, "status", "|404")},
		{m(labels.MatchNotRegexp, "route", "")},
		{m(labels.MatchEqual, "missing", "x")},
	}
	for _, sel := range selectors {
		var want []string
		for _, ls := range all {
			if matchAll(sel, ls) {
				want = append(want, ls.String())
			}
		}
		for _, pushdown := range []bool{true, false} {
			var got []string
			err := s.scanSeriesOnce(context.Background(), SeriesQuery{Project: "p", Matchers: sel, AnyTime: true, Limit: 100}, pushdown,
				func(_ int64, ls labels.Labels) error { got = append(got, ls.String()); return nil })
			if err != nil {
				t.Fatalf("%v (pushdown %v): %v", sel, pushdown, err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%v (pushdown %v):\n got %q\nwant %q", sel, pushdown, got, want)
			}
		}
		// SQL alone must never drop a true match (it may keep false ones for Go to drop).
		sql, args := selectSeriesSQL(SeriesQuery{Project: "p", Matchers: sel, AnyTime: true}, true)
		n := pgtest.Connect(t, dbURL(t, s)).Int(`SELECT count(*) FROM (`+sql+`) x`, args...)
		if int(n) < len(want) {
			t.Errorf("%v: SQL keeps %d rows, fewer than the %d matches", sel, n, len(want))
		}
	}

	// Label listings agree with the same matchers.
	names, err := s.PromLabelNames(context.Background(), SeriesQuery{Project: "p", AnyTime: true, Limit: 100,
		Matchers: []*labels.Matcher{m(labels.MatchEqual, "__name__", "nginx_up"), m(labels.MatchRegexp, "status", "5..")}})
	if err != nil || !slices.Equal(names, []string{"__name__", "route", "status"}) {
		t.Errorf("label names: %v %v", names, err)
	}
	values, err := s.PromLabelValues(context.Background(), SeriesQuery{Project: "p", AnyTime: true, Limit: 100,
		Matchers: []*labels.Matcher{m(labels.MatchRegexp, "status", "(?i)5XX|50.")}}, "status")
	if err != nil || !slices.Equal(values, []string{"500", "503", "5xx"}) {
		t.Errorf("label values: %v %v", values, err)
	}
	values, err = s.PromLabelValues(context.Background(), SeriesQuery{Project: "p", AnyTime: true, Limit: 1}, "status")
	if err != nil || len(values) != 2 {
		t.Errorf("a listing cut at its limit returns limit+1 values: %v %v", values, err)
	}
}

func m(typ labels.MatchType, name, value string) *labels.Matcher {
	return labels.MustNewMatcher(typ, name, value)
}

func matchAll(ms []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

func dbURL(t *testing.T, s *Store) string {
	t.Helper()
	return s.pool.Config().ConnString()
}

// The regular-expression translation only accepts the subset on which
// PostgreSQL and RE2 agree.
func TestPostgresRegexSubset(t *testing.T) {
	for re, ok := range map[string]bool{
		"5..": true, "a|b": true, "[a-z]+": true, "[^/]+": true, `a\.b`: true, "(x|y)?z*": true,
		"(?i)a": false, `\d`: false, "a{2}": false, "^a": false, "a$": false, "ü": false, "": false,
	} {
		if _, got := postgresRegex(re); got != ok {
			t.Errorf("postgresRegex(%q) translated=%v, want %v", re, got, ok)
		}
	}
}

// A selector that chooses 3 series out of many reads those 3: PostgreSQL's
// plans for the series and the samples use indexes, never a scan of the
// points table.
func TestSelectionReadsOnlyTheChosenSeries(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	const n = 20000
	points := make([]metrics.Point, 0, 2*n)
	for i := 0; i < n; i++ {
		lj := metrics.CanonicalLabels(map[string]string{"replica": fmt.Sprint(i), "model": fmt.Sprint("m", i%100)})
		points = append(points, metrics.Point{Name: "pending_requests", LabelsJSON: lj, Value: 1, Time: ts},
			metrics.Point{Name: "pending_requests", LabelsJSON: lj, Value: 2, Time: ts.Add(time.Minute)})
	}
	if err := s.WritePoints(context.Background(), "p", points); err != nil {
		t.Fatal(err)
	}
	db := pgtest.Connect(t, dbURL(t, s))
	db.Exec(`ANALYZE`)
	q := SeriesQuery{Project: "p", MinT: ts.UnixMilli(), MaxT: ts.Add(time.Hour).UnixMilli(), Limit: 100, Matchers: []*labels.Matcher{
		m(labels.MatchEqual, "__name__", "pending_requests"), m(labels.MatchEqual, "model", "m7"), m(labels.MatchRegexp, "replica", "7|107|207")}}
	chosen, err := s.SelectSeries(context.Background(), q)
	if err != nil || len(chosen) != 3 {
		t.Fatalf("chose %d series (%v), want 3", len(chosen), err)
	}
	sql, args := selectSeriesSQL(q, true)
	explain(t, db, sql, args...)
	ids := []int64{chosen[0].ID, chosen[1].ID, chosen[2].ID}
	explain(t, db, rawPointsSQL, ids, ts, ts.Add(time.Hour))
	read := 0
	err = s.ReadSamples(context.Background(), ids, q.MinT, q.MaxT, math.MaxInt, func(b SampleBatch) error { read += len(b.T); return nil })
	if err != nil || read != 6 {
		t.Fatalf("read %d samples (%v), want 6", read, err)
	}
}

// explain fails the test when the plan scans metric_points or metric_series sequentially.
func explain(t *testing.T, db *pgtest.DB, sql string, args ...any) {
	t.Helper()
	var plan []string
	for _, row := range db.Rows(`EXPLAIN `+sql, args...) {
		plan = append(plan, row[0].(string))
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan on metric_points") || strings.Contains(text, "Seq Scan on metric_series") {
		t.Errorf("plan scans a table:\n%s", text)
	}
}

// Samples come back per series in time order; of points in the same
// millisecond the last one counts, and a sample budget is enforced.
func TestReadSamples(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	lj := metrics.CanonicalLabels(map[string]string{"a": "1"})
	err := s.WritePoints(context.Background(), "p", []metrics.Point{
		{Name: "x", LabelsJSON: lj, Value: 3, Time: ts.Add(2 * time.Second)},
		{Name: "x", LabelsJSON: lj, Value: 1, Time: ts},
		{Name: "x", LabelsJSON: lj, Value: 2, Time: ts.Add(time.Second)},
		{Name: "x", LabelsJSON: lj, Value: 4, Time: ts.Add(time.Second + 300*time.Microsecond)}, // same millisecond as the 2
	})
	if err != nil {
		t.Fatal(err)
	}
	found, err := s.SelectSeries(context.Background(), SeriesQuery{Project: "p", AnyTime: true, Limit: 10, Matchers: []*labels.Matcher{m(labels.MatchEqual, "__name__", "x")}})
	if err != nil || len(found) != 1 {
		t.Fatalf("%v %v", found, err)
	}
	var got SampleBatch
	err = s.ReadSamples(context.Background(), []int64{found[0].ID}, ts.UnixMilli(), ts.Add(time.Minute).UnixMilli(), 100, func(b SampleBatch) error { got = b; return nil })
	want := SampleBatch{SeriesID: found[0].ID, T: []int64{ts.UnixMilli(), ts.UnixMilli() + 1000, ts.UnixMilli() + 2000}, V: []float64{1, 4, 3}}
	if err != nil || got.SeriesID != want.SeriesID || !slices.Equal(got.T, want.T) || !slices.Equal(got.V, want.V) {
		t.Fatalf("got %+v (%v), want %+v", got, err, want)
	}
	err = s.ReadSamples(context.Background(), []int64{found[0].ID}, ts.UnixMilli(), ts.Add(time.Minute).UnixMilli(), 3, func(SampleBatch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "more than 3 samples") {
		t.Fatalf("budget of 3 for 4 rows: %v", err)
	}
}
