package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
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
	i := -1
	row := make([]any, 3)
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"metric_points"}, pointColumns, pgx.CopyFromFunc(func() ([]any, error) {
		i++
		if i == len(points) {
			return nil, nil
		}
		row[0], row[1], row[2] = points[i].SeriesID, points[i].Time, points[i].Value
		return row, nil
	}))
	return classify(err)
}

// StorageStats is the size of the metric tables on disk.
type StorageStats struct {
	// TotalBytes: tables, TOAST and indexes of every metric table.
	TotalBytes int64
	// TableBytes: the tables and TOAST alone.
	TableBytes int64
	// Points stored.
	Points int64
}

// MetricStorage vacuums and analyses the metric tables (so sizes are
// settled), then measures them.
func (s *Store) MetricStorage(ctx context.Context) (StorageStats, error) {
	var st StorageStats
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE metric_series, metric_points"); err != nil {
		return st, classify(fmt.Errorf("vacuum: %w", err))
	}
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0), coalesce(sum(pg_table_size(c.oid)), 0)
		FROM pg_class c
		WHERE c.relkind = 'r' AND (c.relname = 'metric_series' OR c.relname LIKE 'metric\_points\_p%')`).Scan(&st.TotalBytes, &st.TableBytes)
	if err != nil {
		return st, classify(err)
	}
	err = s.pool.QueryRow(ctx, "SELECT count(*) FROM metric_points").Scan(&st.Points)
	return st, classify(err)
}

// PartitionPoints counts the points of one daily partition.
func (s *Store) PartitionPoints(ctx context.Context, p Partition) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{p.Name}.Sanitize()).Scan(&n)
	return n, classify(err)
}
