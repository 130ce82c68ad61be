package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// aggregateSQL maps each aggregation to its SQL expression over (ts, value).
// Only these fixed fragments are ever spliced into query text.
var aggregateSQL = map[metrics.Agg]string{
	metrics.AggAvg:   "avg(p.value)",
	metrics.AggMin:   "min(p.value)",
	metrics.AggMax:   "max(p.value)",
	metrics.AggSum:   "sum(p.value)",
	metrics.AggCount: "count(*)::double precision",
	metrics.AggLast:  "(array_agg(p.value ORDER BY p.ts DESC, p.series_id DESC))[1]",
	metrics.AggP50:   "percentile_cont(0.5) WITHIN GROUP (ORDER BY p.value)",
	metrics.AggP90:   "percentile_cont(0.9) WITHIN GROUP (ORDER BY p.value)",
	metrics.AggP95:   "percentile_cont(0.95) WITHIN GROUP (ORDER BY p.value)",
	metrics.AggP99:   "percentile_cont(0.99) WITHIN GROUP (ORDER BY p.value)",
}

// FindSeries returns the series of sel.Name whose labels contain sel.Labels
// and that have a point in [sel.From, sel.To], at most sel.Limit of them.
func (s *Store) FindSeries(ctx context.Context, project string, sel metrics.Selector) ([]metrics.SeriesRef, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT s.id, s.labels FROM metric_series s
		WHERE s.project_id = $1 AND s.name = $2 AND s.labels @> $3::jsonb
		  AND EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id AND p.ts >= $4 AND p.ts <= $5)
		LIMIT $6`, project, sel.Name, metrics.CanonicalLabels(sel.Labels), sel.From, sel.To, sel.Limit)
	if err != nil {
		return nil, classify(fmt.Errorf("find series: %w", err))
	}
	var out []metrics.SeriesRef
	var r metrics.SeriesRef
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Labels}, func() error {
		out = append(out, r)
		r.Labels = nil
		return nil
	})
	return out, classify(err)
}

// AggregateGroups aggregates the points of each group per bucket, keeping
// the MaxPointsPerSeries+1 most recent buckets of each (one more than an
// answer holds, so the caller knows whether any were dropped).
func (s *Store) AggregateGroups(ctx context.Context, _ string, groups []metrics.Group, q *metrics.Query) ([]metrics.Buckets, error) {
	var seriesIDs []int64
	var groupOf []int32
	for gi, g := range groups {
		for _, id := range g.SeriesIDs {
			seriesIDs = append(seriesIDs, id)
			groupOf = append(groupOf, int32(gi))
		}
	}
	sql := `
		SELECT grp, bucket, v, latest FROM (
			SELECT grp, bucket, v, latest, row_number() OVER (PARTITION BY grp ORDER BY bucket DESC) AS rn
			FROM (
				SELECT g.grp, date_bin($3::interval, p.ts, '1970-01-01T00:00:00Z') AS bucket,
				       ` + aggregateSQL[q.Agg] + ` AS v, max(p.ts) AS latest
				FROM unnest($1::bigint[], $2::int[]) AS g(series_id, grp)
				JOIN metric_points p ON p.series_id = g.series_id
				WHERE p.ts >= $4 AND p.ts <= $5
				  -- NaN, ±Inf and Prometheus' staleness markers (remote-write) are not numbers JSON can carry
				  AND p.value NOT IN ('NaN', 'Infinity', '-Infinity')
				GROUP BY 1, 2
			) buckets
		) ranked
		WHERE rn <= $6
		ORDER BY grp, bucket`
	rows, err := s.pool.Query(ctx, sql, seriesIDs, groupOf, q.Step, q.From, q.To, metrics.MaxPointsPerSeries+1)
	if err != nil {
		return nil, classify(fmt.Errorf("query points: %w", err))
	}
	out := make([]metrics.Buckets, len(groups))
	var grp int32
	var bucket, latest time.Time
	var v float64
	_, err = pgx.ForEachRow(rows, []any{&grp, &bucket, &v, &latest}, func() error {
		b := &out[grp]
		b.Values = append(b.Values, metrics.Sample{Timestamp: bucket.UTC(), Value: v})
		if latest.After(b.Latest) {
			b.Latest = latest
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("query points: %w", err))
	}
	return out, nil
}

// MetricNames lists the metric names of a project, sorted.
func (s *Store) MetricNames(ctx context.Context, project string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT name FROM metric_series WHERE project_id = $1 ORDER BY name`, project)
	if err != nil {
		return nil, classify(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, classify(err)
}

// MetricLabels lists, for one metric, each label key with its distinct values (sorted).
func (s *Store) MetricLabels(ctx context.Context, project, name string) (map[string][]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT kv.key, kv.value
		FROM metric_series s, jsonb_each_text(s.labels) AS kv
		WHERE s.project_id = $1 AND s.name = $2
		ORDER BY 1, 2`, project, name)
	if err != nil {
		return nil, classify(err)
	}
	out := map[string][]string{}
	var k, v string
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		out[k] = append(out[k], v)
		return nil
	})
	return out, classify(err)
}
