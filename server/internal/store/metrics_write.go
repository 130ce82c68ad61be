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
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// DefaultEnvironment is the environment of pushed metrics (the push API has none).
const DefaultEnvironment = "default"

// WritePoints stores a group of validated points. The fast path COPYs
// straight into the keyed points table; when the group repeats an existing
// (series, ts) it falls back to an upsert in which the last write wins, and
// within the group later points replace earlier ones with the same identity.
// Series seen for the first time are created in the same transaction as
// their points, so a failed write leaves no series without points behind.
func (s *Store) WritePoints(ctx context.Context, project string, points []metrics.Point) error {
	if len(points) == 0 {
		return nil
	}
	err := s.writePoints(ctx, project, points, false)
	for attempt := 1; attempt < noPartitionAttempts && isNoPartition(err); attempt++ {
		// A retention pass elsewhere (the CronJob) dropped a day this replica
		// believed existed, or a compaction pass dropped an emptied raw
		// partition between its creation and this write: forget what this
		// replica knew of those windows and try again, this time making the
		// partitions in the write's own transaction, so that none can go
		// before the points are in.
		s.forgetPartitions(pointWindows(points))
		err = s.writePoints(ctx, project, points, true)
	}
	return classify(err)
}

// PreparePartitions creates the raw partitions that points need, before
// they are written: a back-fill's DDL (hundreds of partitions, seconds of
// work) then runs under its own request's deadline, not inside a group
// commit that other clients' points wait on. Known partitions cost nothing.
func (s *Store) PreparePartitions(ctx context.Context, points []metrics.Point) error {
	return s.EnsurePartitions(ctx, pointWindows(points)...)
}

// writePoints writes points in one transaction (or one COPY). With
// makePartitions, the transaction itself creates the raw partitions the
// points need, under lockPartitions held exclusively until commit: a
// compaction drops an emptied partition under the same lock, so it cannot
// drop one made for this write between its creation and the write, as it
// can when they are made beforehand (a compactor that keeps passing over
// closed time can do that to every retry).
func (s *Store) writePoints(ctx context.Context, project string, points []metrics.Point, makePartitions bool) error {
	windows := pointWindows(points)
	var err error
	if makePartitions {
		// The transaction makes the raw partitions; only their days' chunk
		// partitions are made beforehand (see ensurePartitions).
		err = s.ensurePartitions(ctx, chunkPartitions, windows, len(windows), time.Time{})
	} else {
		err = s.EnsurePartitions(ctx, windows...)
	}
	if err != nil {
		return err
	}
	if s.afterPartitions != nil {
		s.afterPartitions()
	}
	ids, missing, err := s.cachedSeriesIDs(ctx, project, points)
	if err != nil {
		return err
	}
	late := hasLatePoints(points, s.now())
	if len(missing.names) == 0 && !late && !makePartitions {
		// Fast path: one COPY, atomic on its own (no explicit transaction,
		// fewer round trips). It fails as a whole when the group repeats an
		// existing (series, ts); then upsert.
		order := seriesOrder(points, ids)
		err = s.copyPoints(ctx, pointsCopy(points, ids, order))
		if err != nil && isUniqueViolation(err) {
			err = pgx.BeginFunc(ctx, s.writes, func(tx pgx.Tx) error {
				return upsertPoints(ctx, tx, dedupe(points, ids, order))
			})
		}
		if err != nil {
			return err
		}
		s.latest.add(points, ids)
		return nil
	}
	today := dayOf(time.Now())
	var made []timeRange
	err = pgx.BeginFunc(ctx, s.writes, func(tx pgx.Tx) error {
		switch {
		case makePartitions:
			leave, err := s.lockPartitionDDL(ctx, tx)
			if err != nil {
				return err
			}
			defer leave()
			starts := slices.SortedFunc(slices.Values(windows), time.Time.Compare)
			runs := partitionRuns(rawPartitions, starts, narrowWindowsPerWrite, ClosedBefore(s.now()))
			attached, err := coverRuns(ctx, tx, rawPartitions, runs)
			if err != nil {
				return fmt.Errorf("create partitions of %s: %w", rawPartitions.parent, err)
			}
			if attached {
				made = runs
			}
			// The points wait for locks as long as any write does.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = DEFAULT"); err != nil {
				return err
			}
		case late:
			// The compactor drops closed raw partitions it has emptied; it
			// holds this lock exclusively while it checks and detaches one,
			// so no late point can land in a partition on its way out.
			if err := lockTxShared(ctx, tx, lockPartitions); err != nil {
				return err
			}
		}
		if len(missing.names) > 0 {
			found, err := upsertSeries(ctx, tx, project, missing.names, missing.labels, today)
			if err != nil {
				return err
			}
			missing.assign(found, ids)
		}
		order := seriesOrder(points, ids)
		// A savepoint: when the group repeats stored points, only the COPY is undone.
		copyErr := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			return pointsCopy(points, ids, order).send(ctx, sp.Conn().PgConn())
		})
		if copyErr != nil && isUniqueViolation(copyErr) {
			copyErr = upsertPoints(ctx, tx, dedupe(points, ids, order))
		}
		return copyErr
	})
	if err != nil {
		return err
	}
	if made != nil {
		s.rememberPartitions(rawPartitions, made)
		s.renewPartitionViews(ctx, rawPartitions.parent)
	}
	s.latest.add(points, ids)
	for j := range missing.names { // only committed series enter the cache
		s.series.put(seriesKey{project, missing.names[j], missing.labels[j]}, cachedSeries{id: ids[missing.at[j][0]], seen: today})
	}
	return nil
}

// noPartitionAttempts bounds the writes of one group that find a partition
// gone. A retry makes its partitions itself, so no pass can take them away
// before it writes; the third try is for a session whose view of the
// partitions missed one attached a moment before (see renewPartitionViews).
const noPartitionAttempts = 3

// copyPoints runs a COPY of points on a connection of its own (atomic by itself).
func (s *Store) copyPoints(ctx context.Context, body *pointCopy) error {
	return s.writes.AcquireFunc(ctx, func(c *pgxpool.Conn) error { return body.send(ctx, c.Conn().PgConn()) })
}

// lateMargin is how long before the compactor may close a raw window (its
// end plus CompactionGrace) a write into it starts to count as late: room
// for clocks that differ between replicas.
const lateMargin = time.Minute

// hasLatePoints says whether any point falls in a raw window that the
// compactor may already be closing, by now.
func hasLatePoints(points []metrics.Point, now time.Time) bool {
	limit := now.Add(-CompactionGrace + lateMargin)
	for i := range points {
		if !rawPartitions.start(points[i].Time).Add(RawWindow).After(limit) {
			return true
		}
	}
	return false
}

// pointWindows returns one time per raw partition (window) of the points.
// It runs twice per push (PreparePartitions, then the commit), so a point in
// the same window as the one before it (most of a fleet's snapshot) skips
// the map.
func pointWindows(points []metrics.Point) []time.Time {
	var windows []time.Time
	seen := map[time.Time]bool{}
	for i := range points {
		w := rawPartitions.start(points[i].Time)
		if n := len(windows); n > 0 && windows[n-1].Equal(w) {
			continue
		}
		if !seen[w] {
			seen[w] = true
			windows = append(windows, w)
		}
	}
	return windows
}

// isNoPartition: a row's day has no partition (SQLSTATE 23514 on a partitioned insert).
func isNoPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}

// seriesOrder returns the indexes of points ordered by (series, ts), stable:
// among equal keys the later arrival stays last (and wins in dedupe).
func seriesOrder(points []metrics.Point, ids []int64) []int32 {
	type key struct {
		id, sec  int64
		nsec, at int32
	}
	keys := make([]key, len(points))
	for i := range points {
		t := points[i].Time
		keys[i] = key{ids[i], t.Unix(), int32(t.Nanosecond()), int32(i)}
	}
	// The arrival index as the last key makes the order stable, and lets
	// pdqsort sort flat structs instead of a stable merge through indexes.
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.id, b.id); c != 0 {
			return c
		}
		if c := cmp.Compare(a.sec, b.sec); c != 0 {
			return c
		}
		if c := cmp.Compare(a.nsec, b.nsec); c != 0 {
			return c
		}
		return cmp.Compare(a.at, b.at)
	})
	order := make([]int32, len(keys))
	for n := range keys {
		order[n] = keys[n].at
	}
	return order
}

// pointsCopy encodes the points for COPY in the given order.
func pointsCopy(points []metrics.Point, ids []int64, order []int32) *pointCopy {
	c := newPointCopy(len(order))
	for _, i := range order {
		c.add(ids[i], points[i].Time, points[i].Value)
	}
	return c
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

// missingSeries are the distinct series of a group that the cache does not
// know, sorted by (name, labels) — one lock order for every writer, so
// concurrent upserts cannot deadlock — with the points that belong to each.
type missingSeries struct {
	names, labels []string
	at            [][]int // indexes of the points of each
}

// assign fills in the ids of the points of each missing series.
func (m *missingSeries) assign(found []int64, ids []int64) {
	for j := range m.names {
		for _, i := range m.at[j] {
			ids[i] = found[j]
		}
	}
}

// cachedSeriesIDs returns the series id of every point the cache knows, and
// the series it does not. Once a UTC day it records that cached series are
// still pushed (so retention keeps them), re-resolving any that retention
// removed meanwhile.
func (s *Store) cachedSeriesIDs(ctx context.Context, project string, points []metrics.Point) ([]int64, missingSeries, error) {
	today := dayOf(time.Now())
	for attempt := 0; ; attempt++ {
		ids, missing, stale, err := s.cachedSeriesOnce(ctx, project, points, today)
		if err != nil || len(stale) == 0 {
			return ids, missing, err
		}
		// Retention deleted series this replica had cached: forget and look again.
		s.series.remove(stale)
		if attempt == 2 {
			return nil, missing, errors.New("resolve series: cached series keep disappearing")
		}
	}
}

func (s *Store) cachedSeriesOnce(ctx context.Context, project string, points []metrics.Point, today time.Time) ([]int64, missingSeries, []seriesKey, error) {
	ids := make([]int64, len(points))
	var missing missingSeries
	missAt := map[seriesKey]int{}
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
		j, queued := missAt[key]
		if !queued {
			j = len(missing.names)
			missAt[key] = j
			missing.names = append(missing.names, points[i].Name)
			missing.labels = append(missing.labels, points[i].LabelsJSON)
			missing.at = append(missing.at, nil)
		}
		missing.at[j] = append(missing.at[j], i)
	}
	if len(touch) > 0 {
		stale, err := s.touchSeries(ctx, touch, today)
		if err != nil || len(stale) > 0 {
			return nil, missing, stale, err
		}
	}
	missing.sort()
	return ids, missing, nil, nil
}

// resolveSeries returns the series id of every point, creating series on
// first sight (outside any write of points: for tools that only need ids).
func (s *Store) resolveSeries(ctx context.Context, project string, points []metrics.Point) ([]int64, error) {
	ids, missing, err := s.cachedSeriesIDs(ctx, project, points)
	if err != nil || len(missing.names) == 0 {
		return ids, err
	}
	today := dayOf(time.Now())
	found, err := upsertSeries(ctx, s.pool, project, missing.names, missing.labels, today)
	if err != nil {
		return nil, err
	}
	missing.assign(found, ids)
	for j := range missing.names {
		s.series.put(seriesKey{project, missing.names[j], missing.labels[j]}, cachedSeries{id: found[j], seen: today})
	}
	return ids, nil
}

// sort orders the missing series by (name, labels).
func (m *missingSeries) sort() {
	idx := make([]int, len(m.names))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		if m.names[idx[a]] != m.names[idx[b]] {
			return m.names[idx[a]] < m.names[idx[b]]
		}
		return m.labels[idx[a]] < m.labels[idx[b]]
	})
	out := missingSeries{names: make([]string, len(idx)), labels: make([]string, len(idx)), at: make([][]int, len(idx))}
	for i, j := range idx {
		out.names[i], out.labels[i], out.at[i] = m.names[j], m.labels[j], m.at[j]
	}
	*m = out
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
func upsertSeries(ctx context.Context, db querier, project string, names, labels []string, today time.Time) ([]int64, error) {
	rows, err := db.Query(ctx, `
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

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
