package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// DropPartition drops one daily partition of the points table.
func (s *Store) DropPartition(ctx context.Context, p Partition) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockTx(ctx, tx, lockPartitions); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{p.Name}.Sanitize())
		return err
	})
	if err != nil {
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
