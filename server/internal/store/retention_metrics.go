package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MetricsPruneResult says what one metrics retention pass removed.
type MetricsPruneResult struct {
	DroppedPartitions []string
	DeletedPoints     int64
	DeletedSeries     int64
}

// pruneBatch bounds one DELETE so no statement holds locks for long.
const pruneBatch = 50000

// PruneMetrics removes points older than cutoff: whole daily partitions that
// end at or before cutoff are dropped (as cheap as dropping a table); the one
// partially expired day is trimmed with bounded DELETEs. Series with no points
// left that were not pushed since the cut-off day are removed too.
func (s *Store) PruneMetrics(ctx context.Context, cutoff time.Time) (MetricsPruneResult, error) {
	var res MetricsPruneResult
	parts, err := s.ListPartitions(ctx)
	if err != nil {
		return res, err
	}
	for _, p := range parts {
		end := p.Day.AddDate(0, 0, 1)
		switch {
		case !end.After(cutoff):
			if err := s.DropPartition(ctx, p); err != nil {
				return res, err
			}
			res.DroppedPartitions = append(res.DroppedPartitions, p.Name)
		case p.Day.Before(cutoff):
			n, err := s.deleteBefore(ctx, p.Name, cutoff)
			res.DeletedPoints += n
			if err != nil {
				return res, err
			}
		}
	}
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM metric_series s
		WHERE s.last_seen < $1::date
		  AND NOT EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id)`, dayOf(cutoff))
	if err != nil {
		return res, classify(fmt.Errorf("delete unused series: %w", err))
	}
	res.DeletedSeries = tag.RowsAffected()
	return res, nil
}

// DropPartition drops one daily partition of the points table. It is
// detached CONCURRENTLY first, so readers and writers of other days are not
// blocked, then dropped as a table of its own.
func (s *Store) DropPartition(ctx context.Context, p Partition) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify(err)
	}
	defer conn.Release()
	unlock, err := lockSession(ctx, conn, lockPartitions)
	if err != nil {
		return classify(err)
	}
	defer unlock()
	defer s.exclusiveSection(ctx, lockPartitions)()
	table := pgx.Identifier{p.Name}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER TABLE metric_points DETACH PARTITION "+table+" CONCURRENTLY"); err != nil {
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55000": // an earlier detach was interrupted: complete it
			if _, err := conn.Exec(ctx, "ALTER TABLE metric_points DETACH PARTITION "+table+" FINALIZE"); err != nil {
				return classify(fmt.Errorf("finish detaching partition %s: %w", p.Name, err))
			}
		case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42809"): // gone, or no longer a partition
		default:
			return classify(fmt.Errorf("detach partition %s: %w", p.Name, err))
		}
	}
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		return classify(fmt.Errorf("drop partition %s: %w", p.Name, err))
	}
	s.partitions.Delete(p.Day)
	return nil
}

// deleteBefore deletes the rows of one partition older than cutoff in bounded batches.
func (s *Store) deleteBefore(ctx context.Context, partition string, cutoff time.Time) (int64, error) {
	table := pgx.Identifier{partition}.Sanitize()
	sql := `DELETE FROM ` + table + ` WHERE ctid = ANY(ARRAY(SELECT ctid FROM ` + table + ` WHERE ts < $1 LIMIT $2))`
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, sql, cutoff, pruneBatch)
		if err != nil {
			return total, classify(fmt.Errorf("trim partition %s: %w", partition, err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}
