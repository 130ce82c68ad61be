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
	rawPartitions = partitioning{parent: "metric_points", prefix: "metric_points_w", width: RawWindow, layout: "200601021504",
		with: "autovacuum_analyze_threshold = 2000, autovacuum_analyze_scale_factor = 0.05"}
	// legacyRawPartitions are the daily raw partitions of schema versions before the tiers.
	legacyRawPartitions = partitioning{parent: "metric_points", prefix: "metric_points_p", width: 24 * time.Hour, layout: "20060102"}
	// Chunk partitions keep rows short (toast_tuple_target) so that the samples
	// live out of line and reading rollups does not read them.
	chunkPartitions = partitioning{parent: "metric_chunks", prefix: "metric_chunks_p", width: 24 * time.Hour, layout: "20060102",
		with: "toast_tuple_target = 128"}
)

func (p partitioning) start(t time.Time) time.Time { return t.UTC().Truncate(p.width) }

func (p partitioning) name(start time.Time) string { return p.prefix + start.UTC().Format(p.layout) }

// partitionKey identifies a partition in the cache of known ones.
type partitionKey struct {
	parent string
	start  time.Time
}

func dayOf(t time.Time) time.Time { return chunkPartitions.start(t) }

// partitionLockTimeout bounds how long partition DDL waits for a lock, so
// that it never holds up readers and writers behind it for long.
const partitionLockTimeout = "2s"

// EnsurePartitions creates the raw partitions (windows) that hold the given times.
func (s *Store) EnsurePartitions(ctx context.Context, times ...time.Time) error {
	return s.ensurePartitions(ctx, rawPartitions, times)
}

// ensurePartitions creates the partitions of p that hold the given times.
// Known partitions cost nothing. Each is created as a table of its own and
// then attached, which locks the parent only in SHARE UPDATE EXCLUSIVE mode:
// reads and writes of other partitions go on while it happens.
func (s *Store) ensurePartitions(ctx context.Context, p partitioning, times []time.Time) error {
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
	for _, start := range missing {
		if err := s.createPartition(ctx, p, start); err != nil {
			return classify(fmt.Errorf("create partition %s: %w", p.name(start), err))
		}
		s.partitions.Store(partitionKey{p.parent, start}, struct{}{})
	}
	return nil
}

// createPartition creates and attaches one partition unless it exists, in a
// short transaction of its own.
func (s *Store) createPartition(ctx context.Context, p partitioning, start time.Time) error {
	name := p.name(start)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
			return err
		}
		if err := lockTx(ctx, tx, lockPartitions); err != nil {
			return err
		}
		defer s.exclusiveSection(ctx, lockPartitions)() // the lock lasts until commit, after this
		if covered, err := partitionCovers(ctx, tx, p.parent, start); err != nil || covered {
			return err // a partition (ours, or a legacy daily one) already holds this time
		}
		table := pgx.Identifier{name}.Sanitize()
		create := "CREATE TABLE IF NOT EXISTS " + table + " (LIKE " + p.parent + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
		if p.with != "" {
			create += " WITH (" + p.with + ")"
		}
		if _, err := tx.Exec(ctx, create); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
			p.parent, table, start.Format(time.RFC3339), start.Add(p.width).Format(time.RFC3339)))
		return err
	})
}

// partitionCovers says whether an attached partition of parent holds time t.
func partitionCovers(ctx context.Context, tx pgx.Tx, parent string, t time.Time) (bool, error) {
	parts, err := listPartitions(ctx, tx, parent)
	if err != nil {
		return false, err
	}
	for _, p := range parts {
		if !t.Before(p.Start) && t.Before(p.End) {
			return true, nil
		}
	}
	return false, nil
}

// forgetPartitions drops what this replica knows of the raw partitions of
// the given times, so the next write checks (and creates) them again.
func (s *Store) forgetPartitions(times []time.Time) {
	for _, t := range times {
		s.partitions.Delete(partitionKey{rawPartitions.parent, rawPartitions.start(t)})
		s.partitions.Delete(partitionKey{rawPartitions.parent, legacyRawPartitions.start(t)})
	}
}

// EnsurePartitionsAhead creates the raw partitions of the next half hour and
// the chunk partitions of today and the next `days` days.
func (s *Store) EnsurePartitionsAhead(ctx context.Context, now time.Time, days int) error {
	var windows []time.Time
	for w := time.Duration(0); w <= 30*time.Minute; w += RawWindow {
		windows = append(windows, now.Add(w))
	}
	if err := s.EnsurePartitions(ctx, windows...); err != nil {
		return err
	}
	var dayTimes []time.Time
	for i := 0; i <= days; i++ {
		dayTimes = append(dayTimes, now.AddDate(0, 0, i))
	}
	return s.ensurePartitions(ctx, chunkPartitions, dayTimes)
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
		for _, p := range []partitioning{rawPartitions, legacyRawPartitions, chunkPartitions} {
			if p.parent != parent || !strings.HasPrefix(n, p.prefix) {
				continue
			}
			if start, err := time.Parse(p.layout, n[len(p.prefix):]); err == nil {
				out = append(out, Partition{Name: n, Start: start, End: start.Add(p.width), parent: parent, oid: oid})
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
	s.partitions.Delete(partitionKey{parent, p.Start})
	if ifEmpty {
		// Detached, nobody can write into it any more: if a late point got in
		// before, keep the partition (attached again) for the next compaction.
		var hasRows bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+")").Scan(&hasRows); err != nil && !isUndefinedTable(err) {
			return false, classify(err)
		}
		if hasRows {
			_, err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
				parent, table, p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339)))
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
