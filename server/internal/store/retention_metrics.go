package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
)

// MetricsPruneResult says what one metrics retention pass removed.
type MetricsPruneResult struct {
	DroppedPartitions []string
	DeletedPoints     int64
	DeletedSeries     int64
}

// pruneBatch bounds one DELETE so no statement holds locks for long.
const pruneBatch = 50000

// PruneMetrics removes points older than cutoff from every tier: whole raw
// and chunk partitions that end at or before cutoff are dropped (as cheap as
// dropping a table); the partially expired ones are trimmed in bounded
// statements (raw rows deleted, chunks deleted or re-encoded without their
// expired samples). Series with no points left that were not pushed since
// the cut-off day are removed too.
func (s *Store) PruneMetrics(ctx context.Context, cutoff time.Time) (MetricsPruneResult, error) {
	var res MetricsPruneResult
	for _, list := range []func(context.Context) ([]Partition, error){s.ListPartitions, s.ListChunkPartitions} {
		parts, err := list(ctx)
		if err != nil {
			return res, err
		}
		for _, p := range parts {
			switch {
			case !p.End.After(cutoff):
				if err := s.DropPartition(ctx, p); err != nil {
					return res, err
				}
				res.DroppedPartitions = append(res.DroppedPartitions, p.Name)
			case p.Start.Before(cutoff):
				n, err := s.trimPartition(ctx, p, cutoff)
				res.DeletedPoints += n
				if err != nil {
					return res, err
				}
			}
		}
	}
	var err error
	res.DeletedSeries, err = s.deleteUnusedSeries(ctx, cutoff)
	return res, err
}

func (s *Store) trimPartition(ctx context.Context, p Partition, cutoff time.Time) (int64, error) {
	if p.parent == chunkPartitions.parent {
		return s.trimChunks(ctx, p.Name, cutoff)
	}
	return s.deleteBefore(ctx, p.Name, cutoff)
}

// deleteBefore deletes the raw rows of one partition older than cutoff in bounded batches.
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

// trimChunks deletes the chunks of one partition that end before cutoff and
// re-encodes those that straddle it without their expired samples.
func (s *Store) trimChunks(ctx context.Context, partition string, cutoff time.Time) (int64, error) {
	table := pgx.Identifier{partition}.Sanitize()
	var total int64
	for {
		var n, points int64
		err := s.pool.QueryRow(ctx, `WITH gone AS (
				DELETE FROM `+table+` WHERE ctid = ANY(ARRAY(SELECT ctid FROM `+table+` WHERE max_ts < $1 LIMIT $2)) RETURNING count)
			SELECT count(*), coalesce(sum(count), 0) FROM gone`, cutoff, pruneBatch/100).Scan(&n, &points)
		if err != nil {
			return total, classify(fmt.Errorf("trim chunks %s: %w", partition, err))
		}
		total += points
		if n < pruneBatch/100 {
			break
		}
	}
	trimmed, err := s.reencodeStraddling(ctx, table, cutoff)
	return total + trimmed, err
}

// reencodeStraddling drops the samples before cutoff from the chunks that hold some on both sides.
func (s *Store) reencodeStraddling(ctx context.Context, table string, cutoff time.Time) (int64, error) {
	var removed int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockTx(ctx, tx, lockChunkWrites); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT series_id, start_ts, data FROM `+table+` WHERE min_ts < $1 AND max_ts >= $1 FOR UPDATE`, cutoff)
		if err != nil {
			return err
		}
		var windows []*window
		var id int64
		var start time.Time
		var data []byte
		_, err = pgx.ForEachRow(rows, []any{&id, &start, &data}, func() error {
			samples, err := chunks.Decode(data)
			if err != nil {
				return err
			}
			keep := samples[:0]
			for _, smp := range samples {
				if smp.T >= cutoff.UnixMicro() {
					keep = append(keep, smp)
				}
			}
			removed += int64(len(samples) - len(keep))
			windows = append(windows, &window{series: id, start: start, samples: keep})
			return nil
		})
		if err != nil || len(windows) == 0 {
			return err
		}
		return writeChunks(ctx, tx, windows)
	})
	if err != nil {
		return 0, classify(fmt.Errorf("trim chunks: %w", err))
	}
	return removed, nil
}

// deleteUnusedSeries removes series that have no point in any tier and were
// not pushed since the cut-off day, with their latest values.
func (s *Store) deleteUnusedSeries(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM metric_series s
			WHERE s.last_seen < $1::date
			  AND NOT EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id)
			  AND NOT EXISTS (SELECT 1 FROM metric_chunks c WHERE c.series_id = s.id)
			RETURNING id
		), latest AS (
			DELETE FROM metric_latest l USING gone WHERE l.series_id = gone.id
		)
		SELECT count(*) FROM gone`, dayOf(cutoff)).Scan(&n)
	if err != nil {
		return 0, classify(fmt.Errorf("delete unused series: %w", err))
	}
	return n, nil
}
