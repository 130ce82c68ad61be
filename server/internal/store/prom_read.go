package store

// The read side of the Prometheus API: series chosen by label matchers, label
// names and values, and the samples of chosen series.
//
// The seam between PromQL and storage is narrow on purpose: the adapter
// (promstorage) asks for series by matchers and time range (SelectSeries),
// then for the samples of some series ids in a time range (ReadSamples),
// which arrive as per-series batches of timestamps and values. Nothing above
// this file sees rows: a storage tier that keeps closed windows as compressed
// chunks only has to yield the same batches.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// SeriesQuery chooses series: those of Project whose labels (the metric name
// under __name__) satisfy every matcher and that have at least one point in
// [MinT, MaxT] (milliseconds, inclusive) unless AnyTime.
type SeriesQuery struct {
	Project    string
	Matchers   []*labels.Matcher
	MinT, MaxT int64
	AnyTime    bool
	// Limit is the most series (or label names or values) an answer may hold;
	// one more makes the call fail with errs.Unprocessable (SelectSeries) or
	// be cut at Limit+1 (label listings, so the caller can tell it was cut).
	Limit int
}

// PromSeries is a stored series as PromQL sees it.
type PromSeries struct {
	ID     int64
	Labels labels.Labels
}

// SampleBatch is samples of one series in time order: timestamps in
// milliseconds and their values (including NaN, ±Inf and staleness markers).
type SampleBatch struct {
	SeriesID int64
	T        []int64
	V        []float64
}

// SelectSeries returns the series q chooses, in no particular order. Every
// matcher is pushed down to SQL where that can be done exactly or as a
// superset (equality through the labels' GIN index, literal alternations,
// literal prefixes, regular expressions in the subset where PostgreSQL's
// dialect agrees with RE2), and every matcher is then applied to the rows
// in Go with Prometheus' own matcher, so the answer is exact.
func (s *Store) SelectSeries(ctx context.Context, q SeriesQuery) ([]PromSeries, error) {
	var out []PromSeries
	err := s.scanSeries(ctx, q, func(id int64, ls labels.Labels) error {
		if len(out) == q.Limit {
			return &errs.Error{Kind: errs.Unprocessable, Msg: fmt.Sprintf(
				"the selectors choose more than %d series; narrow them with more labels or a shorter range", q.Limit)}
		}
		out = append(out, PromSeries{ID: id, Labels: ls})
		return nil
	})
	return out, err
}

// PromLabelNames returns the sorted label names (with __name__) of the series
// q chooses, at most q.Limit+1.
func (s *Store) PromLabelNames(ctx context.Context, q SeriesQuery) ([]string, error) {
	return s.labelListing(ctx, q, "")
}

// PromLabelValues returns the sorted non-empty values of label name among
// the series q chooses, at most q.Limit+1.
func (s *Store) PromLabelValues(ctx context.Context, q SeriesQuery, name string) ([]string, error) {
	if name == "" {
		return nil, nil
	}
	return s.labelListing(ctx, q, name)
}

// labelListing lists label names (name == "") or the values of one label.
// When every matcher translates to SQL exactly, PostgreSQL computes the
// distinct values; otherwise the chosen series are filtered in Go first.
func (s *Store) labelListing(ctx context.Context, q SeriesQuery, name string) ([]string, error) {
	if err := s.flushLatest(ctx); err != nil { // the time filter reads the latest values
		return nil, err
	}
	b, exact := seriesFilter(q, false)
	if !exact {
		set := map[string]struct{}{}
		err := s.scanSeries(ctx, q, func(_ int64, ls labels.Labels) error {
			ls.Range(func(l labels.Label) {
				switch {
				case name == "":
					set[l.Name] = struct{}{}
				case l.Name == name:
					set[l.Value] = struct{}{}
				}
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, len(set))
		for v := range set {
			out = append(out, v)
		}
		slices.Sort(out)
		return out[:min(len(out), q.Limit+1)], nil
	}
	var sql string
	switch {
	case name == "":
		sql = `SELECT k FROM (
			SELECT kv.key AS k FROM metric_series s, jsonb_each_text(s.labels) AS kv WHERE ` + b.where() + ` AND kv.value <> ''
			UNION SELECT '` + labels.MetricName + `' FROM metric_series s WHERE ` + b.where() + `) names
			ORDER BY k LIMIT ` + b.arg(q.Limit+1)
	case name == labels.MetricName:
		sql = `SELECT DISTINCT s.name FROM metric_series s WHERE ` + b.where() + ` ORDER BY 1 LIMIT ` + b.arg(q.Limit+1)
	default:
		sql = `SELECT DISTINCT s.labels->>` + b.arg(name) + ` AS v FROM metric_series s WHERE ` + b.where() +
			` AND s.labels->>` + b.arg(name) + ` <> '' ORDER BY 1 LIMIT ` + b.arg(q.Limit+1)
	}
	rows, err := s.reader(ctx).Query(ctx, sql, b.args...)
	if err != nil {
		return nil, classify(fmt.Errorf("list labels: %w", err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, classify(err)
}

// scanSeries streams the series q chooses (after the exact Go filter) to fn.
func (s *Store) scanSeries(ctx context.Context, q SeriesQuery, fn func(id int64, ls labels.Labels) error) error {
	if err := s.flushLatest(ctx); err != nil { // the time filter reads the latest values
		return err
	}
	err := s.scanSeriesOnce(ctx, q, true, fn)
	if isInvalidRegex(err) {
		// PostgreSQL refused a translated regular expression: filter it in Go only.
		err = s.scanSeriesOnce(ctx, q, false, fn)
	}
	return err
}

func (s *Store) scanSeriesOnce(ctx context.Context, q SeriesQuery, regexPushdown bool, fn func(id int64, ls labels.Labels) error) error {
	sql, args := selectSeriesSQL(q, regexPushdown)
	rows, err := s.reader(ctx).Query(ctx, sql, args...)
	if err != nil {
		return classify(fmt.Errorf("select series: %w", err))
	}
	var id int64
	var name string
	var raw map[string]string
	builder := labels.NewScratchBuilder(8)
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &raw}, func() error {
		builder.Reset()
		builder.Add(labels.MetricName, name)
		for k, v := range raw {
			if v != "" { // an empty label is an absent one
				builder.Add(k, v)
			}
		}
		builder.Sort()
		ls := builder.Labels()
		raw = nil
		for _, m := range q.Matchers {
			if !m.Matches(ls.Get(m.Name)) {
				return nil
			}
		}
		return fn(id, ls)
	})
	if errs.KindOf(err) != 0 {
		return err
	}
	return classify(err)
}

func selectSeriesSQL(q SeriesQuery, regexPushdown bool) (string, []any) {
	f, _ := seriesFilter(q, regexPushdown)
	return `SELECT s.id, s.name, s.labels FROM metric_series s WHERE ` + f.where(), f.args
}

func isInvalidRegex(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "2201B"
}

// ReadSamples reads the samples in [mint, maxt] (milliseconds, inclusive) of
// the given series and hands them to fn, one batch per series in the order of
// ids (series without samples in the range are skipped). Points stored with
// sub-millisecond timestamps are read at their millisecond; of several in the
// same millisecond the last one counts. More than maxSamples samples in all
// fail with errs.Unprocessable.
func (s *Store) ReadSamples(ctx context.Context, ids []int64, mint, maxt int64, maxSamples int, fn func(SampleBatch) error) error {
	const idsPerStatement = 2000 // bounds the statements' arrays and the samples held at once
	read := 0
	from, to := time.UnixMilli(mint).UTC(), time.UnixMilli(maxt).UTC().Add(time.Millisecond-time.Microsecond)
	for start := 0; start < len(ids); start += idsPerStatement {
		chunk := ids[start:min(len(ids), start+idsPerStatement)]
		data, err := s.ReadSeries(ctx, "", metrics.ReadRequest{IDs: chunk, From: from, To: to, Values: true})
		if err != nil {
			return err
		}
		byID := make(map[int64]*metrics.SeriesData, len(data))
		for i := range data {
			byID[data[i].ID] = &data[i]
		}
		for _, id := range chunk {
			d := byID[id]
			if d == nil {
				continue
			}
			b, points, err := mergedSamples(d, from.UnixMicro(), to.UnixMicro())
			if err != nil {
				return classify(fmt.Errorf("read samples: %w", err))
			}
			// the budget counts the points read, before de-duplication: it bounds memory
			if read += points; read > maxSamples {
				return &errs.Error{Kind: errs.Unprocessable, Msg: fmt.Sprintf(
					"the query would read more than %d samples; narrow the selectors or the range", maxSamples)}
			}
			if len(b.T) == 0 {
				continue
			}
			if err := fn(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergedSamples is one series' samples in [from, to] (microseconds) from
// every tier, in time order at millisecond precision: a raw point replaces a
// compacted one at the same time, and of several in one millisecond the last
// one counts. points is how many points were read.
//
// Raw points come by time and windows by start, each window's samples in
// time order and windows apart, so the tiers merge in one pass.
func mergedSamples(d *metrics.SeriesData, from, to int64) (b SampleBatch, points int, err error) {
	size := len(d.Raw)
	for _, w := range d.Windows {
		size += w.Count
	}
	b = SampleBatch{SeriesID: d.ID, T: make([]int64, 0, size), V: make([]float64, 0, size)}
	emit := func(p chunks.Sample) {
		points++
		ms := floorMicros(p.T, 1000) / 1000
		if n := len(b.T); n > 0 && b.T[n-1] == ms {
			b.V[n-1] = p.V
			return
		}
		b.T, b.V = append(b.T, ms), append(b.V, p.V)
	}
	raw := d.Raw
	for _, w := range d.Windows {
		it := chunks.NewIterator(w.Data)
		it.SkipBefore(from)
		for it.Next() {
			p := it.At()
			if p.T < from {
				continue
			}
			if p.T > to {
				break // the rest of the window is later still
			}
			for len(raw) > 0 && raw[0].T < p.T {
				emit(raw[0])
				raw = raw[1:]
			}
			if len(raw) > 0 && raw[0].T == p.T {
				continue // the raw point replaces it and comes next
			}
			emit(p)
		}
		if err := it.Err(); err != nil {
			return b, 0, err
		}
	}
	for _, p := range raw {
		emit(p)
	}
	return b, points, nil
}

// ReadNewest returns the newest sample (milliseconds) of each series whose
// newest point lies in [mint, maxt], from metric_latest alone; after lists
// the series whose newest point is later than maxt (the caller reads those
// from the tiers). A series with no point since mint is in neither.
func (s *Store) ReadNewest(ctx context.Context, ids []int64, mint, maxt int64) (newest []SampleBatch, after []int64, err error) {
	latest, err := s.LatestPoints(ctx, "", ids)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		p, ok := latest[id]
		switch ms := floorMicros(p.T, 1000) / 1000; {
		case !ok || ms < mint:
		case ms > maxt:
			after = append(after, id)
		default:
			newest = append(newest, SampleBatch{SeriesID: id, T: []int64{ms}, V: []float64{p.V}})
		}
	}
	return newest, after, nil
}

// filterSQL accumulates a WHERE clause and its arguments.
type filterSQL struct {
	conds []string
	args  []any
}

func (f *filterSQL) arg(v any) string {
	f.args = append(f.args, v)
	return "$" + strconv.Itoa(len(f.args))
}

func (f *filterSQL) where() string { return strings.Join(f.conds, " AND ") }

// seriesFilter translates q into SQL on metric_series s. exact reports
// whether the SQL alone chooses exactly the right series (otherwise it
// chooses a superset and the caller filters in Go).
func seriesFilter(q SeriesQuery, regexPushdown bool) (f *filterSQL, exact bool) {
	f = &filterSQL{}
	f.conds = append(f.conds, "s.project_id = "+f.arg(q.Project))
	exact = true
	contains := map[string]string{}
	for _, m := range q.Matchers {
		col := func() string {
			if m.Name == labels.MetricName {
				return "s.name"
			}
			return "coalesce(s.labels->>" + f.arg(m.Name) + ", '')" // absent and empty are the same in Prometheus
		}
		switch m.Type {
		case labels.MatchEqual:
			if m.Name != labels.MetricName && m.Value != "" {
				contains[m.Name] = m.Value // all equalities in one containment test, served by the GIN index
				continue
			}
			f.conds = append(f.conds, col()+" = "+f.arg(m.Value))
		case labels.MatchNotEqual:
			f.conds = append(f.conds, col()+" <> "+f.arg(m.Value))
		case labels.MatchRegexp, labels.MatchNotRegexp:
			cond, condExact := regexCondition(f, col, m, regexPushdown)
			if cond != "" {
				f.conds = append(f.conds, cond)
			}
			exact = exact && condExact
		}
	}
	if len(contains) > 0 {
		f.conds = append(f.conds, "s.labels @> "+f.arg(metrics.CanonicalLabels(contains))+"::jsonb")
	}
	if !q.AnyTime {
		f.conds = append(f.conds, hasPointsSQL(f.arg(time.UnixMilli(q.MinT).UTC()), f.arg(time.UnixMilli(q.MaxT).UTC().Add(time.Millisecond-time.Microsecond)),
			f.arg(ChunkWindow)))
	}
	return f, exact
}

// regexCondition is the SQL for a (negated) regular-expression matcher on
// col, or "" when none can be given; exact says whether it is exact.
func regexCondition(f *filterSQL, col func() string, m *labels.Matcher, regexPushdown bool) (string, bool) {
	negate := m.Type == labels.MatchNotRegexp
	if set := m.SetMatches(); len(set) > 0 {
		if negate {
			return col() + " <> ALL(" + f.arg(set) + "::text[])", true
		}
		return col() + " = ANY(" + f.arg(set) + "::text[])", true
	}
	if re, ok := postgresRegex(m.Value); ok && regexPushdown {
		op := " ~ "
		if negate {
			op = " !~ "
		}
		return col() + ` COLLATE "C"` + op + f.arg(re), false
	}
	if prefix := m.Prefix(); prefix != "" && !negate {
		return col() + " LIKE " + f.arg(likeEscaper.Replace(prefix)+"%"), false
	}
	return "", false
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// postgresRegex returns a PostgreSQL regular expression that matches what
// Prometheus' fully anchored RE2 matcher for re matches, for a conservative
// subset of the syntax on which the two dialects agree: ASCII letters and
// digits, a few punctuation characters, . * + ? | ( ) and bracket
// expressions, and backslash before punctuation. Anything else (flags,
// counted repetition, Perl classes, anchors, non-ASCII) is not translated.
func postgresRegex(re string) (string, bool) {
	if re == "" || len(re) > 1024 || strings.Contains(re, "(?") {
		return "", false
	}
	for i := 0; i < len(re); i++ {
		c := re[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_:.-*+?|()[]/=@,; ", c) >= 0:
		case c == '^' && i > 0 && re[i-1] == '[':
		case c == '\\' && i+1 < len(re) && strings.IndexByte(`\.-*+?|()[]/^$`, re[i+1]) >= 0:
			i++
		default:
			return "", false
		}
	}
	return "^(?:" + re + ")$", true
}
