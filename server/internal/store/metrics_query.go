package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// FindSeries returns the series of sel.Name whose labels contain sel.Labels
// and that have a point in [sel.From, sel.To], at most sel.Limit of them.
func (s *Store) FindSeries(ctx context.Context, project string, sel metrics.Selector) ([]metrics.SeriesRef, error) {
	rows, err := s.reader(ctx).Query(ctx, `
		SELECT s.id, s.labels FROM metric_series s
		WHERE s.project_id = $1 AND s.name = $2 AND s.labels @> $3::jsonb
		  AND (EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id AND p.ts >= $4 AND p.ts <= $5)
		    OR EXISTS (SELECT 1 FROM metric_chunks c WHERE c.series_id = s.id AND c.start_ts > $4::timestamptz - $7::interval
		               AND c.start_ts <= $5 AND c.max_ts >= $4 AND c.min_ts <= $5))
		LIMIT $6`, project, sel.Name, metrics.CanonicalLabels(sel.Labels), sel.From, sel.To, sel.Limit, ChunkWindow)
	if err != nil {
		return nil, classify(fmt.Errorf("find series: %w", err))
	}
	var out []metrics.SeriesRef
	var r metrics.SeriesRef
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Labels}, func() error {
		out = append(out, r)
		r.Labels = nil
		return nil
	})
	return out, classify(err)
}

// ReadSeries returns the points of the series in [From, To] by tier: the
// raw rows, and the compacted windows that overlap the range. With
// req.Rollups, a window wholly inside the range that no raw row overrides
// comes with its rollups only (the samples are not read).
func (s *Store) ReadSeries(ctx context.Context, _ string, req metrics.ReadRequest) ([]metrics.SeriesData, error) {
	db := s.reader(ctx)
	rows, err := db.Query(ctx, `SELECT series_id, ts, value FROM metric_points
		WHERE series_id = ANY($1) AND ts >= $2 AND ts <= $3 ORDER BY series_id, ts`, req.IDs, req.From, req.To)
	if err != nil {
		return nil, classify(fmt.Errorf("read points: %w", err))
	}
	byID := map[int64]*metrics.SeriesData{}
	var out []metrics.SeriesData
	at := func(id int64) *metrics.SeriesData {
		if d := byID[id]; d != nil {
			return d
		}
		out = append(out, metrics.SeriesData{ID: id})
		// out may move; index it again after the reads
		return &out[len(out)-1]
	}
	type rawKey struct{ series, window int64 }
	rawWindows := map[rawKey]bool{}
	var id int64
	var ts time.Time
	var v float64
	window := ChunkWindow.Microseconds()
	var cur *metrics.SeriesData
	_, err = pgx.ForEachRow(rows, []any{&id, &ts, &v}, func() error {
		if cur == nil || cur.ID != id {
			cur = at(id)
			byID[id] = cur
		}
		t := ts.UnixMicro()
		cur.Raw = append(cur.Raw, chunks.Sample{T: t, V: v})
		rawWindows[rawKey{id, floorMicros(t, window)}] = true
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("read points: %w", err))
	}
	// byID holds pointers into out, which appends may have moved: index afresh.
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	var overriddenIDs, overriddenStarts []int64
	for k := range rawWindows {
		overriddenIDs, overriddenStarts = append(overriddenIDs, k.series), append(overriddenStarts, k.window)
	}
	rows, err = db.Query(ctx, `SELECT c.series_id, c.start_ts, c.min_ts, c.max_ts, c.count, c.rollup,
			CASE WHEN $4::boolean AND c.start_ts >= $2::timestamptz AND c.start_ts + $5::interval <= $3::timestamptz + interval '1 microsecond'
			          AND NOT EXISTS (SELECT 1 FROM unnest($6::bigint[], $7::bigint[]) AS o(series_id, start_us)
			                          WHERE o.series_id = c.series_id AND o.start_us = (extract(epoch FROM c.start_ts) * 1000000)::bigint)
			     THEN NULL ELSE c.data END
		FROM metric_chunks c
		WHERE c.series_id = ANY($1::bigint[]) AND c.start_ts > $2::timestamptz - $5::interval AND c.start_ts <= $3::timestamptz
		  AND c.max_ts >= $2::timestamptz AND c.min_ts <= $3::timestamptz
		ORDER BY c.series_id, c.start_ts`,
		req.IDs, req.From, req.To, req.Rollups, ChunkWindow, overriddenIDs, overriddenStarts)
	if err != nil {
		return nil, classify(fmt.Errorf("read chunks: %w", err))
	}
	var w metrics.WindowData
	var start, minTS, maxTS time.Time
	var count int32
	var windows []struct {
		id int64
		w  metrics.WindowData
	}
	_, err = pgx.ForEachRow(rows, []any{&id, &start, &minTS, &maxTS, &count, &w.Rollup, &w.Data}, func() error {
		w.Start, w.MinT, w.MaxT, w.Count = start.UnixMicro(), minTS.UnixMicro(), maxTS.UnixMicro(), int(count)
		windows = append(windows, struct {
			id int64
			w  metrics.WindowData
		}{id, w})
		w = metrics.WindowData{}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("read chunks: %w", err))
	}
	for _, x := range windows {
		if byID[x.id] == nil {
			out = append(out, metrics.SeriesData{ID: x.id})
			for i := range out {
				byID[out[i].ID] = &out[i]
			}
		}
		d := byID[x.id]
		d.Windows = append(d.Windows, x.w)
	}
	return out, nil
}

func floorMicros(t, width int64) int64 {
	q := t / width
	if t%width != 0 && t < 0 {
		q--
	}
	return q * width
}

// ReadWindows returns the samples of the given compacted windows.
func (s *Store) ReadWindows(ctx context.Context, _ string, keys []metrics.WindowKey) (map[metrics.WindowKey][]byte, error) {
	ids, starts := make([]int64, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		ids[i], starts[i] = k.Series, time.UnixMicro(k.Start)
	}
	rows, err := s.reader(ctx).Query(ctx, `SELECT c.series_id, c.start_ts, c.data FROM metric_chunks c
		JOIN unnest($1::bigint[], $2::timestamptz[]) AS k(series_id, start_ts) ON c.series_id = k.series_id AND c.start_ts = k.start_ts`, ids, starts)
	if err != nil {
		return nil, classify(fmt.Errorf("read chunks: %w", err))
	}
	out := make(map[metrics.WindowKey][]byte, len(keys))
	var id int64
	var start time.Time
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &start, &data}, func() error {
		out[metrics.WindowKey{Series: id, Start: start.UnixMicro()}] = data
		data = nil
		return nil
	})
	return out, classify(err)
}

// LatestPoints returns the newest point of each series (metric_latest).
func (s *Store) LatestPoints(ctx context.Context, _ string, ids []int64) (map[int64]chunks.Sample, error) {
	rows, err := s.reader(ctx).Query(ctx, `SELECT series_id, ts, value FROM metric_latest WHERE series_id = ANY($1)`, ids)
	if err != nil {
		return nil, classify(fmt.Errorf("read latest: %w", err))
	}
	out := make(map[int64]chunks.Sample, len(ids))
	var id int64
	var ts time.Time
	var v float64
	_, err = pgx.ForEachRow(rows, []any{&id, &ts, &v}, func() error {
		out[id] = chunks.Sample{T: ts.UnixMicro(), V: v}
		return nil
	})
	return out, classify(err)
}

// MetricNames lists the metric names of a project, sorted.
func (s *Store) MetricNames(ctx context.Context, project string) ([]string, error) {
	rows, err := s.reader(ctx).Query(ctx, `SELECT DISTINCT name FROM metric_series WHERE project_id = $1 ORDER BY name`, project)
	if err != nil {
		return nil, classify(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, classify(err)
}

// MetricLabels lists, for one metric, each label key with its distinct values (sorted).
func (s *Store) MetricLabels(ctx context.Context, project, name string) (map[string][]string, error) {
	rows, err := s.reader(ctx).Query(ctx, `
		SELECT DISTINCT kv.key, kv.value
		FROM metric_series s, jsonb_each_text(s.labels) AS kv
		WHERE s.project_id = $1 AND s.name = $2
		ORDER BY 1, 2`, project, name)
	if err != nil {
		return nil, classify(err)
	}
	out := map[string][]string{}
	var k, v string
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		out[k] = append(out[k], v)
		return nil
	})
	return out, classify(err)
}
