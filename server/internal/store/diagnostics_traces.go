package store

import (
	"context"
	"fmt"
)

// TraceStorageStats is the size of the trace tables on disk.
type TraceStorageStats struct {
	// TotalBytes: traces, observations and scores with their TOAST and indexes.
	TotalBytes int64
	// TableBytes: the tables and TOAST alone.
	TableBytes int64
	// Traces and Observations stored.
	Traces, Observations int64
}

// TraceStorage vacuums and analyses the trace tables (so sizes are settled),
// then measures them. For benchmarks and capacity planning.
func (s *Store) TraceStorage(ctx context.Context) (TraceStorageStats, error) {
	var st TraceStorageStats
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE traces, observations, scores"); err != nil {
		return st, classify(fmt.Errorf("vacuum: %w", err))
	}
	err := s.pool.QueryRow(ctx, `
		SELECT sum(pg_total_relation_size(t)), sum(pg_table_size(t)),
		       (SELECT count(*) FROM traces), (SELECT count(*) FROM observations)
		FROM unnest(ARRAY['traces', 'observations', 'scores']::regclass[]) AS t`).Scan(&st.TotalBytes, &st.TableBytes, &st.Traces, &st.Observations)
	return st, classify(err)
}
