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
	_, err = s.pool.CopyFrom(ctx, pgx.Identifier{"metric_points"}, pointColumns, pointRows(points, ids, order))
	if err != nil && isUniqueViolation(err) {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
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
	rows, err := s.pool.Query(ctx, `UPDATE metric_series SET last_seen = greatest(last_seen, $2::date)
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
	rows, err := s.pool.Query(ctx, `
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
