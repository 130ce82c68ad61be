package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Points are partitioned by UTC day; partition names carry the day so that
// retention can find expired ones by name.
const partitionPrefix = "metric_points_p"

func partitionName(day time.Time) string { return partitionPrefix + day.UTC().Format("20060102") }

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// partitionLockTimeout bounds how long partition DDL waits for a lock, so
// that it never holds up readers and writers behind it for long.
const partitionLockTimeout = "2s"

// EnsurePartitions creates the daily partitions that hold the given times
// (today and the next days at start; back-filled days on demand). Known
// partitions cost nothing. Each day is created as a table of its own and then
// attached, which locks the points table only in SHARE UPDATE EXCLUSIVE mode:
// reads and writes of other days go on while it happens.
func (s *Store) EnsurePartitions(ctx context.Context, times ...time.Time) error {
	var missing []time.Time
	seen := map[time.Time]bool{}
	for _, t := range times {
		d := dayOf(t)
		if seen[d] {
			continue
		}
		seen[d] = true
		if _, ok := s.partitions.Load(d); !ok {
			missing = append(missing, d)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Before(missing[j]) })
	for _, d := range missing {
		if err := s.createPartition(ctx, d); err != nil {
			return classify(fmt.Errorf("create partition %s: %w", partitionName(d), err))
		}
		s.partitions.Store(d, struct{}{})
	}
	return nil
}

// createPartition creates and attaches one day's partition unless it exists,
// in a short transaction of its own.
func (s *Store) createPartition(ctx context.Context, day time.Time) error {
	name := partitionName(day)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
			return err
		}
		if err := lockTx(ctx, tx, lockPartitions); err != nil {
			return err
		}
		defer s.exclusiveSection(ctx, lockPartitions)() // the lock lasts until commit, after this
		var attached bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'metric_points'::regclass AND c.relname = $1)`, name).Scan(&attached); err != nil || attached {
			return err
		}
		table := pgx.Identifier{name}.Sanitize()
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (LIKE metric_points INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE metric_points ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
			table, day.Format(time.RFC3339), day.AddDate(0, 0, 1).Format(time.RFC3339)))
		return err
	})
}

// forgetPartitions drops what this replica knows of the days' partitions, so
// the next write checks (and creates) them again.
func (s *Store) forgetPartitions(times []time.Time) {
	for _, t := range times {
		s.partitions.Delete(dayOf(t))
	}
}

// EnsurePartitionsAhead creates today's partition and the next `days` ones.
func (s *Store) EnsurePartitionsAhead(ctx context.Context, now time.Time, days int) error {
	times := make([]time.Time, 0, days+1)
	for i := 0; i <= days; i++ {
		times = append(times, now.AddDate(0, 0, i))
	}
	return s.EnsurePartitions(ctx, times...)
}

// Partition is one daily partition of the points table.
type Partition struct {
	Name string
	Day  time.Time
}

// ListPartitions returns the points partitions, oldest first.
func (s *Store) ListPartitions(ctx context.Context) ([]Partition, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = 'metric_points' AND c.relname LIKE 'metric\_points\_p%'
		ORDER BY c.relname`)
	if err != nil {
		return nil, classify(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Partition, 0, len(names))
	for _, n := range names {
		d, err := time.Parse("20060102", n[len(partitionPrefix):])
		if err != nil {
			continue // not ours
		}
		out = append(out, Partition{Name: n, Day: d})
	}
	return out, nil
}
