package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
)

// ChunkWindow is the time one chunk row covers for one series (the length of
// a Prometheus block). Windows are aligned to the epoch and divide a day, so
// a window never spans partitions. A long window keeps the rows a long range
// reads few: a day is 12 rows per series.
const ChunkWindow = 2 * time.Hour

// RawWindow is the width of a raw partition: the unit the compactor moves
// from raw rows into chunks. A raw row costs about 100 bytes with its index,
// a compacted point 3 to 4, so the window is short. The chunk window being
// filled is compacted a raw window at a time, its chunk re-encoded with the
// new samples, so the hot window stays short while chunks stay long.
const RawWindow = time.Minute

// CompactionGrace is how long after its end a raw window stays raw, so that
// points arriving a little late (an OpenTelemetry exporter's minute, a
// remote-write queue's backlog) still land before it is compacted. Raw rows
// therefore hold between CompactionGrace and RawWindow + CompactionGrace of
// the most recent data: the hot window.
const CompactionGrace = 2 * time.Minute

// compactSeriesPerTx bounds the series compacted in one transaction.
const compactSeriesPerTx = 400

// CompactionResult says what one compaction pass did.
type CompactionResult struct {
	Points            int64 // raw points turned into chunks
	Chunks            int64 // chunk rows written
	Merged            int64 // chunk rows that already existed (late points merged in)
	DroppedPartitions []string
	// Complete is false when the pass stopped at its budget; the next one continues.
	Complete bool
}

// ClosedBefore is the end of the newest raw window that may be compacted at now.
func ClosedBefore(now time.Time) time.Time {
	return now.Add(-CompactionGrace).UTC().Truncate(RawWindow)
}

// Compact turns the raw points of closed raw windows (before
// ClosedBefore(now)) into chunk rows: each chunk window of each series is
// one row holding its samples (XOR) and 5-minute and hourly rollups. Points for a chunk
// window that already has a row (the window being filled, or late points)
// are merged into it and the row re-encoded, the raw point winning over the
// chunk's one at the same time (last write wins). Each transaction writes
// chunks and deletes exactly the raw rows they were built from, so a crash at
// any point loses and duplicates nothing. Raw partitions left empty are
// dropped. Run it under RunExclusive(JobCompaction): one replica at a time.
func (s *Store) Compact(ctx context.Context, now time.Time, budget time.Duration) (CompactionResult, error) {
	var res CompactionResult
	deadline := time.Now().Add(budget)
	closed := ClosedBefore(now)
	parts, err := s.ListPartitions(ctx)
	if err != nil {
		return res, err
	}
	// The chunk windows that closed raw windows fall in, each compacted once
	// per pass: a chunk row is written once, however many raw windows it takes in.
	names := map[uint32]string{}
	var windows []time.Time
	for _, p := range parts {
		if !p.Start.Before(closed) {
			// The hot window: keep its statistics current, so that queries over
			// it are planned from real row counts (a new partition has none).
			// Those made ahead hold nothing yet: a pass would only rewrite
			// their empty statistics.
			if p.Start.After(now) {
				continue
			}
			if _, err := s.pool.Exec(ctx, "ANALYZE "+pgx.Identifier{p.Name}.Sanitize()); err != nil {
				return res, classify(fmt.Errorf("analyze %s: %w", p.Name, err))
			}
			continue
		}
		names[p.oid] = p.Name
		for w := p.Start.Truncate(ChunkWindow); w.Before(p.End) && w.Before(closed); w = w.Add(ChunkWindow) {
			if n := len(windows); n == 0 || windows[n-1].Before(w) {
				windows = append(windows, w)
			}
		}
	}
	fresh, err := s.ensureChunkDays(ctx, windows)
	if err != nil {
		return res, err
	}
	for _, w := range windows {
		if time.Now().After(deadline) {
			return res, nil
		}
		if fresh[dayOf(w)] {
			continue
		}
		to := w.Add(ChunkWindow)
		if closed.Before(to) {
			to = closed
		}
		if err := s.compactWindow(ctx, w, to, names, deadline, &res); err != nil {
			return res, err
		}
	}
	for _, p := range parts {
		if p.End.After(closed) || time.Now().After(deadline) {
			continue
		}
		// Wholly closed: its space goes back once it is empty.
		dropped, err := s.dropPartition(ctx, p, true)
		if err != nil {
			return res, err
		}
		if dropped {
			res.DroppedPartitions = append(res.DroppedPartitions, p.Name)
		}
	}
	res.Complete = !time.Now().After(deadline)
	if res.Complete && res.Chunks > 0 {
		// Last, so that it neither eats the budget nor delays the drops; a
		// pass that ran out of time leaves it to the next one.
		if err := s.analyzeChunkPartitions(ctx, windows); err != nil {
			return res, err
		}
	}
	return res, nil
}

// ensureChunkDays makes the chunk partitions of the windows' days that do
// not exist yet, and returns those days: their windows wait for the next
// pass. A query fixes its partitions when it is planned and takes its
// snapshot a moment later; had this pass moved rows into a partition
// attached in that moment, the query would find them in neither tier.
// Raw partitions are made with their day's chunk partition, so this
// happens only to days written before that was so.
func (s *Store) ensureChunkDays(ctx context.Context, windows []time.Time) (map[time.Time]bool, error) {
	var missing []time.Time
	for _, w := range windows {
		if _, ok := s.partitions.Load(partitionKey{chunkPartitions.parent, dayOf(w)}); !ok {
			missing = append(missing, w)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	parts, err := s.ListChunkPartitions(ctx)
	if err != nil {
		return nil, err
	}
	fresh := map[time.Time]bool{}
	for _, w := range missing {
		day := dayOf(w)
		if start, end := uncoveredRun(parts, chunkPartitions.width, day, day.Add(chunkPartitions.width)); start.Before(end) {
			fresh[day] = true
		}
	}
	return fresh, s.ensurePartitions(ctx, chunkPartitions, missing, len(missing), time.Time{})
}

// analyzeChunkPartitions analyses the chunk partitions holding windows that
// PostgreSQL has never analysed, or that have grown by more than a fifth
// since, without waiting for autovacuum. A day's first chunks arrive in one
// pass, and many more after an outage; until its partition is analysed,
// queries over it are planned for an empty table (a fleet query over 83
// freshly compacted minutes ran 2x slower). Rewriting the chunks of the
// window being filled changes no row count, so an ordinary pass does not
// analyse again.
func (s *Store) analyzeChunkPartitions(ctx context.Context, windows []time.Time) error {
	parts, err := s.ListChunkPartitions(ctx)
	if err != nil {
		return err
	}
	var oids []uint32
	for _, p := range parts {
		for _, w := range windows {
			if !w.Before(p.Start) && w.Before(p.End) {
				oids = append(oids, p.oid)
				break
			}
		}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT format('%I.%I', s.schemaname, s.relname) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
		WHERE s.relid = ANY($1::oid[]) AND (c.reltuples < 0 OR s.n_live_tup > 1.2 * greatest(c.reltuples, 1))`, oids)
	if err != nil {
		return classify(err)
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return classify(err)
	}
	for _, table := range stale {
		// Retention may have dropped it since: nothing left to analyse.
		if _, err := s.pool.Exec(ctx, "ANALYZE "+table); err != nil && !isUndefinedTable(err) {
			return classify(fmt.Errorf("analyze %s: %w", table, err))
		}
	}
	return nil
}

// compactWindow compacts the raw rows in [from, to) of one chunk window, a
// batch of series at a time.
func (s *Store) compactWindow(ctx context.Context, from, to time.Time, names map[uint32]string, deadline time.Time, res *CompactionResult) error {
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT series_id FROM metric_points WHERE ts >= $1 AND ts < $2 ORDER BY 1", from, to)
	if err != nil {
		return classify(fmt.Errorf("compact %s: %w", from.Format(time.RFC3339), err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return classify(fmt.Errorf("compact %s: %w", from.Format(time.RFC3339), err))
	}
	for len(ids) > 0 && time.Now().Before(deadline) {
		batch := ids[:min(len(ids), compactSeriesPerTx)]
		ids = ids[len(batch):]
		if err := s.compactBatch(ctx, batch, from, to, names, res); err != nil {
			return classify(fmt.Errorf("compact %s: %w", from.Format(time.RFC3339), err))
		}
	}
	return nil
}

// rawRow is a raw point and where it is (its partition and row version), so
// that exactly this version of it is deleted.
type rawRow struct {
	series int64
	ts     time.Time
	value  float64
	table  uint32
	ctid   pgtype.TID
}

// window is one series' chunk window being compacted.
type window struct {
	series  int64
	start   time.Time
	raw     []chunks.Sample
	samples []chunks.Sample // raw merged with the existing chunk
}

func (s *Store) compactBatch(ctx context.Context, ids []int64, from, to time.Time, names map[uint32]string, res *CompactionResult) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Taken before anything is read, so this transaction sees every chunk
		// an earlier one wrote: two that overlapped could each merge raw rows
		// into a chunk the other had not committed yet, and the later upsert
		// would drop the earlier one's points.
		if err := lockTx(ctx, tx, lockChunkWrites); err != nil {
			return err
		}
		windows, ctids, err := lockRawRows(ctx, tx, ids, from, to)
		if err != nil || len(windows) == 0 {
			return err
		}
		merged, err := mergeExistingChunks(ctx, tx, windows)
		if err != nil {
			return err
		}
		if err := writeChunks(ctx, tx, windows); err != nil {
			return err
		}
		var points int64
		for table, list := range ctids {
			name, ok := names[table]
			if !ok {
				// A partition made since the pass began: a late write made
				// one again for a window a pass had emptied and dropped.
				// Its rows read here are as closed as the others.
				if err := tx.QueryRow(ctx, "SELECT relname FROM pg_class WHERE oid = $1", table).Scan(&name); err != nil {
					return fmt.Errorf("name of raw partition %d: %w", table, err)
				}
				names[table] = name
			}
			tag, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{name}.Sanitize()+" WHERE ctid = ANY($1)", list)
			if err != nil {
				return err
			}
			points += tag.RowsAffected()
		}
		res.Points += points
		res.Chunks += int64(len(windows))
		res.Merged += merged
		return nil
	})
}

// lockRawRows reads the raw rows of the series in [from, to), grouped into
// windows, and where each is (per raw partition). The rows stay locked until
// commit: a re-push of one of them waits, then lands as a new raw row after
// the delete, and no row version read here can be replaced by another
// before the delete by ctid finds it.
func lockRawRows(ctx context.Context, tx pgx.Tx, ids []int64, from, to time.Time) ([]*window, map[uint32][]pgtype.TID, error) {
	rows, err := tx.Query(ctx, `SELECT series_id, ts, value, tableoid::oid, ctid FROM metric_points
		WHERE series_id = ANY($1) AND ts >= $2 AND ts < $3 ORDER BY series_id, ts FOR UPDATE`, ids, from, to)
	if err != nil {
		return nil, nil, err
	}
	var windows []*window
	ctids := map[uint32][]pgtype.TID{}
	var r rawRow
	_, err = pgx.ForEachRow(rows, []any{&r.series, &r.ts, &r.value, &r.table, &r.ctid}, func() error {
		if n := len(windows); n == 0 || windows[n-1].series != r.series {
			windows = append(windows, &window{series: r.series, start: from})
		}
		w := windows[len(windows)-1]
		w.raw = append(w.raw, chunks.Sample{T: r.ts.UnixMicro(), V: r.value})
		ctids[r.table] = append(ctids[r.table], r.ctid)
		return nil
	})
	return windows, ctids, err
}

// mergeExistingChunks reads the chunks already stored for the windows (late
// points) and merges their samples with the raw ones; a raw point replaces
// the chunk's point at the same time. It locks those rows until commit.
func mergeExistingChunks(ctx context.Context, tx pgx.Tx, windows []*window) (int64, error) {
	series := make([]int64, len(windows))
	starts := make([]time.Time, len(windows))
	byKey := make(map[chunkKey]*window, len(windows))
	for i, w := range windows {
		series[i], starts[i] = w.series, w.start
		byKey[chunkKey{w.series, w.start.UnixMicro()}] = w
		w.samples = w.raw
	}
	rows, err := tx.Query(ctx, `SELECT c.series_id, c.start_ts, c.data FROM metric_chunks c
		JOIN unnest($1::bigint[], $2::timestamptz[]) AS k(series_id, start_ts) ON c.series_id = k.series_id AND c.start_ts = k.start_ts
		ORDER BY 1, 2 FOR UPDATE OF c`, series, starts)
	if err != nil {
		return 0, err
	}
	var merged int64
	var id int64
	var start time.Time
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &start, &data}, func() error {
		old, err := chunks.Decode(data)
		if err != nil {
			return err
		}
		w := byKey[chunkKey{id, start.UnixMicro()}]
		w.samples = mergeSamples(old, w.raw)
		merged++
		return nil
	})
	return merged, err
}

type chunkKey struct {
	series int64
	start  int64 // microseconds
}

// mergeSamples merges two sorted sample lists; on equal times newer wins.
func mergeSamples(older, newer []chunks.Sample) []chunks.Sample {
	out := make([]chunks.Sample, 0, len(older)+len(newer))
	i, j := 0, 0
	for i < len(older) || j < len(newer) {
		switch {
		case j == len(newer) || (i < len(older) && older[i].T < newer[j].T):
			out = append(out, older[i])
			i++
		case i == len(older) || newer[j].T < older[i].T:
			out = append(out, newer[j])
			j++
		default: // same time: the newer write wins
			out = append(out, newer[j])
			i++
			j++
		}
	}
	return out
}

// writeChunks upserts one chunk row per window.
func writeChunks(ctx context.Context, tx pgx.Tx, windows []*window) error {
	n := len(windows)
	series, starts, mins, maxs := make([]int64, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	counts := make([]int32, n)
	rollups, hourly, datas := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i, w := range windows {
		series[i], starts[i] = w.series, w.start
		mins[i] = time.UnixMicro(w.samples[0].T)
		maxs[i] = time.UnixMicro(w.samples[len(w.samples)-1].T)
		counts[i] = int32(len(w.samples))
		start := w.start.UnixMicro()
		rollups[i] = chunks.EncodeRollups(start, chunks.RollupWidth, chunks.Rollup(w.samples, chunks.RollupWidth))
		hourly[i] = chunks.EncodeRollups(start, chunks.HourRollupWidth, chunks.Rollup(w.samples, chunks.HourRollupWidth))
		datas[i] = chunks.Encode(w.samples)
	}
	_, err := tx.Exec(ctx, `INSERT INTO metric_chunks (series_id, start_ts, min_ts, max_ts, count, rollup, rollup_hour, data)
		SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::bytea[], $7::bytea[], $8::bytea[])
		ON CONFLICT (series_id, start_ts) DO UPDATE SET min_ts = EXCLUDED.min_ts, max_ts = EXCLUDED.max_ts,
			count = EXCLUDED.count, rollup = EXCLUDED.rollup, rollup_hour = EXCLUDED.rollup_hour, data = EXCLUDED.data`,
		series, starts, mins, maxs, counts, rollups, hourly, datas)
	return err
}

// sortedUnique returns the distinct values of ids, sorted.
func sortedUnique(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
