package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The metric tables are range-partitioned by time, and partition names carry
// their range so that retention and compaction find them by name: raw points
// by compaction window (once a window is compacted its partition is empty and
// dropped, which returns its space), chunks by day (retention drops whole days).
type partitioning struct {
	parent string
	prefix string
	width  time.Duration
	layout string
	// with: storage parameters of new partitions.
	with string
}

var (
	// Raw partitions fill within minutes: have them analysed early, so that
	// queries over the hot window are planned from real row counts.
	rawPartitions = partitioning{parent: "metric_points", prefix: "metric_points_m", width: RawWindow, layout: "200601021504",
		with: "autovacuum_analyze_threshold = 2000, autovacuum_analyze_scale_factor = 0.05"}
	// fiveMinuteRawPartitions are the raw partitions of schema versions whose raw window was 5 minutes.
	fiveMinuteRawPartitions = partitioning{parent: "metric_points", prefix: "metric_points_w", width: 5 * time.Minute, layout: "200601021504"}
	// legacyRawPartitions are the daily raw partitions of schema versions before the tiers.
	legacyRawPartitions = partitioning{parent: "metric_points", prefix: "metric_points_p", width: 24 * time.Hour, layout: "20060102"}
	// Chunk partitions keep rows short (toast_tuple_target) so that the samples
	// live out of line and reading rollups does not read them.
	chunkPartitions = partitioning{parent: "metric_chunks", prefix: "metric_chunks_p", width: 24 * time.Hour, layout: "20060102",
		with: "toast_tuple_target = 128"}
)

func (p partitioning) start(t time.Time) time.Time { return t.UTC().Truncate(p.width) }

// name is the partition's table name: its prefix and start, and its end too
// when it is wider than one window (a back-fill's partition).
func (p partitioning) name(start, end time.Time) string {
	n := p.prefix + start.UTC().Format(p.layout)
	if !end.Equal(start.Add(p.width)) {
		n += "_" + end.UTC().Format(p.layout)
	}
	return n
}

// bounds reads a partition's range back from its name.
func (p partitioning) bounds(name string) (start, end time.Time, ok bool) {
	if !strings.HasPrefix(name, p.prefix) {
		return start, end, false
	}
	from, to, wide := strings.Cut(name[len(p.prefix):], "_")
	start, err := time.Parse(p.layout, from)
	if err != nil {
		return start, end, false
	}
	if !wide {
		return start, start.Add(p.width), true
	}
	end, err = time.Parse(p.layout, to)
	return start, end, err == nil && end.After(start)
}

// partitionKey identifies a partition in the cache of known ones.
type partitionKey struct {
	parent string
	start  time.Time
}

func dayOf(t time.Time) time.Time { return chunkPartitions.start(t) }

// partitionLockTimeout bounds how long partition DDL waits for a lock, so
// that it never holds up readers and writers behind it for long.
const partitionLockTimeout = "2s"

// narrowWindowsPerWrite is how many missing raw windows a write may get a
// partition each. A write that needs more is a back-fill: its missing windows
// in one chunk window share a partition, so that one push spanning the whole
// retention creates a partition per chunk window (12 a day), not per raw
// window (1,440 a day), and a partition count an attacker cannot multiply.
const narrowWindowsPerWrite = 2

// ClosedTimeWindow is the width of the partitions that hold raw points of
// time the compactor has already closed (a remote-write queue's backlog, a
// replay of the last hours): those are compacted at the next pass whatever
// their width, so one partition takes in a quarter of an hour of them rather
// than one per raw window. Creating a partition costs more the more the
// table has (a day of minutes one at a time took 12 s of DDL).
const ClosedTimeWindow = 15 * time.Minute

// EnsurePartitions creates the raw partitions (windows) that hold the given
// times: a partition per raw window, or, for a back-fill, one per chunk
// window; windows already closed share one per ClosedTimeWindow.
func (s *Store) EnsurePartitions(ctx context.Context, times ...time.Time) error {
	return s.ensurePartitions(ctx, rawPartitions, times, narrowWindowsPerWrite, ClosedBefore(s.now()))
}

// ensurePartitions creates the partitions of p that hold the given times.
// Known partitions cost nothing. When more than narrow windows are missing,
// those of one chunk window are covered together. Each partition is created
// as a table of its own and then attached, which locks the parent only in
// SHARE UPDATE EXCLUSIVE mode: reads and writes of other partitions go on
// while it happens. Missing windows before closed (zero: none) are covered a
// ClosedTimeWindow at a time, never past closed.
func (s *Store) ensurePartitions(ctx context.Context, p partitioning, times []time.Time, narrow int, closed time.Time) error {
	var missing []time.Time
	seen := map[time.Time]bool{}
	for _, t := range times {
		start := p.start(t)
		if seen[start] {
			continue
		}
		seen[start] = true
		if _, ok := s.partitions.Load(partitionKey{p.parent, start}); !ok {
			missing = append(missing, start)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Before(missing[j]) })
	if len(missing) > 0 && p.parent == rawPartitions.parent {
		// A day's chunk partition exists before its first raw row: a query
		// fixes its partitions when it is planned and its snapshot a moment
		// later, so rows compacted in that moment into a partition attached
		// in it would be in neither (see Compact).
		if err := s.ensurePartitions(ctx, chunkPartitions, missing, len(missing), time.Time{}); err != nil {
			return err
		}
	}
	runs := partitionRuns(p, missing, narrow, closed)
	for len(runs) > 0 {
		n := min(len(runs), partitionsPerTransaction)
		if err := s.createPartitions(ctx, p, runs[:n]); err != nil {
			return classify(fmt.Errorf("create partitions of %s: %w", p.parent, err))
		}
		s.rememberPartitions(p, runs[:n])
		runs = runs[n:]
	}
	return nil
}

// partitionRuns plans the partitions that cover the missing windows of p
// (window starts, sorted): one per window, one per chunk window when more
// than narrow are missing (a back-fill), and windows before closed (zero:
// none) a ClosedTimeWindow at a time, never past closed.
func partitionRuns(p partitioning, missing []time.Time, narrow int, closed time.Time) []timeRange {
	var runs []timeRange
	for i := 0; i < len(missing); {
		run := timeRange{missing[i], missing[i].Add(p.width)}
		i++
		switch {
		case len(missing) > narrow && p.width < ChunkWindow:
			for ; i < len(missing) && missing[i].Truncate(ChunkWindow).Equal(run.from.Truncate(ChunkWindow)); i++ {
				run.to = missing[i].Add(p.width)
			}
		case run.from.Before(closed):
			run.from = run.from.Truncate(ClosedTimeWindow)
			run.to = run.from.Add(ClosedTimeWindow)
			if closed.Before(run.to) {
				run.to = closed
			}
			for i < len(missing) && missing[i].Before(run.to) {
				i++
			}
		}
		runs = append(runs, run)
	}
	return runs
}

// rememberPartitions notes that the runs of p are covered, so writes into
// them skip the DDL.
func (s *Store) rememberPartitions(p partitioning, runs []timeRange) {
	for _, run := range runs {
		for w := run.from; w.Before(run.to); w = w.Add(p.width) {
			s.partitions.Store(partitionKey{p.parent, w}, struct{}{})
		}
	}
}

// timeRange is [from, to).
type timeRange struct{ from, to time.Time }

// partitionsPerTransaction bounds the runs one transaction covers: a
// back-fill over the whole retention needs hundreds of partitions, and one
// transaction (one lock, one listing) per partition made such a push take
// seconds; each new table holds a few locks until commit, so not all at once.
const partitionsPerTransaction = 32

// createPartitions covers each run with partitions of p, in one transaction.
func (s *Store) createPartitions(ctx context.Context, p partitioning, runs []timeRange) error {
	attached := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		leave, err := s.lockPartitionDDL(ctx, tx)
		if err != nil {
			return err
		}
		defer leave() // the lock lasts until commit, after this
		attached, err = coverRuns(ctx, tx, p, runs)
		return err
	})
	if err == nil && attached {
		s.renewPartitionViews(ctx, p.parent)
	}
	return err
}

// lockPartitionDDL takes lockPartitions exclusively for tx, waiting (like
// the DDL that follows) at most partitionLockTimeout for each lock, so that
// partition DDL never holds up readers and writers behind it for long.
// leave logs the end of the exclusive section.
func (s *Store) lockPartitionDDL(ctx context.Context, tx pgx.Tx) (leave func(), err error) {
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
		return nil, err
	}
	if err := lockTx(ctx, tx, lockPartitions); err != nil {
		return nil, err
	}
	return s.exclusiveSection(ctx, lockPartitions), nil
}

// coverRuns creates and attaches, in tx, a partition of p for every stretch
// of the runs that none covers yet (ours, another replica's, or a legacy
// daily one); attached says whether it made any. The caller holds
// lockPartitionDDL.
func coverRuns(ctx context.Context, tx pgx.Tx, p partitioning, runs []timeRange) (attached bool, err error) {
	parts, err := listPartitions(ctx, tx, p.parent)
	if err != nil {
		return false, err
	}
	for _, run := range runs {
		for from := run.from; from.Before(run.to); {
			start, end := uncoveredRun(parts, p.width, from, run.to)
			if !start.Before(end) {
				break
			}
			name := p.name(start, end)
			table := pgx.Identifier{name}.Sanitize()
			create := "CREATE TABLE IF NOT EXISTS " + table + " (LIKE " + p.parent + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
			if p.with != "" {
				create += " WITH (" + p.with + ")"
			}
			if _, err := tx.Exec(ctx, create); err != nil {
				return false, fmt.Errorf("%s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, attachSQL(p.parent, table, start, end)); err != nil {
				return false, fmt.Errorf("%s: %w", name, err)
			}
			parts = append(parts, Partition{Name: name, Start: start, End: end, parent: p.parent})
			attached = true
			from = end
		}
	}
	return attached, nil
}

// renewPartitionViews makes every session read parent's partitions afresh;
// it follows every ATTACH the store commits. A session that builds its view
// of a table's partitions while an ATTACH commits can keep a view without
// the new partition until the table changes again (PostgreSQL 15: in a
// reproduction with readers on other sessions, one kept missing the newest
// partition's rows in 5 runs of about 170; one more invalidation healed it).
// Setting a column's statistics target to its own value changes nothing but
// sends that invalidation; it takes the same lock as ATTACH. A failure is
// logged, not returned: the partitions exist, and the next one made renews
// the views.
func (s *Store) renewPartitionViews(ctx context.Context, parent string) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
			return err
		}
		var target int
		if err := tx.QueryRow(ctx, "SELECT coalesce(attstattarget, -1) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'series_id'",
			parent).Scan(&target); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN series_id SET STATISTICS %d", parent, target))
		return err
	})
	if err != nil {
		s.log.WarnContext(ctx, "could not renew the sessions' view of new partitions; the next partition made will", "table", parent, "error", err)
	}
}

// attachSQL attaches table to parent for [start, end).
func attachSQL(parent, table string, start, end time.Time) string {
	return fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
		parent, table, start.Format(time.RFC3339), end.Format(time.RFC3339))
}

// uncoveredRun is the first run of width-wide windows in [from, to) that no
// partition holds; start == end when every window is held.
func uncoveredRun(parts []Partition, width time.Duration, from, to time.Time) (start, end time.Time) {
	covered := func(w time.Time) bool {
		for _, p := range parts {
			if !w.Before(p.Start) && w.Before(p.End) {
				return true
			}
		}
		return false
	}
	start = from
	for start.Before(to) && covered(start) {
		start = start.Add(width)
	}
	end = start
	for end.Before(to) && !covered(end) {
		end = end.Add(width)
	}
	return start, end
}

// forgetPartitions drops what this replica knows of the raw partitions of
// the given times, so the next write checks (and creates) them again.
func (s *Store) forgetPartitions(times []time.Time) {
	for _, t := range times {
		s.partitions.Delete(partitionKey{rawPartitions.parent, rawPartitions.start(t)})
		s.partitions.Delete(partitionKey{rawPartitions.parent, legacyRawPartitions.start(t)})
	}
}

// PartitionsAhead is how far ahead of now EnsurePartitionsAhead makes raw
// partitions. Not more: every partition of the points table costs each
// query a little (300 empty ones added 0.9 ms to a 1 ms query).
const PartitionsAhead = 15 * time.Minute

// EnsurePartitionsAhead creates the raw partitions of the next
// PartitionsAhead and the chunk partitions of today and the next `days` days.
func (s *Store) EnsurePartitionsAhead(ctx context.Context, now time.Time, days int) error {
	var windows []time.Time
	for w := time.Duration(0); w <= PartitionsAhead; w += RawWindow {
		windows = append(windows, now.Add(w))
	}
	// The hot window's partitions are one raw window each, however many.
	if err := s.ensurePartitions(ctx, rawPartitions, windows, len(windows), time.Time{}); err != nil {
		return err
	}
	var dayTimes []time.Time
	for i := 0; i <= days; i++ {
		dayTimes = append(dayTimes, now.AddDate(0, 0, i))
	}
	return s.ensurePartitions(ctx, chunkPartitions, dayTimes, len(dayTimes), time.Time{})
}

// Partition is one time partition of a metric table.
type Partition struct {
	Name       string
	Start, End time.Time
	parent     string
	oid        uint32 // the table's (tableoid of its rows)
}

// Day is the UTC day the partition starts in.
func (p Partition) Day() time.Time { return dayOf(p.Start) }

// ListPartitions returns the partitions of the raw points table, oldest first.
func (s *Store) ListPartitions(ctx context.Context) ([]Partition, error) {
	parts, err := listPartitions(ctx, s.pool, rawPartitions.parent)
	return parts, classify(err)
}

// ListChunkPartitions returns the partitions of the chunk table, oldest first.
func (s *Store) ListChunkPartitions(ctx context.Context) ([]Partition, error) {
	parts, err := listPartitions(ctx, s.pool, chunkPartitions.parent)
	return parts, classify(err)
}

func listPartitions(ctx context.Context, db querier, parent string) ([]Partition, error) {
	rows, err := db.Query(ctx, `
		SELECT c.oid, c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass
		ORDER BY c.relname`, parent)
	if err != nil {
		return nil, err
	}
	var out []Partition
	var oid uint32
	var n string
	_, err = pgx.ForEachRow(rows, []any{&oid, &n}, func() error {
		for _, p := range []partitioning{rawPartitions, fiveMinuteRawPartitions, legacyRawPartitions, chunkPartitions} {
			if p.parent != parent {
				continue
			}
			if start, end, ok := p.bounds(n); ok {
				out = append(out, Partition{Name: n, Start: start, End: end, parent: parent, oid: oid})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// DropPartition drops one partition of a metric table. It is detached
// CONCURRENTLY first, so readers and writers of other partitions are not
// blocked, then dropped as a table of its own. With ifEmpty, a partition that
// still (or again) holds rows once detached is attached back, not dropped,
// and dropped reports false.
func (s *Store) DropPartition(ctx context.Context, p Partition) error {
	_, err := s.dropPartition(ctx, p, false)
	return err
}

func (s *Store) dropPartition(ctx context.Context, p Partition, ifEmpty bool) (dropped bool, err error) {
	parent := p.parent
	if parent == "" {
		parent = rawPartitions.parent
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, classify(err)
	}
	defer conn.Release()
	unlock, err := lockSession(ctx, conn, lockPartitions)
	if err != nil {
		return false, classify(err)
	}
	defer unlock()
	defer s.exclusiveSection(ctx, lockPartitions)()
	table := pgx.Identifier{p.Name}.Sanitize()
	hasRows := func() (bool, error) { // a table already gone has none
		var rows bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+")").Scan(&rows); err != nil && !isUndefinedTable(err) {
			return false, classify(err)
		}
		return rows, nil
	}
	if ifEmpty {
		// Late writes hold this lock shared until they commit, so a partition
		// empty now stays empty while it is detached: its rows never vanish
		// from readers for the time of a detach and re-attach.
		//
		// A detach interrupted by a crash left the partition pending: its
		// rows are hidden from readers until the detach is finished below
		// (and the partition attached back if it holds rows).
		var pending bool
		if err := conn.QueryRow(ctx, "SELECT coalesce((SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass($1)), false)",
			table).Scan(&pending); err != nil {
			return false, classify(err)
		}
		if rows, err := hasRows(); err != nil || (rows && !pending) {
			return false, err
		}
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE "+parent+" DETACH PARTITION "+table+" CONCURRENTLY"); err != nil {
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55000": // an earlier detach was interrupted: complete it
			if _, err := conn.Exec(ctx, "ALTER TABLE "+parent+" DETACH PARTITION "+table+" FINALIZE"); err != nil {
				return false, classify(fmt.Errorf("finish detaching partition %s: %w", p.Name, err))
			}
		case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42809"): // gone, or no longer a partition
		default:
			return false, classify(fmt.Errorf("detach partition %s: %w", p.Name, err))
		}
	}
	for w := p.Start; w.Before(p.End); w = w.Add(RawWindow) { // every window it held (a chunk partition: its day)
		s.partitions.Delete(partitionKey{parent, w})
	}
	if ifEmpty {
		// Detached, nobody can write into it any more: if a late point got in
		// all the same (a writer whose clock is far behind), keep the
		// partition (attached again) for the next compaction.
		if rows, err := hasRows(); err != nil || rows {
			if err == nil {
				if _, err = conn.Exec(ctx, attachSQL(parent, table, p.Start, p.End)); err == nil {
					s.renewPartitionViews(ctx, parent)
				}
			}
			return false, classify(err)
		}
	}
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		return false, classify(fmt.Errorf("drop partition %s: %w", p.Name, err))
	}
	return true, nil
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
