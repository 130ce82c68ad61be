package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// FindSeries returns the series of sel.Name whose labels contain sel.Labels
// and that have a point in [sel.From, sel.To], at most sel.Limit of them.
func (s *Store) FindSeries(ctx context.Context, project string, sel metrics.Selector) ([]metrics.SeriesRef, error) {
	if err := s.flushLatest(ctx); err != nil { // the latest values must include this process's own points
		return nil, err
	}
	rows, err := s.reader(ctx).Query(ctx, findSeriesSQL("$1", "$2", "$3", "$4", "$5", "$6", "$7"),
		project, sel.Name, metrics.CanonicalLabels(sel.Labels), sel.From, sel.To, sel.Limit, ChunkWindow)
	if err != nil {
		return nil, classify(fmt.Errorf("find series: %w", err))
	}
	var out []metrics.SeriesRef
	var id int64
	var labels pgtype.DriverBytes
	_, err = pgx.ForEachRow(rows, []any{&id, &labels}, func() error {
		ls, err := seriesLabels.decode(labels)
		out = append(out, metrics.SeriesRef{ID: id, Labels: ls})
		return err
	})
	return out, classify(err)
}

// seriesLabels decodes the labels of series as they are read, each distinct
// JSON object once: a day's fleet query reads the same 800 series' labels
// on every call, and decoding them was a tenth of its CPU. The decoded maps
// are shared by every read that meets the same labels, so nothing may modify
// them (nothing does: labels are only read, grouped and written out).
var seriesLabels = labelsDecoder{max: 1 << 16}

type labelsDecoder struct {
	mu  sync.RWMutex
	max int
	m   map[string]map[string]string
}

func (c *labelsDecoder) decode(raw []byte) (map[string]string, error) {
	c.mu.RLock()
	ls, ok := c.m[string(raw)]
	c.mu.RUnlock()
	if ok {
		return ls, nil
	}
	if err := json.Unmarshal(raw, &ls); err != nil {
		return nil, fmt.Errorf("series labels: %w", err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[string]map[string]string)
	}
	c.m[string(raw)] = ls
	c.mu.Unlock()
	return ls, nil
}

// findSeriesSQL selects (id, labels) of the series a metrics.Selector picks;
// its arguments name the parameters: project, name, labels (canonical
// JSON), from, to, limit and the chunk window.
func findSeriesSQL(project, name, labels, from, to, limit, window string) string {
	return `SELECT s.id, s.labels FROM metric_series s
		WHERE s.project_id = ` + project + ` AND s.name = ` + name + ` AND s.labels @> ` + labels + `::jsonb AND ` + hasPointsSQL(from, to, window) + `
		LIMIT ` + limit
}

// hasPointsSQL is the condition that series s has a point in [from, to]
// (SQL expressions of timestamptz; window: the interval ChunkWindow). A
// series' newest point decides for most: inside the range, it has points
// there; before the range, it has none. Only when it is after the range (or
// unknown) are the tiers asked. Flush the latest values before using it.
func hasPointsSQL(from, to, window string) string {
	return `CASE (SELECT CASE WHEN l.ts < ` + from + `::timestamptz THEN 0 WHEN l.ts <= ` + to + `::timestamptz THEN 1 ELSE 2 END
	              FROM metric_latest l WHERE l.series_id = s.id)
		WHEN 0 THEN false WHEN 1 THEN true
		ELSE EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id AND p.ts >= ` + from + `::timestamptz AND p.ts <= ` + to + `::timestamptz)
		  OR EXISTS (SELECT 1 FROM metric_chunks c WHERE c.series_id = s.id AND c.start_ts > ` + from + `::timestamptz - ` + window + `::interval
		             AND c.start_ts <= ` + to + `::timestamptz AND c.max_ts >= ` + from + `::timestamptz AND c.min_ts <= ` + to + `::timestamptz) END`
}

// ReadSeries returns the points of the series in [From, To] by tier. Raw
// points come aggregated per query bucket (Partials) unless the query needs
// every value, or they fall in a compacted window (late points, which replace
// compacted samples at the same time and so must be seen one by one). With
// req.Rollups, a compacted window wholly inside the range comes with its
// rollups only, unless raw points fall in it.
func (s *Store) ReadSeries(ctx context.Context, _ string, req metrics.ReadRequest) ([]metrics.SeriesData, error) {
	var out []metrics.SeriesData
	read := func(db querier) error {
		var err error
		out, err = s.readSeries(ctx, db, req)
		return err
	}
	var err error
	if !req.Values {
		// Most aggregations need one statement (one snapshot, no transaction);
		// late points need more, in a snapshot of their own.
		var complete bool
		out, complete, err = s.readAggregatable(ctx, req)
		if err == nil && !complete {
			err = s.readSnapshot(ctx, read)
		}
	} else {
		err = s.readSnapshot(ctx, read)
	}
	if isOverflow(err) && !req.Values {
		// A bucket's sum is beyond float64 (which fails the statement and its
		// transaction): aggregate exactly in Go instead.
		req.Values = true
		err = s.readSnapshot(ctx, read)
	}
	if isOverflow(err) {
		err = classify(fmt.Errorf("read points: %w", err))
	}
	return out, err
}

func (s *Store) readSeries(ctx context.Context, db querier, req metrics.ReadRequest) ([]metrics.SeriesData, error) {
	sd := newSeriesData(req)
	var partials rawPartials
	if req.Values {
		if err := s.readRawPoints(ctx, db, req, nil, sd); err != nil {
			return nil, err
		}
	} else {
		if err := s.readRawPartials(ctx, db, req, sd, &partials); err != nil {
			return nil, err
		}
	}
	if err := s.readChunks(ctx, db, req, sd); err != nil {
		return nil, err
	}
	late := partials.settle(req.Agg, sd) // compacted windows that raw points fall in
	if len(late) == 0 {
		return sd.list(), nil
	}
	// Late points: read them one by one, and the samples of their windows.
	keys := make([]metrics.WindowKey, 0, len(late))
	for k := range late {
		keys = append(keys, k)
	}
	if err := s.readRawPoints(ctx, db, req, keys, sd); err != nil {
		return nil, err
	}
	samples, err := readWindows(ctx, db, keys)
	if err != nil {
		return nil, err
	}
	for _, d := range sd.byID {
		for i := range d.Windows {
			if data, ok := samples[metrics.WindowKey{Series: d.ID, Start: d.Windows[i].Start}]; ok {
				d.Windows[i].Data = data
			}
		}
	}
	return sd.list(), nil
}

// seriesData collects SeriesData by id.
type seriesData struct {
	byID    map[int64]*metrics.SeriesData
	order   []int64
	arena   *metrics.Arena // keeps the rows' byte columns, valid only until the next row
	windows int            // how many windows a series may have in the range, for Windows' capacity
}

func newSeriesData(req metrics.ReadRequest) *seriesData {
	sd := &seriesData{byID: map[int64]*metrics.SeriesData{}, arena: req.Arena, windows: windowsIn(req.From, req.To)}
	if sd.arena == nil {
		sd.arena = &metrics.Arena{}
	}
	return sd
}

// windowsIn is how many chunk windows [from, to] overlaps, at most 16: a
// series' Windows start with this capacity (growing them one append at a
// time was a tenth of what a day's dashboard query allocated), and a long
// range of sparse series does not reserve more than a day's.
func windowsIn(from, to time.Time) int {
	n := to.Sub(from)/ChunkWindow + 2
	return int(min(max(n, 1), 16))
}

func (sd *seriesData) of(id int64) *metrics.SeriesData {
	d := sd.byID[id]
	if d == nil {
		d = &metrics.SeriesData{ID: id}
		sd.byID[id] = d
		sd.order = append(sd.order, id)
	}
	return d
}

func (sd *seriesData) list() []metrics.SeriesData {
	out := make([]metrics.SeriesData, len(sd.order))
	for i, id := range sd.order {
		out[i] = *sd.byID[id]
	}
	return out
}

// rawPartialsSQL aggregates the raw points of series (the bigint[]
// expression ids) in a range ($2, $3) per query bucket ($4) and chunk window
// ($5), computing only what agg uses (each aggregate costs per row). first,
// the group's earliest point, tells with the compacted windows read beside
// it which groups hold late points (see rawPartials.settle).
func rawPartialsSQL(agg metrics.Agg, ids string) string {
	sum, lo, hi, last := "0::float8", "0::float8", "0::float8", "ARRAY[0, 0]::float8[]"
	switch agg {
	case metrics.AggAvg, metrics.AggSum:
		sum = "sum(value)"
	case metrics.AggMin:
		lo = "min(value)"
	case metrics.AggMax:
		hi = "max(value)"
	case metrics.AggLast:
		// the newest point: arrays compare element by element, and times are unique per series
		last = "max(ARRAY[extract(epoch FROM ts) * 1000000, value])"
	}
	return `
		SELECT g.series_id, g.win, g.bucket, g.n, g.total, g.lo, g.hi, g.last[2] AS last_v, g.last[1]::bigint AS last_t, g.latest, g.first
		FROM (
			SELECT series_id, date_bin($5::interval, ts, '1970-01-01T00:00:00Z') AS win,
			       date_bin($4::interval, ts, '1970-01-01T00:00:00Z') AS bucket,
			       count(*) AS n, ` + sum + ` AS total, ` + lo + ` AS lo, ` + hi + ` AS hi, ` + last + ` AS last,
			       max(ts) AS latest, min(ts) AS first
			FROM metric_points
			WHERE series_id = ANY(` + ids + `) AND ts >= $2::timestamptz AND ts <= $3::timestamptz
			  AND ` + notStaleMarker + `
			GROUP BY 1, 2, 3) g`
}

// chunksSQL selects the compacted windows of series (the bigint[]
// expression ids) overlapping a range ($2, $3); when the parameter named by
// rollups is true, those whose samples all lie inside it come without their
// samples, and with their hourly rollups instead of the 5-minute ones when
// the query's step (the parameter named by step) is whole hours and the row
// has them (window names the window width's parameter). The rollups say
// their own width.
func chunksSQL(ids, rollups, step, window string) string {
	inside := rollups + `::boolean AND c.min_ts >= $2::timestamptz AND c.max_ts <= $3::timestamptz`
	return `SELECT c.series_id, c.start_ts, c.min_ts, c.max_ts, c.count,
			CASE WHEN ` + inside + ` AND c.rollup_hour IS NOT NULL AND extract(epoch FROM ` + step + `::interval) % 3600 = 0
			     THEN c.rollup_hour ELSE c.rollup END AS rollup,
			CASE WHEN ` + inside + ` THEN NULL ELSE c.data END AS data
		FROM metric_chunks c
		WHERE c.series_id = ANY(` + ids + `) AND c.start_ts > $2::timestamptz - ` + window + `::interval AND c.start_ts <= $3::timestamptz
		  AND c.max_ts >= $2::timestamptz AND c.min_ts <= $3::timestamptz`
}

// partialRow is one row of rawPartialsSQL.
type partialRow struct {
	series        int64
	win, bucket   time.Time
	n             int64
	b             chunks.Bucket
	latest, first time.Time
}

func (r *partialRow) dest() []any {
	return []any{&r.series, &r.win, &r.bucket, &r.n, &r.b.Sum, &r.b.Min, &r.b.Max, &r.b.Last, &r.b.LastT, &r.latest, &r.first}
}

// rawPartials holds a read's raw partials until its compacted windows are
// read too. The points of a window compacted at or after the window's first
// raw point in the range are late: they may replace compacted samples, so
// the window is read point by point instead. Points newer than the window's
// chunk (the window being filled) simply add to it.
type rawPartials struct {
	rows []partialRow
}

func (r *rawPartials) add(p partialRow, sd *seriesData) {
	sd.of(p.series) // the series takes its place in the read's order at its first row
	r.rows = append(r.rows, p)
}

// settle adds the partials that are not late to sd and returns the late
// windows. A window's chunk that was not read lies wholly after the range
// (the chunks read are those overlapping it), so none of its samples can be
// replaced by a point in the range.
func (r *rawPartials) settle(agg metrics.Agg, sd *seriesData) map[metrics.WindowKey]bool {
	if len(r.rows) == 0 { // all compacted, as a long range mostly is: nothing to look up
		return nil
	}
	first := map[metrics.WindowKey]int64{}
	for _, p := range r.rows {
		k := metrics.WindowKey{Series: p.series, Start: p.win.UnixMicro()}
		if f, ok := first[k]; !ok || p.first.UnixMicro() < f {
			first[k] = p.first.UnixMicro()
		}
	}
	late := map[metrics.WindowKey]bool{}
	for k, f := range first {
		for _, w := range sd.byID[k.Series].Windows {
			if w.Start == k.Start && w.MaxT >= f {
				late[k] = true
			}
		}
	}
	for _, p := range r.rows {
		if late[metrics.WindowKey{Series: p.series, Start: p.win.UnixMicro()}] {
			continue
		}
		b := p.b
		b.Start, b.Count = p.bucket.UnixMicro(), uint32(p.n)
		if agg != metrics.AggLast {
			b.LastT = p.latest.UnixMicro() // the newest point's time: the series' freshness
		}
		d := sd.byID[p.series]
		d.Partials = append(d.Partials, b)
	}
	return late
}

// chunkRow is one row of chunksSQL.
type chunkRow struct {
	series            int64
	start, minT, maxT time.Time
	count             int32
	rollup, data      pgtype.DriverBytes // NULL: nil
}

func (r *chunkRow) dest() []any {
	return []any{&r.series, &r.start, &r.minT, &r.maxT, &r.count, &r.rollup, &r.data}
}

func (r *chunkRow) add(sd *seriesData) {
	d := sd.of(r.series)
	if d.Windows == nil {
		d.Windows = make([]metrics.WindowData, 0, sd.windows)
	}
	d.Windows = append(d.Windows, metrics.WindowData{Start: r.start.UnixMicro(), MinT: r.minT.UnixMicro(), MaxT: r.maxT.UnixMicro(),
		Count: int(r.count), Rollup: sd.arena.Keep(r.rollup), Data: sd.arena.Keep(r.data)})
}

// idsParam is the series of a read given as parameter $1.
const idsParam = "$1::bigint[]"

// aggregatableSQL reads raw partials (kind 0) and compacted windows (kind 1)
// of series ids (a bigint[] expression) in one statement: $2 from, $3 to,
// $4 step, $5 the chunk window, $6 whether rollups may stand for samples.
// A raw partial's first point comes in the min_ts column. Every row also
// has a labels column, NULL here, for the series rows (kind 2) of
// findAndReadSQL.
func aggregatableSQL(agg metrics.Agg, ids string) string {
	return `
		SELECT 0 AS kind, p.series_id, p.bucket AS at, p.win, p.bucket, p.n, p.total, p.lo, p.hi, p.last_v, p.last_t, p.latest,
		       p.first, NULL::timestamptz, NULL::integer, NULL::bytea, NULL::bytea, NULL::jsonb
		FROM (` + rawPartialsSQL(agg, ids) + `) p
		UNION ALL
		SELECT 1, c.series_id, c.start_ts, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		       c.min_ts, c.max_ts, c.count, c.rollup, c.data, NULL
		FROM (` + chunksSQL(ids, "$6", "$4", "$5") + `) c`
}

// findAndReadSQL finds the series of a selector ($1 project, $7 name, $8
// labels, $9 limit; the range and window as in aggregatableSQL) and, when
// they are at most $10, reads them with aggregatableSQL in the same
// statement; else it returns the series rows only.
func findAndReadSQL(agg metrics.Agg) string {
	return `
		WITH s AS MATERIALIZED (` + findSeriesSQL("$1", "$7", "$8", "$2", "$3", "$9", "$5") + `),
		     ids AS (SELECT CASE WHEN count(*) <= $10 THEN array_agg(id) END AS ids FROM s)
		SELECT 2, s.id, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::bigint, NULL::float8, NULL::float8,
		       NULL::float8, NULL::float8, NULL::bigint, NULL::timestamptz,
		       NULL::timestamptz, NULL::timestamptz, NULL::integer, NULL::bytea, NULL::bytea, s.labels
		FROM s
		UNION ALL` + aggregatableSQL(agg, "CAST((SELECT ids FROM ids) AS bigint[])") + `
		ORDER BY 2, 1, 3`
}

// statements holds the read statements by builder and aggregation: each is
// built once, not per query.
var statements sync.Map

type statementKey struct {
	builder string
	agg     metrics.Agg
}

func statement(builder string, agg metrics.Agg, build func(metrics.Agg) string) string {
	key := statementKey{builder, agg}
	if sql, ok := statements.Load(key); ok {
		return sql.(string)
	}
	sql, _ := statements.LoadOrStore(key, build(agg))
	return sql.(string)
}

// readByIDsSQL is aggregatableSQL of the series in parameter $1, in order.
func readByIDsSQL(agg metrics.Agg) string {
	return aggregatableSQL(agg, idsParam) + " ORDER BY 2, 1, 3"
}

// rawPartialsByIDsSQL is rawPartialsSQL of the series in parameter $1, by series.
func rawPartialsByIDsSQL(agg metrics.Agg) string {
	return rawPartialsSQL(agg, idsParam) + " ORDER BY 1, 3"
}

// readAggregatable reads raw partials and compacted windows in one
// statement. complete is false when raw points fall in compacted windows
// (late points), which need more reads.
func (s *Store) readAggregatable(ctx context.Context, req metrics.ReadRequest) (out []metrics.SeriesData, complete bool, err error) {
	sql := statement("read-by-ids", req.Agg, readByIDsSQL)
	out, _, complete, err = s.queryAggregatable(ctx, sql, req,
		req.IDs, req.From, req.To, req.Step, ChunkWindow, req.Rollups)
	return out, complete, err
}

// FindAndReadSeries is FindSeries(sel) and, when it finds at most maxRead
// series, ReadSeries(req) of them (sel and req share a range), in one
// statement: the router's and the dashboards' queries make one round trip
// instead of two. read is false when the series were not read (more than
// maxRead, the query needs every value, late points need more statements,
// or a sum overflows): the caller reads them with ReadSeries.
func (s *Store) FindAndReadSeries(ctx context.Context, project string, sel metrics.Selector, req metrics.ReadRequest, maxRead int) (
	found []metrics.SeriesRef, data []metrics.SeriesData, read bool, err error) {
	if req.Values || !sel.From.Equal(req.From) || !sel.To.Equal(req.To) {
		found, err = s.FindSeries(ctx, project, sel)
		return found, nil, false, err
	}
	if err := s.flushLatest(ctx); err != nil { // the latest values must include this process's own points
		return nil, nil, false, err
	}
	sql := statement("find-and-read", req.Agg, findAndReadSQL)
	data, found, complete, err := s.queryAggregatable(ctx, sql, req,
		project, req.From, req.To, req.Step, ChunkWindow, req.Rollups,
		sel.Name, metrics.CanonicalLabels(sel.Labels), sel.Limit, maxRead)
	if isOverflow(err) { // ReadSeries aggregates such sums in Go
		found, err = s.FindSeries(ctx, project, sel)
		return found, nil, false, err
	}
	if err != nil {
		return nil, nil, false, err
	}
	return found, data, complete && len(found) <= maxRead, nil
}

// queryAggregatable runs aggregatableSQL (or findAndReadSQL, whose series
// rows come back as found) for req and collects its rows by series.
func (s *Store) queryAggregatable(ctx context.Context, sql string, req metrics.ReadRequest, args ...any) (
	out []metrics.SeriesData, found []metrics.SeriesRef, complete bool, err error) {
	rows, err := s.reader(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, false, classify(fmt.Errorf("read points: %w", err))
	}
	sd := newSeriesData(req)
	var partials rawPartials
	var kind int32
	var id int64
	var p partialRow
	var c chunkRow
	// Each column is NULL where the row's kind has none; pgtype's value types
	// scan NULLs without allocating, as pointers would for every value (this
	// was a third of a day's fleet query).
	var at, win, bucket, latest, minT, maxT pgtype.Timestamptz
	var n, lastT pgtype.Int8
	var sum, lo, hi, lastV pgtype.Float8
	var count pgtype.Int4
	var labels pgtype.DriverBytes
	_, err = pgx.ForEachRow(rows, []any{&kind, &id, &at, &win, &bucket, &n, &sum, &lo, &hi, &lastV, &lastT, &latest,
		&minT, &maxT, &count, &c.rollup, &c.data, &labels}, func() error {
		switch kind {
		case 0:
			p = partialRow{series: id, win: win.Time, bucket: bucket.Time, n: n.Int64, latest: latest.Time, first: minT.Time,
				b: chunks.Bucket{Sum: sum.Float64, Min: lo.Float64, Max: hi.Float64, Last: lastV.Float64, LastT: lastT.Int64}}
			partials.add(p, sd)
		case 1:
			c.series, c.start, c.minT, c.maxT, c.count = id, at.Time, minT.Time, maxT.Time, count.Int32
			c.add(sd)
		default:
			ls, err := seriesLabels.decode(labels)
			if err != nil {
				return err
			}
			found = append(found, metrics.SeriesRef{ID: id, Labels: ls})
		}
		return nil
	})
	if err != nil {
		if isOverflow(err) {
			return nil, nil, false, err
		}
		return nil, nil, false, classify(fmt.Errorf("read points: %w", err))
	}
	late := partials.settle(req.Agg, sd)
	return sd.list(), found, len(late) == 0, nil
}

// readRawPartials aggregates the raw points per (series, window, query
// bucket) in the database, into partials to settle once the chunks are read.
func (s *Store) readRawPartials(ctx context.Context, db querier, req metrics.ReadRequest, sd *seriesData, partials *rawPartials) error {
	sql := statement("raw-partials-by-ids", req.Agg, rawPartialsByIDsSQL)
	rows, err := db.Query(ctx, sql, req.IDs, req.From, req.To, req.Step, ChunkWindow)
	if err != nil {
		return classify(fmt.Errorf("read points: %w", err))
	}
	var p partialRow
	_, err = pgx.ForEachRow(rows, p.dest(), func() error {
		partials.add(p, sd)
		return nil
	})
	if err != nil && !isOverflow(err) {
		err = classify(fmt.Errorf("read points: %w", err))
	}
	return err
}

// notStaleMarker skips Prometheus' staleness markers, which are not values;
// the cheap comparison keeps the byte test to NaN rows (PostgreSQL orders
// every NaN equal).
const notStaleMarker = `CASE WHEN value <> 'NaN'::float8 THEN true ELSE float8send(value) <> '\x7ff0000000000002'::bytea END`

// rawPointsSQL reads the raw points of series ($1) in a range ($2, $3).
const rawPointsSQL = `SELECT series_id, ts, value FROM metric_points
		WHERE series_id = ANY($1::bigint[]) AND ts >= $2::timestamptz AND ts <= $3::timestamptz ORDER BY series_id, ts`

// readRawPoints reads raw points one by one: all of them, or (keys) those of given windows.
func (s *Store) readRawPoints(ctx context.Context, db querier, req metrics.ReadRequest, keys []metrics.WindowKey, sd *seriesData) error {
	sql := rawPointsSQL
	args := []any{req.IDs, req.From, req.To}
	if keys != nil {
		ids, starts := make([]int64, len(keys)), make([]time.Time, len(keys))
		for i, k := range keys {
			ids[i], starts[i] = k.Series, time.UnixMicro(k.Start)
		}
		sql = `SELECT p.series_id, p.ts, p.value FROM metric_points p
			JOIN unnest($4::bigint[], $5::timestamptz[]) AS k(series_id, start_ts)
			  ON p.series_id = k.series_id AND p.ts >= k.start_ts AND p.ts < k.start_ts + $6::interval
			WHERE p.ts >= $2::timestamptz AND p.ts <= $3::timestamptz AND p.series_id = ANY($1::bigint[])
			ORDER BY p.series_id, p.ts`
		args = append(args, ids, starts, ChunkWindow)
	}
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return classify(fmt.Errorf("read points: %w", err))
	}
	var id int64
	var ts time.Time
	var v float64
	var cur *metrics.SeriesData
	_, err = pgx.ForEachRow(rows, []any{&id, &ts, &v}, func() error {
		if cur == nil || cur.ID != id {
			cur = sd.of(id)
		}
		cur.Raw = append(cur.Raw, chunks.Sample{T: ts.UnixMicro(), V: v})
		return nil
	})
	return classify(err)
}

// readChunks reads the compacted windows overlapping the range; with
// req.Rollups, those wholly inside it come without their samples.
func (s *Store) readChunks(ctx context.Context, db querier, req metrics.ReadRequest, sd *seriesData) error {
	rows, err := db.Query(ctx, chunksSQL(idsParam, "$4", "$6", "$5")+" ORDER BY c.series_id, c.start_ts",
		req.IDs, req.From, req.To, req.Rollups, ChunkWindow, req.Step)
	if err != nil {
		return classify(fmt.Errorf("read chunks: %w", err))
	}
	var c chunkRow
	_, err = pgx.ForEachRow(rows, c.dest(), func() error {
		c.add(sd)
		return nil
	})
	if err != nil {
		return classify(fmt.Errorf("read chunks: %w", err))
	}
	return nil
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
	return readWindows(ctx, s.reader(ctx), keys)
}

func readWindows(ctx context.Context, db querier, keys []metrics.WindowKey) (map[metrics.WindowKey][]byte, error) {
	ids, starts := make([]int64, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		ids[i], starts[i] = k.Series, time.UnixMicro(k.Start)
	}
	rows, err := db.Query(ctx, `SELECT c.series_id, c.start_ts, c.data FROM metric_chunks c
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
	if err := s.flushLatest(ctx); err != nil { // so that this process's own committed points are seen
		return nil, err
	}
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

// isOverflow: a float8 computation left the range of float64 (PostgreSQL
// raises an error where IEEE arithmetic would give ±Inf).
func isOverflow(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22003" // numeric_value_out_of_range
}
