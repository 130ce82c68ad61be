package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// TestFindAndReadSeriesEqualsFindThenRead: the one-statement lookup and read
// returns what FindSeries and ReadSeries return, across raw rows and
// compacted windows; it leaves the read to the caller when more series are
// found than it may read, and when late points need more statements.
func TestFindAndReadSeriesEqualsFindThenRead(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 2, 14, 12, 10, 0, 0, time.UTC)
	var pts []metrics.Point
	for i, series := range []string{"a", "b", "c"} {
		for ts := now.Add(-3 * time.Hour); ts.Before(now); ts = ts.Add(15 * time.Second) {
			pts = append(pts, pt("find_read", map[string]string{"s": series, "pool": "p"}, float64(i)+float64(ts.Unix()%97)/10, ts))
		}
	}
	pts = append(pts, pt("find_read", map[string]string{"s": "old", "pool": "p"}, 1, now.Add(-5*time.Hour))) // outside the range
	if err := s.WritePoints(ctx, "default", pts); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctx, now, time.Minute); err != nil { // 12:05–12:10 stays raw
		t.Fatal(err)
	}
	sel := metrics.Selector{Name: "find_read", Labels: map[string]string{"pool": "p"}, From: now.Add(-150 * time.Minute), To: now, Limit: 10}
	req := metrics.ReadRequest{From: sel.From, To: sel.To, Step: time.Minute, Agg: metrics.AggAvg}

	check := func(what string, wantRead bool) {
		t.Helper()
		found, data, read, err := s.FindAndReadSeries(ctx, "default", sel, req, 3)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.FindSeries(ctx, "default", sel)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(found) != fmt.Sprint(want) {
			t.Fatalf("%s: found %v, FindSeries %v", what, found, want)
		}
		if read != wantRead {
			t.Fatalf("%s: read=%v, want %v", what, read, wantRead)
		}
		if !read {
			return
		}
		r := req
		for _, f := range found {
			r.IDs = append(r.IDs, f.ID)
		}
		wantData, err := s.ReadSeries(ctx, "default", r)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(data, wantData) {
			t.Fatalf("%s: data differs from ReadSeries:\n got %+v\nwant %+v", what, data, wantData)
		}
	}
	check("three series, raw and compacted", true)

	sel.Labels = map[string]string{"s": "a"}
	req.Rollups, req.Step, req.Agg = true, 30*time.Minute, metrics.AggMax
	check("one series, from rollups", true)

	sel.Labels = nil
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("find_read", map[string]string{"s": "d"}, 5, now.Add(-time.Minute))}); err != nil {
		t.Fatal(err)
	}
	check("four series, more than it may read", false)

	sel.Labels = map[string]string{"s": "a"}
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("find_read", map[string]string{"s": "a", "pool": "p"}, 42, now.Add(-2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	check("a late point in a compacted window", false)
}
