package store

import (
	"context"
	"fmt"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// CountNewSeries says whether points would create more than limit series
// (so a request can be refused before it creates too many): it returns how
// many distinct series do not exist yet, stopping as soon as the count
// exceeds limit, or 0 when the request has at most limit distinct series
// (those need no database round trip, and most need no map either).
func (s *Store) CountNewSeries(ctx context.Context, project string, points []metrics.Point, limit int) (int, error) {
	if len(points) <= limit {
		return 0, nil // fewer points than the limit: fewer new series too
	}
	distinct := make(map[seriesKey]struct{}, len(points))
	for i := range points {
		distinct[seriesKey{project, points[i].Name, points[i].LabelsJSON}] = struct{}{}
	}
	if len(distinct) <= limit {
		return 0, nil
	}
	var names, labelSets []string
	for key := range distinct {
		if _, known := s.series.get(key); !known {
			names = append(names, key.name)
			labelSets = append(labelSets, key.labels)
		}
	}
	if len(names) <= limit {
		return len(names), nil
	}
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT 1 FROM unnest($2::text[], $3::text[]) AS u(n, l)
			WHERE NOT EXISTS (SELECT 1 FROM metric_series s
				WHERE s.project_id = $1 AND s.name = u.n AND s.environment = $4
				  AND md5(s.labels::text) = md5(u.l::jsonb::text) AND s.labels = u.l::jsonb)
			LIMIT $5) new_series`,
		project, names, labelSets, DefaultEnvironment, limit+1).Scan(&n)
	if err != nil {
		return 0, classify(fmt.Errorf("count new series: %w", err))
	}
	return n, nil
}
