package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// DefaultEnvironment is the environment of pushed metrics (the push API has none).
const DefaultEnvironment = "default"

// WritePoints stores a group of validated points in one transaction: the fast
// path COPYs straight into the keyed points table; when the group repeats an
// existing (series, ts) it falls back to an upsert in which the last write wins.
// Within the group, later points replace earlier ones with the same identity.
func (s *Store) WritePoints(ctx context.Context, project string, points []metrics.Point) error {
	if len(points) == 0 {
		return nil
	}
	ids, err := s.resolveSeries(ctx, project, points)
	if err != nil {
		return err
	}
	// Points of one series next to each other: their index entries then split
	// pages "after the new item" (nbtree's localized-monotonic heuristic needs
	// adjacent heap tuples), which keeps the primary key index compact, and a
	// series' points share heap pages, which makes range reads cheaper.
	order := seriesOrder(points, ids)
	var times []time.Time
	for i := range points {
		if len(times) == 0 || !dayOf(times[len(times)-1]).Equal(dayOf(points[i].Time)) {
			times = append(times, points[i].Time)
		}
	}
	if err := s.EnsurePartitions(ctx, times...); err != nil {
		return err
	}
	// Fast path: one COPY straight into the keyed table, atomic on its own
	// (no explicit transaction, no savepoint: fewer round trips). It fails as
	// a whole when the group repeats an existing (series, ts); then upsert.
	_, err = s.Pool.CopyFrom(ctx, pgx.Identifier{"metric_points"}, pointColumns, pointRows(points, ids, order))
	if err != nil && isUniqueViolation(err) {
		err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
			return upsertPoints(ctx, tx, dedupe(points, ids, order))
		})
	}
	return classify(err)
}

// seriesOrder returns the indexes of points ordered by (series, ts), stable:
// among equal keys the later arrival stays last (and wins in dedupe).
func seriesOrder(points []metrics.Point, ids []int64) []int32 {
	order := make([]int32, len(points))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		if c := cmp.Compare(ids[a], ids[b]); c != 0 {
			return c
		}
		return points[a].Time.Compare(points[b].Time)
	})
	return order
}

// pointRows streams points to COPY in the given order without building a row slice per point.
func pointRows(points []metrics.Point, ids []int64, order []int32) pgx.CopyFromSource {
	row := make([]any, 3)
	n := -1
	return pgx.CopyFromFunc(func() ([]any, error) {
		n++
		if n == len(order) {
			return nil, nil
		}
		i := order[n]
		row[0], row[1], row[2] = ids[i], points[i].Time, points[i].Value
		return row, nil
	})
}

// dedupe returns one row per (series, ts) in order; a later point replaces an earlier one.
func dedupe(points []metrics.Point, ids []int64, order []int32) [][]any {
	rows := make([][]any, 0, len(points))
	for _, i := range order {
		if n := len(rows); n > 0 && rows[n-1][0] == ids[i] && rows[n-1][1].(time.Time).Equal(points[i].Time) {
			rows[n-1][2] = points[i].Value // equal keys are adjacent in series order
			continue
		}
		rows = append(rows, []any{ids[i], points[i].Time, points[i].Value})
	}
	return rows
}

var pointColumns = []string{"series_id", "ts", "value"}

func upsertPoints(ctx context.Context, tx pgx.Tx, rows [][]any) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS metric_points_staging
		(series_id bigint, ts timestamptz, value double precision) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"metric_points_staging"}, pointColumns, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO metric_points (series_id, ts, value)
		SELECT series_id, ts, value FROM metric_points_staging
		ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value`)
	return err
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// resolveSeries returns the series id of every point, creating series on
// first sight and recording, once a day, that cached series are still pushed
// (so retention does not remove a series a replica still writes to).
func (s *Store) resolveSeries(ctx context.Context, project string, points []metrics.Point) ([]int64, error) {
	today := dayOf(time.Now())
	for attempt := 0; ; attempt++ {
		ids, stale, err := s.resolveSeriesOnce(ctx, project, points, today)
		if err != nil || len(stale) == 0 {
			return ids, err
		}
		// Retention deleted series this replica had cached: forget and resolve again.
		s.series.remove(stale)
		if attempt == 2 {
			return nil, errors.New("resolve series: cached series keep disappearing")
		}
	}
}

func (s *Store) resolveSeriesOnce(ctx context.Context, project string, points []metrics.Point, today time.Time) ([]int64, []seriesKey, error) {
	ids := make([]int64, len(points))
	var missNames, missLabels []string
	missAt := map[seriesKey][]int{}
	touch := map[seriesKey]int64{}
	for i := range points {
		key := seriesKey{project, points[i].Name, points[i].LabelsJSON}
		if e, ok := s.series.get(key); ok {
			ids[i] = e.id
			if e.seen.Before(today) {
				touch[key] = e.id
			}
			continue
		}
		if _, queued := missAt[key]; !queued {
			missNames = append(missNames, points[i].Name)
			missLabels = append(missLabels, points[i].LabelsJSON)
		}
		missAt[key] = append(missAt[key], i)
	}
	if len(touch) > 0 {
		stale, err := s.touchSeries(ctx, touch, today)
		if err != nil || len(stale) > 0 {
			return nil, stale, err
		}
	}
	if len(missNames) == 0 {
		return ids, nil, nil
	}
	sortPairs(missNames, missLabels) // one lock order for every writer: no deadlocks between upserts
	found, err := s.upsertSeries(ctx, project, missNames, missLabels, today)
	if err != nil {
		return nil, nil, err
	}
	for j := range missNames {
		key := seriesKey{project, missNames[j], missLabels[j]}
		s.series.put(key, cachedSeries{id: found[j], seen: today})
		for _, i := range missAt[key] {
			ids[i] = found[j]
		}
	}
	return ids, nil, nil
}

// sortPairs sorts names and labels together by (name, labels).
func sortPairs(names, labels []string) {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		if names[idx[a]] != names[idx[b]] {
			return names[idx[a]] < names[idx[b]]
		}
		return labels[idx[a]] < labels[idx[b]]
	})
	n2, l2 := make([]string, len(names)), make([]string, len(labels))
	for i, j := range idx {
		n2[i], l2[i] = names[j], labels[j]
	}
	copy(names, n2)
	copy(labels, l2)
}

// touchSeries marks cached series as seen today and returns the cache keys of
// those that no longer exist.
func (s *Store) touchSeries(ctx context.Context, touch map[seriesKey]int64, today time.Time) ([]seriesKey, error) {
	idList := make([]int64, 0, len(touch))
	for _, id := range touch {
		idList = append(idList, id)
	}
	sort.Slice(idList, func(i, j int) bool { return idList[i] < idList[j] })
	rows, err := s.Pool.Query(ctx, `UPDATE metric_series SET last_seen = greatest(last_seen, $2::date)
		WHERE id = ANY($1) RETURNING id`, idList, today)
	if err != nil {
		return nil, classify(fmt.Errorf("touch series: %w", err))
	}
	alive, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, classify(fmt.Errorf("touch series: %w", err))
	}
	exists := make(map[int64]bool, len(alive))
	for _, id := range alive {
		exists[id] = true
	}
	var stale []seriesKey
	for key, id := range touch {
		if exists[id] {
			s.series.put(key, cachedSeries{id: id, seen: today})
		} else {
			stale = append(stale, key)
		}
	}
	return stale, nil
}

// upsertSeries returns ids for distinct (name, labels) pairs, inserting the
// new ones and marking existing ones as seen today. DO UPDATE (rather than DO
// NOTHING) makes RETURNING yield existing rows too, including rows another
// transaction inserts concurrently.
func (s *Store) upsertSeries(ctx context.Context, project string, names, labels []string, today time.Time) ([]int64, error) {
	rows, err := s.Pool.Query(ctx, `
		WITH input AS (
			SELECT ord, n, l::jsonb AS l FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(n, l, ord)
		), upserted AS (
			INSERT INTO metric_series AS s (project_id, environment, name, labels, last_seen)
			SELECT $1, $4, n, l, $5::date FROM input
			ON CONFLICT (project_id, name, environment, md5(labels::text))
			DO UPDATE SET last_seen = greatest(s.last_seen, EXCLUDED.last_seen)
			RETURNING id, name, labels
		)
		SELECT input.ord, upserted.id
		FROM input JOIN upserted ON upserted.name = input.n AND upserted.labels = input.l`,
		project, names, labels, DefaultEnvironment, today)
	if err != nil {
		return nil, classify(fmt.Errorf("resolve series: %w", err))
	}
	ids := make([]int64, len(names))
	found := 0
	var ord, id int64
	_, err = pgx.ForEachRow(rows, []any{&ord, &id}, func() error {
		ids[ord-1] = id
		found++
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("resolve series: %w", err))
	}
	if found != len(names) {
		return nil, fmt.Errorf("resolve series: %d of %d series resolved", found, len(names))
	}
	return ids, nil
}

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

type seriesRow struct {
	id        int64
	labels    map[string]string
	canonical string
}

// QueryMetrics answers a validated query (SPEC §3.5).
func (s *Store) QueryMetrics(ctx context.Context, project string, q *metrics.Query) (*metrics.Result, error) {
	filter := metrics.CanonicalLabels(q.Labels)
	rows, err := s.Pool.Query(ctx, `
		SELECT id, labels FROM metric_series
		WHERE project_id = $1 AND name = $2 AND labels @> $3::jsonb`, project, q.Name, filter)
	if err != nil {
		return nil, classify(fmt.Errorf("find series: %w", err))
	}
	var all []seriesRow
	var r seriesRow
	_, err = pgx.ForEachRow(rows, []any{&r.id, &r.labels}, func() error {
		all = append(all, seriesRow{id: r.id, labels: r.labels})
		r.labels = nil
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("find series: %w", err))
	}

	// Group series: each series alone, or by the values of the group_by keys.
	type group struct {
		labels    map[string]string
		canonical string
		ids       []int64
	}
	byKey := map[string]*group{}
	for _, sr := range all {
		labels := sr.labels
		if len(q.GroupBy) > 0 {
			labels = map[string]string{}
			for _, k := range q.GroupBy {
				if v, ok := sr.labels[k]; ok {
					labels[k] = v
				}
			}
		}
		key := metrics.CanonicalLabels(labels)
		g := byKey[key]
		if g == nil {
			g = &group{labels: labels, canonical: key}
			byKey[key] = g
		}
		g.ids = append(g.ids, sr.id)
	}
	groups := make([]*group, 0, len(byKey))
	for _, g := range byKey {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].canonical < groups[j].canonical })
	res := &metrics.Result{}
	if len(groups) > metrics.MaxSeries {
		groups = groups[:metrics.MaxSeries]
		res.Truncated = true
	}
	if len(groups) == 0 {
		return res, nil
	}
	var seriesIDs []int64
	var groupOf []int32
	for gi, g := range groups {
		for _, id := range g.ids {
			seriesIDs = append(seriesIDs, id)
			groupOf = append(groupOf, int32(gi))
		}
	}

	// Keep at most MaxPointsPerSeries buckets per group, the most recent ones;
	// one more is fetched to know whether anything was dropped.
	sql := `
		SELECT grp, bucket, v, latest FROM (
			SELECT grp, bucket, v, latest, row_number() OVER (PARTITION BY grp ORDER BY bucket DESC) AS rn
			FROM (
				SELECT g.grp, date_bin($3::interval, p.ts, '1970-01-01T00:00:00Z') AS bucket,
				       ` + aggregateSQL[q.Agg] + ` AS v, max(p.ts) AS latest
				FROM unnest($1::bigint[], $2::int[]) AS g(series_id, grp)
				JOIN metric_points p ON p.series_id = g.series_id
				WHERE p.ts >= $4 AND p.ts <= $5
				GROUP BY 1, 2
			) buckets
		) ranked
		WHERE rn <= $6
		ORDER BY grp, bucket`
	prows, err := s.Pool.Query(ctx, sql, seriesIDs, groupOf, q.Step, q.From, q.To, metrics.MaxPointsPerSeries+1)
	if err != nil {
		return nil, classify(fmt.Errorf("query points: %w", err))
	}
	values := make([][]metrics.Sample, len(groups))
	var grp int32
	var bucket, latest time.Time
	var v float64
	_, err = pgx.ForEachRow(prows, []any{&grp, &bucket, &v, &latest}, func() error {
		values[grp] = append(values[grp], metrics.Sample{Timestamp: bucket.UTC(), Value: v})
		if latest.After(res.LatestTS) {
			res.LatestTS = latest.UTC()
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("query points: %w", err))
	}
	for gi, g := range groups {
		vals := values[gi]
		if len(vals) == 0 {
			continue // no points in range: not part of the answer
		}
		if len(vals) > metrics.MaxPointsPerSeries {
			vals = vals[len(vals)-metrics.MaxPointsPerSeries:]
			res.Truncated = true
		}
		res.Series = append(res.Series, metrics.Series{Labels: g.labels, Values: vals})
	}
	return res, nil
}

// MetricNames lists the metric names of a project, sorted.
func (s *Store) MetricNames(ctx context.Context, project string) ([]string, error) {
	rows, err := s.Pool.Query(ctx, `SELECT DISTINCT name FROM metric_series WHERE project_id = $1 ORDER BY name`, project)
	if err != nil {
		return nil, classify(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, classify(err)
}

// MetricLabels lists, for one metric, each label key with its distinct values (sorted).
func (s *Store) MetricLabels(ctx context.Context, project, name string) (map[string][]string, error) {
	rows, err := s.Pool.Query(ctx, `
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
