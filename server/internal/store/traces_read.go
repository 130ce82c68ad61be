package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// TraceRow is a stored trace with the aggregates the read API shows.
type TraceRow struct {
	ID             string
	Timestamp      time.Time
	Environment    string
	Doc            map[string]json.RawMessage
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ObservationIDs []string
	ScoreIDs       []string
	Latency        float64 // seconds from the first observation start to the last end
	TotalCost      float64
	// Truncated names the fields replaced by a note in a list answer (see ListFieldMaxBytes).
	Truncated []string
}

// ObservationRow is a stored observation.
type ObservationRow struct {
	ID          string
	TraceID     *string
	Type        string
	StartTime   time.Time
	Environment string
	Level       string
	Doc         map[string]json.RawMessage
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Truncated names the fields replaced by a note in a list answer (see ListFieldMaxBytes).
	Truncated []string
}

// ScoreRow is a stored score.
type ScoreRow struct {
	ID          string
	Timestamp   time.Time
	Environment string
	Doc         map[string]json.RawMessage
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Page selects a page (1-based) of a list.
type Page struct{ Page, Limit int }

func (p Page) offset() int { return (p.Page - 1) * p.Limit }

// TraceFilter filters GET /api/public/traces; empty fields do not filter.
type TraceFilter struct {
	UserID, Name, SessionID, Version, Release, Environment string
	From, To                                               *time.Time
	Tags                                                   []string
	OrderBy                                                string // a column from TraceOrderColumns
	Desc                                                   bool
	Page
}

// TraceOrderColumns maps the API's orderBy fields to columns.
var TraceOrderColumns = map[string]string{
	"timestamp": `t."timestamp"`, "name": "t.name", "userId": "t.user_id", "sessionId": "t.session_id",
	"release": "t.release", "version": "t.version", "environment": "t.environment",
	"createdAt": "t.created_at", "updatedAt": "t.updated_at", "id": "t.id",
}

type where struct {
	clauses []string
	args    []any
}

func (w *where) add(clause string, arg any) {
	w.args = append(w.args, arg)
	w.clauses = append(w.clauses, strings.ReplaceAll(clause, "?", fmt.Sprintf("$%d", len(w.args))))
}

func (w *where) addIf(cond bool, clause string, arg any) {
	if cond {
		w.add(clause, arg)
	}
}

func (w *where) sql() string { return strings.Join(w.clauses, " AND ") }

// ListFieldMaxBytes bounds each field of an item in a list answer: larger
// fields (a 10 MB input, say) are replaced by a note saying how large they
// are, and the item names them, so that a page of huge traces neither takes
// the server's memory nor the client's. GET of one object returns everything.
const ListFieldMaxBytes = 32 << 10

// docColumns selects the doc of alias, whole or (in lists) with every field
// over ListFieldMaxBytes replaced, and the names of the replaced fields.
func docColumns(alias string, list bool) string {
	if !list {
		return alias + ".doc, NULL::text[]"
	}
	return fmt.Sprintf(`(SELECT jsonb_object_agg(k, CASE WHEN pg_column_size(v) > %[2]d
			THEN to_jsonb('[too large for a list: about ' || pg_column_size(v) || ' bytes; get this object by id for the whole value]'::text) ELSE v END)
			FROM jsonb_each(%[1]s.doc) AS e(k, v)),
		(SELECT array_agg(k ORDER BY k) FROM jsonb_each(%[1]s.doc) AS e(k, v) WHERE pg_column_size(v) > %[2]d)`, alias, ListFieldMaxBytes)
}

func traceColumns(list bool) string {
	return `t.id, t."timestamp", t.environment, ` + docColumns("t", list) + `, t.created_at, t.updated_at,
	coalesce(agg.ids, '{}'), coalesce(sc.ids, '{}'), coalesce(agg.latency, 0), coalesce(agg.cost, 0)`
}

const traceJoins = `
	LEFT JOIN LATERAL (
		SELECT array_agg(o.id ORDER BY o.start_time, o.id) AS ids,
		       extract(epoch FROM max(coalesce(o.end_time, o.start_time)) - min(o.start_time))::float8 AS latency,
		       sum(o.total_cost) AS cost
		FROM observations o WHERE o.project_id = t.project_id AND o.trace_id = t.id) agg ON true
	LEFT JOIN LATERAL (
		SELECT array_agg(s.id ORDER BY s."timestamp", s.id) AS ids
		FROM scores s WHERE s.project_id = t.project_id AND s.trace_id = t.id) sc ON true`

func scanTrace(row pgx.CollectableRow) (TraceRow, error) {
	var t TraceRow
	err := row.Scan(&t.ID, &t.Timestamp, &t.Environment, &t.Doc, &t.Truncated, &t.CreatedAt, &t.UpdatedAt,
		&t.ObservationIDs, &t.ScoreIDs, &t.Latency, &t.TotalCost)
	return t, err
}

// ListTraces returns one page of traces and the total count.
func (s *Store) ListTraces(ctx context.Context, project string, f TraceFilter) ([]TraceRow, int, error) {
	w := &where{}
	w.add("t.project_id = ?", project)
	w.addIf(f.UserID != "", "t.user_id = ?", f.UserID)
	w.addIf(f.Name != "", "t.name = ?", f.Name)
	w.addIf(f.SessionID != "", "t.session_id = ?", f.SessionID)
	w.addIf(f.Version != "", "t.version = ?", f.Version)
	w.addIf(f.Release != "", "t.release = ?", f.Release)
	w.addIf(f.Environment != "", "t.environment = ?", f.Environment)
	w.addIf(f.From != nil, `t."timestamp" >= ?`, f.From)
	w.addIf(f.To != nil, `t."timestamp" <= ?`, f.To)
	w.addIf(len(f.Tags) > 0, "t.tags @> ?", f.Tags)
	order := TraceOrderColumns[f.OrderBy]
	if order == "" {
		order = TraceOrderColumns["timestamp"]
	}
	dir := "ASC"
	if f.Desc {
		dir = "DESC"
	}
	orderBy := fmt.Sprintf(" ORDER BY %s %s, t.id %s", order, dir, dir)
	// The page is chosen first, then joined with its observations and
	// scores: joined before the sort, every matching trace was (a list of
	// 12,000 traces took 0.2-0.7 s, and grew with the table).
	return listWithCount(ctx, s, "SELECT count(*) FROM traces t WHERE "+w.sql(),
		"SELECT "+traceColumns(true)+" FROM (SELECT * FROM traces t WHERE "+w.sql()+orderBy+
			fmt.Sprintf(" LIMIT %d OFFSET %d) t ", f.Limit, f.offset())+traceJoins+orderBy,
		w.args, scanTrace)
}

// plannedEachTime makes a statement's args plan it afresh at each run, with
// its parameters and the tables' current sizes. A list's or an aggregate's
// cost grows with its tables; a plan cached while they were small (after
// five runs on a connection, PostgreSQL may keep a generic plan until the
// next ANALYZE) made a list of 12,000 traces ten times slower. Planning
// costs well under a millisecond.
func plannedEachTime(args []any) []any {
	return append([]any{pgx.QueryExecModeCacheDescribe}, args...)
}

func listWithCount[T any](ctx context.Context, s *Store, countSQL, listSQL string, args []any, scan pgx.RowToFunc[T]) ([]T, int, error) {
	var total int
	args = plannedEachTime(args)
	if err := s.reader(ctx).QueryRow(ctx, countSQL, args...).Scan(&total); err != nil {
		return nil, 0, classify(err)
	}
	rows, err := s.reader(ctx).Query(ctx, listSQL, args...)
	if err != nil {
		return nil, 0, classify(err)
	}
	items, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, total, nil
}

// GetTrace returns a trace with its observations and scores.
func (s *Store) GetTrace(ctx context.Context, project, id string) (*TraceRow, []ObservationRow, []ScoreRow, error) {
	rows, err := s.reader(ctx).Query(ctx, "SELECT "+traceColumns(false)+" FROM traces t "+traceJoins+" WHERE t.project_id = $1 AND t.id = $2", project, id)
	if err != nil {
		return nil, nil, nil, classify(err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTrace)
	if err != nil {
		return nil, nil, nil, classify(err)
	}
	obs, _, err := s.ListObservations(ctx, project, ObservationFilter{TraceID: id, Page: Page{1, 100000}, Ascending: true, Whole: true})
	if err != nil {
		return nil, nil, nil, err
	}
	srows, err := s.reader(ctx).Query(ctx, `SELECT id, "timestamp", environment, doc, created_at, updated_at FROM scores
		WHERE project_id = $1 AND trace_id = $2 ORDER BY "timestamp", id`, project, id)
	if err != nil {
		return nil, nil, nil, classify(err)
	}
	scores, err := pgx.CollectRows(srows, func(row pgx.CollectableRow) (ScoreRow, error) {
		var sc ScoreRow
		err := row.Scan(&sc.ID, &sc.Timestamp, &sc.Environment, &sc.Doc, &sc.CreatedAt, &sc.UpdatedAt)
		return sc, err
	})
	return &t, obs, scores, classify(err)
}

// ObservationFilter filters GET /api/public/observations.
type ObservationFilter struct {
	TraceID, Name, Type, UserID, ParentObservationID, Environment, Version string
	FromStartTime, ToStartTime                                             *time.Time
	Ascending                                                              bool
	// Whole returns every field whole (one trace's observations), not trimmed for a list.
	Whole bool
	Page
}

func observationColumns(list bool) string {
	return `o.id, o.trace_id, o.type, o.start_time, o.environment, o.level, ` + docColumns("o", list) + `, o.created_at, o.updated_at`
}

func scanObservation(row pgx.CollectableRow) (ObservationRow, error) {
	var o ObservationRow
	err := row.Scan(&o.ID, &o.TraceID, &o.Type, &o.StartTime, &o.Environment, &o.Level, &o.Doc, &o.Truncated, &o.CreatedAt, &o.UpdatedAt)
	return o, err
}

// ListObservations returns one page of observations and the total count.
func (s *Store) ListObservations(ctx context.Context, project string, f ObservationFilter) ([]ObservationRow, int, error) {
	w := &where{}
	w.add("o.project_id = ?", project)
	w.addIf(f.TraceID != "", "o.trace_id = ?", f.TraceID)
	w.addIf(f.Name != "", "o.name = ?", f.Name)
	w.addIf(f.Type != "", "o.type = ?", strings.ToUpper(f.Type))
	w.addIf(f.ParentObservationID != "", "o.parent_observation_id = ?", f.ParentObservationID)
	w.addIf(f.Environment != "", "o.environment = ?", f.Environment)
	w.addIf(f.Version != "", "o.version = ?", f.Version)
	w.addIf(f.FromStartTime != nil, "o.start_time >= ?", f.FromStartTime)
	w.addIf(f.ToStartTime != nil, "o.start_time <= ?", f.ToStartTime)
	w.addIf(f.UserID != "", "EXISTS (SELECT 1 FROM traces t WHERE t.project_id = o.project_id AND t.id = o.trace_id AND t.user_id = ?)", f.UserID)
	dir := "DESC"
	if f.Ascending {
		dir = "ASC"
	}
	return listWithCount(ctx, s, "SELECT count(*) FROM observations o WHERE "+w.sql(),
		"SELECT "+observationColumns(!f.Whole)+" FROM observations o WHERE "+w.sql()+
			fmt.Sprintf(" ORDER BY o.start_time %s, o.id %s LIMIT %d OFFSET %d", dir, dir, f.Limit, f.offset()),
		w.args, scanObservation)
}

// GetObservation returns one observation.
func (s *Store) GetObservation(ctx context.Context, project, id string) (*ObservationRow, error) {
	rows, err := s.reader(ctx).Query(ctx, "SELECT "+observationColumns(false)+" FROM observations o WHERE o.project_id = $1 AND o.id = $2", project, id)
	if err != nil {
		return nil, classify(err)
	}
	o, err := pgx.CollectExactlyOneRow(rows, scanObservation)
	if err != nil {
		return nil, classify(err)
	}
	return &o, nil
}

// SessionRow is a session: traces sharing a sessionId.
type SessionRow struct {
	ID          string
	CreatedAt   time.Time
	Environment string
}

func scanSession(row pgx.CollectableRow) (SessionRow, error) {
	var s SessionRow
	err := row.Scan(&s.ID, &s.CreatedAt, &s.Environment)
	return s, err
}

// SessionFilter filters GET /api/public/sessions.
type SessionFilter struct {
	From, To *time.Time
	Page
}

// ListSessions returns one page of sessions (newest first) and the total count.
func (s *Store) ListSessions(ctx context.Context, project string, f SessionFilter) ([]SessionRow, int, error) {
	p := f.Page
	w := &where{}
	w.add("project_id = ?", project)
	w.clauses = append(w.clauses, "session_id IS NOT NULL")
	w.addIf(f.From != nil, `"timestamp" >= ?`, f.From)
	w.addIf(f.To != nil, `"timestamp" <= ?`, f.To)
	return listWithCount(ctx, s, "SELECT count(DISTINCT session_id) FROM traces WHERE "+w.sql(),
		"SELECT session_id, min(created_at), min(environment) FROM traces WHERE "+w.sql()+
			fmt.Sprintf(" GROUP BY session_id ORDER BY min(created_at) DESC, session_id LIMIT %d OFFSET %d", p.Limit, p.offset()),
		w.args, scanSession)
}

// GetSession returns a session and its traces (oldest first).
func (s *Store) GetSession(ctx context.Context, project, id string) (*SessionRow, []TraceRow, error) {
	rows, err := s.reader(ctx).Query(ctx, "SELECT "+traceColumns(true)+" FROM traces t "+traceJoins+
		` WHERE t.project_id = $1 AND t.session_id = $2 ORDER BY t."timestamp", t.id`, project, id)
	if err != nil {
		return nil, nil, classify(err)
	}
	trs, err := pgx.CollectRows(rows, scanTrace)
	if err != nil {
		return nil, nil, classify(err)
	}
	if len(trs) == 0 {
		return nil, nil, fmt.Errorf("%w: session %s", errs.ErrNotFound, id)
	}
	sess := &SessionRow{ID: id, CreatedAt: trs[0].CreatedAt, Environment: trs[0].Environment}
	for _, t := range trs {
		if t.CreatedAt.Before(sess.CreatedAt) {
			sess.CreatedAt = t.CreatedAt
		}
	}
	return sess, trs, nil
}

// DailyFilter filters GET /api/public/metrics/daily.
type DailyFilter struct {
	TraceName, UserID string
	Tags              []string
	From, To          *time.Time
	Page
}

// DailyUsage is one model's usage on one day.
type DailyUsage struct {
	Model             string  `json:"model"`
	InputUsage        float64 `json:"inputUsage"`
	OutputUsage       float64 `json:"outputUsage"`
	TotalUsage        float64 `json:"totalUsage"`
	CountTraces       int     `json:"countTraces"`
	CountObservations int     `json:"countObservations"`
	TotalCost         float64 `json:"totalCost"`
}

// DailyRow is one UTC day of GET /api/public/metrics/daily.
type DailyRow struct {
	Date              string       `json:"date"`
	CountTraces       int          `json:"countTraces"`
	CountObservations int          `json:"countObservations"`
	TotalCost         float64      `json:"totalCost"`
	Usage             []DailyUsage `json:"usage"`
}

// DailyMetrics aggregates traces and their observations per UTC day, newest first.
func (s *Store) DailyMetrics(ctx context.Context, project string, f DailyFilter) ([]DailyRow, int, error) {
	w := &where{}
	w.add("t.project_id = ?", project)
	w.addIf(f.TraceName != "", "t.name = ?", f.TraceName)
	w.addIf(f.UserID != "", "t.user_id = ?", f.UserID)
	w.addIf(len(f.Tags) > 0, "t.tags @> ?", f.Tags)
	w.addIf(f.From != nil, `t."timestamp" >= ?`, f.From)
	w.addIf(f.To != nil, `t."timestamp" <= ?`, f.To)
	base := `WITH ft AS (SELECT t.id, t.project_id, (t."timestamp" AT TIME ZONE 'UTC')::date AS day FROM traces t WHERE ` + w.sql() + `)`
	var total int
	args := plannedEachTime(w.args)
	if err := s.reader(ctx).QueryRow(ctx, base+" SELECT count(DISTINCT day) FROM ft", args...).Scan(&total); err != nil {
		return nil, 0, classify(err)
	}
	// The page's days are aggregated in one join of their traces with
	// their observations; a subquery per day read every trace once per day.
	rows, err := s.reader(ctx).Query(ctx, base+`,
		days AS (SELECT day, count(*) AS traces FROM ft GROUP BY day ORDER BY day DESC LIMIT `+fmt.Sprint(f.Limit)+` OFFSET `+fmt.Sprint(f.offset())+`)
		SELECT to_char(d.day, 'YYYY-MM-DD'), d.traces,
		       coalesce(u.model, ''), coalesce(u.input, 0), coalesce(u.output, 0), coalesce(u.total, 0),
		       coalesce(u.traces, 0), coalesce(u.observations, 0), coalesce(u.cost, 0)
		FROM days d
		LEFT JOIN (
			SELECT ft.day, o.model, sum(o.usage_input) AS input, sum(o.usage_output) AS output, sum(o.usage_total) AS total,
			       count(DISTINCT o.trace_id) AS traces, count(*) AS observations, sum(o.total_cost) AS cost
			FROM ft JOIN days USING (day) JOIN observations o ON o.project_id = ft.project_id AND o.trace_id = ft.id
			GROUP BY ft.day, o.model) u ON u.day = d.day
		ORDER BY d.day DESC, u.model NULLS FIRST`, args...)
	if err != nil {
		return nil, 0, classify(err)
	}
	var out []DailyRow
	var date, model string
	var traces int
	var u DailyUsage
	_, err = pgx.ForEachRow(rows, []any{&date, &traces, &model, &u.InputUsage, &u.OutputUsage, &u.TotalUsage, &u.CountTraces, &u.CountObservations, &u.TotalCost}, func() error {
		if len(out) == 0 || out[len(out)-1].Date != date {
			out = append(out, DailyRow{Date: date, CountTraces: traces, Usage: []DailyUsage{}})
		}
		d := &out[len(out)-1]
		if u.CountObservations > 0 {
			d.CountObservations += u.CountObservations
			d.TotalCost += u.TotalCost
			if model != "" {
				u.Model = model
				d.Usage = append(d.Usage, u)
			}
		}
		return nil
	})
	return out, total, classify(err)
}
