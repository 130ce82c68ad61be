package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

func TestWritePoolSize(t *testing.T) {
	for maxConns, want := range map[int32]int32{0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 7: 3, 8: 4, 20: 4, 100: 4} {
		if got := writePoolSize(maxConns); got != want {
			t.Errorf("writePoolSize(%d) = %d, want %d", maxConns, got, want)
		}
	}
}

// TestIngestWritesCommitWhileQueriesHoldThePool: metric points and trace
// groups commit on the write pool, so they go through while every
// connection of the query pool is taken, and the pool sizes add up to
// MaxConns.
func TestIngestWritesCommitWhileQueriesHoldThePool(t *testing.T) {
	t.Parallel()
	s := migrated(t) // MaxConns 8
	ctx := context.Background()
	stats := map[string]PoolStats{}
	for _, p := range s.PoolStats() {
		stats[p.Name] = p
	}
	if q, w := stats[PrimaryPool].MaxConns, stats[PrimaryWritePool].MaxConns; q != 4 || w != 4 {
		t.Fatalf("pool sizes: %d for queries, %d for writes; want 4 and 4", q, w)
	}

	// The first write creates the window's partition and the series (DDL and
	// series lookups use the query pool); later ones need only the write pool.
	now := time.Now().UTC()
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("pool_metric", map[string]string{"n": "1"}, 1, now)}); err != nil {
		t.Fatal(err)
	}
	next := now.Add(time.Microsecond) // in the same raw window: no new partition
	if !rawPartitions.start(next).Equal(rawPartitions.start(now)) {
		next = now.Add(-time.Microsecond)
	}
	var held []*pgxpool.Conn
	for range stats[PrimaryPool].MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	before := s.writes.Stat().AcquireCount()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WritePoints(wctx, "default", []metrics.Point{pt("pool_metric", map[string]string{"n": "1"}, 2, next)}); err != nil {
		t.Fatalf("a point with the query pool taken: %v", err)
	}
	raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	ups, err := traces.TraceUpserts(map[string]json.RawMessage{"id": raw("pool-trace"), "name": raw("held")}, traces.NewStamp(now, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteTraces(wctx, "default", []*TraceWrite{PrepareTraceWrite(ups)}); err != nil {
		t.Fatalf("a trace with the query pool taken: %v", err)
	}
	if n := s.writes.Stat().AcquireCount() - before; n < 2 {
		t.Fatalf("the write pool served %d writes, want 2", n)
	}
	for _, c := range held {
		c.Release()
	}
	held = nil
	var points, traceRows int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM metric_points p JOIN metric_series m ON m.id = p.series_id WHERE m.name = 'pool_metric'),
		(SELECT count(*) FROM traces WHERE id = 'pool-trace')`).Scan(&points, &traceRows); err != nil {
		t.Fatal(err)
	}
	if points != 2 || traceRows != 1 {
		t.Fatalf("stored %d points and %d traces, want 2 and 1", points, traceRows)
	}
}
