package store

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// column is one column of a trace table after project_id.
type column struct {
	name string
	typ  string // text, timestamptz, float8, boolean, jsonb or text[]
}

// entityColumns are each kind's columns after project_id, in the order
// entityValues gives them.
var entityColumns = map[traces.Kind][]column{
	traces.KindTrace: {{"id", "text"}, {"timestamp", "timestamptz"}, {"name", "text"}, {"user_id", "text"},
		{"session_id", "text"}, {"release", "text"}, {"version", "text"}, {"environment", "text"}, {"tags", "text[]"},
		{"public", "boolean"}, {"doc", "jsonb"}, {"stamps", "jsonb"}},
	traces.KindObservation: {{"id", "text"}, {"trace_id", "text"}, {"parent_observation_id", "text"}, {"type", "text"},
		{"name", "text"}, {"start_time", "timestamptz"}, {"end_time", "timestamptz"}, {"completion_start_time", "timestamptz"},
		{"model", "text"}, {"environment", "text"}, {"level", "text"}, {"version", "text"}, {"usage_input", "float8"},
		{"usage_output", "float8"}, {"usage_total", "float8"}, {"total_cost", "float8"}, {"doc", "jsonb"}, {"stamps", "jsonb"}},
	traces.KindScore: {{"id", "text"}, {"trace_id", "text"}, {"observation_id", "text"}, {"session_id", "text"},
		{"name", "text"}, {"timestamp", "timestamptz"}, {"environment", "text"}, {"doc", "jsonb"}, {"stamps", "jsonb"}},
}

// entityValues extracts the columns of a merged entity, typed by column:
// text string, timestamptz time.Time, float8 float64, boolean bool, jsonb
// json.RawMessage, text[] []string; nil is NULL. Values, not pointers: pgx
// encodes a pointer through reflection, which cost a fifth of its encoding
// time and an allocation per column.
func entityValues(kind traces.Kind, id string, e *traces.Entity) []any {
	env := textOr(e, "environment", "default")
	doc, stamps := fieldsJSON(e.Fields), stampsJSON(e.Stamps)
	switch kind {
	case traces.KindTrace:
		return []any{id, timeOrNow(e, "timestamp"), text(e, "name"), text(e, "userId"), text(e, "sessionId"),
			text(e, "release"), text(e, "version"), env, e.Strings("tags"), e.Bool("public"), doc, stamps}
	case traces.KindObservation:
		usage := e.Numbers("usageDetails")
		return []any{id, text(e, "traceId"), text(e, "parentObservationId"), textOr(e, "type", "SPAN"), text(e, "name"),
			timeOrNow(e, "startTime"), orNull(e.Time("endTime")), orNull(e.Time("completionStartTime")), text(e, "model"),
			env, textOr(e, "level", "DEFAULT"), text(e, "version"), orNull(usage.Get("input")), orNull(usage.Get("output")),
			orNull(usage.Get("total")), orNull(e.Numbers("costDetails").Get("total")), doc, stamps}
	default: // score
		return []any{id, text(e, "traceId"), text(e, "observationId"), text(e, "sessionId"), textOr(e, "name", ""),
			timeOrNow(e, "timestamp"), env, doc, stamps}
	}
}

// orNull is v when ok, else nil (NULL).
func orNull[T any](v T, ok bool) any {
	if !ok {
		return nil
	}
	return v
}

// text is a string field, or NULL.
func text(e *traces.Entity, name string) any { return orNull(e.Str(name)) }

// textOr is a string field, or fallback when it is unset.
func textOr(e *traces.Entity, name, fallback string) any {
	if s, ok := e.Str(name); ok {
		return s
	}
	return fallback
}

// timeOrNow is a time field, or the time now when it is unset.
func timeOrNow(e *traces.Entity, name string) any {
	if t, ok := e.Time(name); ok {
		return t
	}
	return time.Now().UTC()
}

// maxRowsPerInsert bounds the rows of one INSERT: a group's rows of a kind
// take ceil(n/maxRowsPerInsert) statements, each with at most
// 1 + maxRowsPerInsert × 18 parameters (PostgreSQL takes at most 65,535),
// and a connection prepares at most one statement per kind, row count and
// conflict action.
const maxRowsPerInsert = 64

// insertStatements are the INSERTs of rows of entityValues, in chunks of at
// most maxRowsPerInsert rows, with tail appended to each: one VALUES row of
// parameters per entity. Against one INSERT ... SELECT FROM unnest(column
// arrays) per kind, PostgreSQL spends a third of the CPU on a lone request
// and 5-15% less per request in groups of 8 (BenchmarkWriteTraces).
func insertStatements(kind traces.Kind, project string, rows [][]any, tail string) []rowsInsert {
	var out []rowsInsert
	for len(rows) > 0 {
		n := min(len(rows), maxRowsPerInsert)
		args := make([]any, 0, 1+n*len(entityColumns[kind]))
		args = append(args, project)
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		out = append(out, rowsInsert{valuesSQL(kind, n, tail), args})
		rows = rows[n:]
	}
	return out
}

type rowsInsert struct {
	sql  string
	args []any
}

type valuesKey struct {
	kind traces.Kind
	rows int
	tail string
}

var valuesSQLs sync.Map // valuesKey -> string

// valuesSQL is the INSERT of n rows of a kind, then tail: $1 is the project,
// then each row's entityValues, each parameter cast to its column's type.
// It is built once per kind, row count and tail, not per group.
func valuesSQL(kind traces.Kind, n int, tail string) string {
	key := valuesKey{kind, n, tail}
	if sql, ok := valuesSQLs.Load(key); ok {
		return sql.(string)
	}
	cols := entityColumns[kind]
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c.name}.Sanitize()
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + entityTables[kind] + " (project_id, " + strings.Join(names, ", ") + ") VALUES ")
	param := 2
	for r := 0; r < n; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString("($1")
		for _, c := range cols {
			b.WriteString(", $" + strconv.Itoa(param) + "::" + c.typ)
			param++
		}
		b.WriteString(")")
	}
	b.WriteString(tail)
	sql, _ := valuesSQLs.LoadOrStore(key, b.String())
	return sql.(string)
}

// fieldsJSON writes an entity's fields as a JSON object. The values are
// valid JSON already (they were parsed); jsonb orders the keys itself.
func fieldsJSON(fields map[string]json.RawMessage) json.RawMessage {
	return objectJSON(fields, 256, func(b []byte, v json.RawMessage) []byte { return append(b, v...) })
}

// stampsJSON writes the per-field stamps as a JSON object.
func stampsJSON(stamps map[string]traces.Stamp) json.RawMessage {
	return objectJSON(stamps, 128, func(b []byte, v traces.Stamp) []byte { return strconv.AppendInt(b, int64(v), 10) })
}

// objectJSON writes m as a JSON object, each value by appendValue.
func objectJSON[V any](m map[string]V, size int, appendValue func([]byte, V) []byte) json.RawMessage {
	b := make([]byte, 0, size)
	b = append(b, '{')
	for k, v := range m {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendValue(traces.AppendName(b, k), v)
	}
	return append(b, '}')
}
