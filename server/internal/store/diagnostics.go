package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// These functions serve benchmarks and operators' diagnostics: they measure
// the metric tables and provide the raw-COPY baseline that ingest is compared with.

// SeriesIDs returns the id of each point's series, creating missing series
// (the write path's series resolution on its own).
func (s *Store) SeriesIDs(ctx context.Context, project string, points []metrics.Point) ([]int64, error) {
	return s.resolveSeries(ctx, project, points)
}

// RawPoint is a point of an already resolved series.
type RawPoint struct {
	SeriesID int64
	Time     time.Time
	Value    float64
}

// CopyRawPoints COPYs points into the points table as they are: no series
// resolution, no de-duplication, no partition creation. It is the floor that
// the ingest path is measured against.
func (s *Store) CopyRawPoints(ctx context.Context, points []RawPoint) error {
	body := newPointCopy(len(points))
	for _, p := range points {
		body.add(p.SeriesID, p.Time, p.Value)
	}
	return classify(s.copyPoints(ctx, body))
}

// StorageStats is the size of the metric tables on disk.
type StorageStats struct {
	// TotalBytes: tables, TOAST and indexes of every metric table (series,
	// raw points, chunks, latest values).
	TotalBytes int64
	// TableBytes: the tables and TOAST alone.
	TableBytes int64
	// ClosedBytes: the tables that hold closed time (chunks, series, latest values).
	ClosedBytes int64
	// Points stored, RawPoints of them as raw rows (the rest in chunks).
	Points, RawPoints int64
	// Tiers: the table (with TOAST) and index bytes of each kind of table.
	Tiers map[string][2]int64
}

// MetricStorage vacuums and analyses the metric tables (so sizes are
// settled), then measures them.
func (s *Store) MetricStorage(ctx context.Context) (StorageStats, error) {
	var st StorageStats
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE metric_series, metric_points, metric_chunks, metric_latest"); err != nil {
		return st, classify(fmt.Errorf("vacuum: %w", err))
	}
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0), coalesce(sum(pg_table_size(c.oid)), 0),
		       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname NOT LIKE 'metric\_points\_%'), 0)
		FROM pg_class c
		WHERE c.relkind = 'r' AND (c.relname IN ('metric_series', 'metric_latest')
		   OR c.relname LIKE 'metric\_points\_%' OR c.relname LIKE 'metric\_chunks\_%')`).Scan(&st.TotalBytes, &st.TableBytes, &st.ClosedBytes)
	if err != nil {
		return st, classify(err)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT CASE WHEN c.relname LIKE 'metric\_points\_%' THEN 'raw points'
		            WHEN c.relname LIKE 'metric\_chunks\_%' THEN 'chunks' ELSE c.relname END,
		       sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid))
		FROM pg_class c
		WHERE c.relkind = 'r' AND (c.relname IN ('metric_series', 'metric_latest')
		   OR c.relname LIKE 'metric\_points\_%' OR c.relname LIKE 'metric\_chunks\_%')
		GROUP BY 1`)
	if err != nil {
		return st, classify(err)
	}
	st.Tiers = map[string][2]int64{}
	var tier string
	var table, index int64
	if _, err := pgx.ForEachRow(rows, []any{&tier, &table, &index}, func() error {
		st.Tiers[tier] = [2]int64{table, index}
		return nil
	}); err != nil {
		return st, classify(err)
	}
	var compacted int64
	err = s.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM metric_points), (SELECT coalesce(sum(count), 0) FROM metric_chunks)").Scan(&st.RawPoints, &compacted)
	st.Points = st.RawPoints + compacted
	return st, classify(err)
}

// PartitionPoints counts the points of one partition (raw or chunks).
func (s *Store) PartitionPoints(ctx context.Context, p Partition) (int64, error) {
	sql := "SELECT count(*) FROM "
	if p.parent == chunkPartitions.parent {
		sql = "SELECT coalesce(sum(count), 0) FROM "
	}
	var n int64
	err := s.pool.QueryRow(ctx, sql+pgx.Identifier{p.Name}.Sanitize()).Scan(&n)
	return n, classify(err)
}

// CopyRawTraces writes upserts as rows with COPY, merged in memory and
// without locks or reads: the floor the trace write path is measured
// against. The ids must not exist yet.
func (s *Store) CopyRawTraces(ctx context.Context, project string, ups []traces.Upsert) error {
	g := groupUpserts(ups)
	for _, kind := range kindOrder {
		cols := []string{"project_id"}
		for _, c := range entityColumns[kind] {
			cols = append(cols, c.name)
		}
		rows := make([][]any, 0, len(g.keys[kind]))
		for _, id := range g.keys[kind] {
			e := g.fresh[entityKey{kind, id}]
			rows = append(rows, append([]any{project}, entityValues(kind, id, &e)...))
		}
		if len(rows) == 0 {
			continue
		}
		if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{entityTables[kind]}, cols, pgx.CopyFromRows(rows)); err != nil {
			return classify(fmt.Errorf("copy %s: %w", entityTables[kind], err))
		}
	}
	return nil
}
