package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// column is one column of a trace table after project_id.
type column struct {
	name string
	typ  string // text, timestamptz, float8, boolean, jsonb or text[]
}

// entityColumns are each kind's columns after project_id, in the order
// entityValues gives them. A group's rows travel to PostgreSQL as one array
// per column (unnest), which costs neither side a JSON document per group.
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
// text *string, timestamptz *time.Time, float8 *float64, boolean *bool,
// jsonb json.RawMessage, text[] []string.
func entityValues(kind traces.Kind, id string, e *traces.Entity) []any {
	env := ptr("default")
	if v := e.Str("environment"); v != nil {
		env = v
	}
	doc, stamps := fieldsJSON(e.Fields), stampsJSON(e.Stamps)
	switch kind {
	case traces.KindTrace:
		ts := e.Time("timestamp")
		if ts == nil {
			ts = ptr(time.Now().UTC())
		}
		return []any{&id, ts, e.Str("name"), e.Str("userId"), e.Str("sessionId"), e.Str("release"), e.Str("version"),
			env, e.Strings("tags"), ptr(e.Bool("public")), doc, stamps}
	case traces.KindObservation:
		start := e.Time("startTime")
		if start == nil {
			start = ptr(time.Now().UTC())
		}
		typ, level := ptr("SPAN"), ptr("DEFAULT")
		if v := e.Str("type"); v != nil {
			typ = v
		}
		if v := e.Str("level"); v != nil {
			level = v
		}
		usage := e.Numbers("usageDetails")
		return []any{&id, e.Str("traceId"), e.Str("parentObservationId"), typ, e.Str("name"), start,
			e.Time("endTime"), e.Time("completionStartTime"), e.Str("model"), env, level, e.Str("version"),
			usage.Get("input"), usage.Get("output"), usage.Get("total"),
			e.Numbers("costDetails").Get("total"), doc, stamps}
	default: // score
		ts := e.Time("timestamp")
		if ts == nil {
			ts = ptr(time.Now().UTC())
		}
		name := ptr("")
		if v := e.Str("name"); v != nil {
			name = v
		}
		return []any{&id, e.Str("traceId"), e.Str("observationId"), e.Str("sessionId"), name, ts, env, doc, stamps}
	}
}

func ptr[T any](v T) *T { return &v }

// columnArrays turns rows of entityValues into one typed array per column,
// the parameters of insertSQL.
func columnArrays(kind traces.Kind, rows [][]any) []any {
	cols := entityColumns[kind]
	out := make([]any, len(cols))
	for c, col := range cols {
		switch col.typ {
		case "text":
			a := make([]*string, len(rows))
			for r := range rows {
				a[r] = rows[r][c].(*string)
			}
			out[c] = a
		case "timestamptz":
			a := make([]*time.Time, len(rows))
			for r := range rows {
				a[r] = rows[r][c].(*time.Time)
			}
			out[c] = a
		case "float8":
			a := make([]*float64, len(rows))
			for r := range rows {
				a[r] = rows[r][c].(*float64)
			}
			out[c] = a
		case "boolean":
			a := make([]*bool, len(rows))
			for r := range rows {
				a[r] = rows[r][c].(*bool)
			}
			out[c] = a
		case "jsonb":
			a := make([]string, len(rows))
			for r := range rows {
				a[r] = string(rows[r][c].(json.RawMessage))
			}
			out[c] = a
		case "text[]": // travels as JSON text: a column of arrays cannot be an array of arrays
			a := make([]string, len(rows))
			for r := range rows {
				b, _ := json.Marshal(rows[r][c].([]string))
				a[r] = string(b)
			}
			out[c] = a
		}
	}
	return out
}

// insertSQLs: per kind, the INSERT of columnArrays given from parameter
// $%d on ($1 is the project), with %d left for the first parameter's number.
var insertSQLs = func() map[traces.Kind]string {
	out := map[traces.Kind]string{}
	for kind, cols := range entityColumns {
		var names, selects, arrays []string
		for i, c := range cols {
			name := pgx.Identifier{c.name}.Sanitize()
			names = append(names, name)
			arrayType, sel := c.typ+"[]", "r."+name
			switch c.typ {
			case "jsonb":
				arrayType, sel = "text[]", sel+"::jsonb"
			case "text[]":
				arrayType, sel = "text[]", "ARRAY(SELECT jsonb_array_elements_text("+sel+"::jsonb))"
			}
			selects = append(selects, sel)
			arrays = append(arrays, "$%["+strconv.Itoa(i+1)+"]d::"+arrayType)
		}
		out[kind] = "INSERT INTO " + entityTables[kind] + " (project_id, " + strings.Join(names, ", ") + ") SELECT $1, " +
			strings.Join(selects, ", ") + " FROM unnest(" + strings.Join(arrays, ", ") + ") AS r(" + strings.Join(names, ", ") + ")"
	}
	return out
}()

// insertSQL inserts the rows of a kind given as columnArrays from parameter $first on.
func insertSQL(kind traces.Kind, first int) string {
	n := len(entityColumns[kind])
	nums := make([]any, n)
	for i := range nums {
		nums[i] = first + i
	}
	return fmt.Sprintf(insertSQLs[kind], nums...)
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
		b = appendValue(appendKey(b, k), v)
	}
	return append(b, '}')
}

// appendKey appends "k": with JSON escaping when k needs it.
func appendKey(b []byte, k string) []byte {
	plain := utf8.ValidString(k)
	for i := 0; plain && i < len(k); i++ {
		plain = k[i] >= 0x20 && k[i] != '"' && k[i] != '\\'
	}
	if plain {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		return b
	}
	q, _ := json.Marshal(k)
	return append(append(b, q...), ':')
}
