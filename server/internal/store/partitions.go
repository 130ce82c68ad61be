package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Points are partitioned by UTC day; partition names carry the day so that
// retention can find expired ones by name.
const partitionPrefix = "metric_points_p"

func partitionName(day time.Time) string { return partitionPrefix + day.UTC().Format("20060102") }

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// EnsurePartitions creates the daily partitions that hold the given times
// (today and the next days at start; back-filled days on demand). Known
// partitions cost nothing.
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
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Before(missing[j]) })
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockTx(ctx, tx, lockPartitions); err != nil {
			return err
		}
		for _, d := range missing {
			sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF metric_points FOR VALUES FROM ('%s') TO ('%s')",
				pgx.Identifier{partitionName(d)}.Sanitize(), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "42P07" { // created concurrently
					continue
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return classify(fmt.Errorf("create partitions: %w", err))
	}
	for _, d := range missing {
		s.partitions.Store(d, struct{}{})
	}
	return nil
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
