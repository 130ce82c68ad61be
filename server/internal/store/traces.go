package store

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// WriteTraceUpserts merges a group of upserts into the stored traces,
// observations and scores in one transaction. Rows are locked first (advisory
// locks in a fixed order, which also covers rows that do not exist yet), then
// read, merged with the Langfuse rules, and written back. The locks are taken
// on hash buckets of the ids, not one per id, so a transaction holds at most
// traceLockBuckets of them however many ids its group has.
func (s *Store) WriteTraceUpserts(ctx context.Context, project string, ups []traces.Upsert) error {
	if len(ups) == 0 {
		return nil
	}
	type key struct {
		kind traces.Kind
		id   string
	}
	byKey := map[key][]traces.Upsert{}
	for _, u := range ups {
		k := key{u.Kind, u.ID}
		byKey[k] = append(byKey[k], u)
	}
	buckets := map[int32]bool{}
	for k := range byKey {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s\x00%s\x00%s", k.kind, project, k.id)
		buckets[int32(h.Sum64()%traceLockBuckets)] = true
	}
	locks := make([]int32, 0, len(buckets))
	for b := range buckets {
		locks = append(locks, b)
	}
	slices.Sort(locks)

	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockBucketsTx(ctx, tx, lockSpaceTraces, locks); err != nil {
			return err
		}
		for _, kind := range []traces.Kind{traces.KindTrace, traces.KindObservation, traces.KindScore} {
			var ids []string
			for k := range byKey {
				if k.kind == kind {
					ids = append(ids, k.id)
				}
			}
			if len(ids) == 0 {
				continue
			}
			sort.Strings(ids)
			existing, err := loadEntities(ctx, tx, kind, project, ids)
			if err != nil {
				return err
			}
			rows := make([]map[string]any, 0, len(ids))
			for _, id := range ids {
				e := existing[id]
				for _, u := range byKey[key{kind, id}] {
					traces.Merge(&e, u)
				}
				rows = append(rows, entityRow(kind, id, &e))
			}
			if err := writeEntities(ctx, tx, kind, project, rows); err != nil {
				return err
			}
		}
		return nil
	})
	return classify(err)
}

var entityTables = map[traces.Kind]string{traces.KindTrace: "traces", traces.KindObservation: "observations", traces.KindScore: "scores"}

func loadEntities(ctx context.Context, tx pgx.Tx, kind traces.Kind, project string, ids []string) (map[string]traces.Entity, error) {
	rows, err := tx.Query(ctx, "SELECT id, doc, stamps FROM "+entityTables[kind]+" WHERE project_id = $1 AND id = ANY($2)", project, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]traces.Entity{}
	var id string
	var e traces.Entity
	_, err = pgx.ForEachRow(rows, []any{&id, &e.Fields, &e.Stamps}, func() error {
		out[id] = e
		e = traces.Entity{}
		return nil
	})
	return out, err
}

// entityRow extracts the columns of a merged entity.
func entityRow(kind traces.Kind, id string, e *traces.Entity) map[string]any {
	env := "default"
	if v := e.Str("environment"); v != nil {
		env = *v
	}
	row := map[string]any{"id": id, "environment": env, "doc": e.Fields, "stamps": e.Stamps}
	switch kind {
	case traces.KindTrace:
		ts := time.Now().UTC()
		if t := e.Time("timestamp"); t != nil {
			ts = *t
		}
		row["timestamp"] = ts
		row["name"], row["user_id"], row["session_id"] = e.Str("name"), e.Str("userId"), e.Str("sessionId")
		row["release"], row["version"] = e.Str("release"), e.Str("version")
		row["tags"], row["public"] = e.Strings("tags"), e.Bool("public")
	case traces.KindObservation:
		start := time.Now().UTC()
		if t := e.Time("startTime"); t != nil {
			start = *t
		}
		typ, level := "SPAN", "DEFAULT"
		if v := e.Str("type"); v != nil {
			typ = *v
		}
		if v := e.Str("level"); v != nil {
			level = *v
		}
		row["trace_id"], row["parent_observation_id"] = e.Str("traceId"), e.Str("parentObservationId")
		row["type"], row["name"], row["level"] = typ, e.Str("name"), level
		row["start_time"], row["end_time"], row["completion_start_time"] = start, e.Time("endTime"), e.Time("completionStartTime")
		row["model"], row["version"] = e.Str("model"), e.Str("version")
		row["usage_input"], row["usage_output"], row["usage_total"] = e.Num("usageDetails", "input"), e.Num("usageDetails", "output"), e.Num("usageDetails", "total")
		row["total_cost"] = e.Num("costDetails", "total")
	case traces.KindScore:
		ts := time.Now().UTC()
		if t := e.Time("timestamp"); t != nil {
			ts = *t
		}
		name := ""
		if v := e.Str("name"); v != nil {
			name = *v
		}
		row["trace_id"], row["observation_id"], row["session_id"] = e.Str("traceId"), e.Str("observationId"), e.Str("sessionId")
		row["name"], row["timestamp"] = name, ts
	}
	return row
}

var upsertSQL = map[traces.Kind]string{
	traces.KindTrace: `
		INSERT INTO traces (project_id, id, "timestamp", name, user_id, session_id, release, version, environment, tags, public, doc, stamps)
		SELECT $1, r.id, r."timestamp", r.name, r.user_id, r.session_id, r.release, r.version, r.environment,
		       ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.public, r.doc, r.stamps
		FROM jsonb_to_recordset($2::jsonb) AS r(id text, "timestamp" timestamptz, name text, user_id text, session_id text,
		     release text, version text, environment text, tags jsonb, public boolean, doc jsonb, stamps jsonb)
		ON CONFLICT (project_id, id) DO UPDATE SET
		  "timestamp" = EXCLUDED."timestamp", name = EXCLUDED.name, user_id = EXCLUDED.user_id, session_id = EXCLUDED.session_id,
		  release = EXCLUDED.release, version = EXCLUDED.version, environment = EXCLUDED.environment, tags = EXCLUDED.tags,
		  public = EXCLUDED.public, doc = EXCLUDED.doc, stamps = EXCLUDED.stamps, updated_at = now()`,
	traces.KindObservation: `
		INSERT INTO observations (project_id, id, trace_id, parent_observation_id, type, name, start_time, end_time,
		       completion_start_time, model, environment, level, version, usage_input, usage_output, usage_total, total_cost, doc, stamps)
		SELECT $1, r.id, r.trace_id, r.parent_observation_id, r.type, r.name, r.start_time, r.end_time, r.completion_start_time,
		       r.model, r.environment, r.level, r.version, r.usage_input, r.usage_output, r.usage_total, r.total_cost, r.doc, r.stamps
		FROM jsonb_to_recordset($2::jsonb) AS r(id text, trace_id text, parent_observation_id text, type text, name text,
		     start_time timestamptz, end_time timestamptz, completion_start_time timestamptz, model text, environment text,
		     level text, version text, usage_input float8, usage_output float8, usage_total float8, total_cost float8, doc jsonb, stamps jsonb)
		ON CONFLICT (project_id, id) DO UPDATE SET
		  trace_id = EXCLUDED.trace_id, parent_observation_id = EXCLUDED.parent_observation_id, type = EXCLUDED.type,
		  name = EXCLUDED.name, start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time,
		  completion_start_time = EXCLUDED.completion_start_time, model = EXCLUDED.model, environment = EXCLUDED.environment,
		  level = EXCLUDED.level, version = EXCLUDED.version, usage_input = EXCLUDED.usage_input, usage_output = EXCLUDED.usage_output,
		  usage_total = EXCLUDED.usage_total, total_cost = EXCLUDED.total_cost, doc = EXCLUDED.doc, stamps = EXCLUDED.stamps, updated_at = now()`,
	traces.KindScore: `
		INSERT INTO scores (project_id, id, trace_id, observation_id, session_id, name, "timestamp", environment, doc, stamps)
		SELECT $1, r.id, r.trace_id, r.observation_id, r.session_id, r.name, r."timestamp", r.environment, r.doc, r.stamps
		FROM jsonb_to_recordset($2::jsonb) AS r(id text, trace_id text, observation_id text, session_id text, name text,
		     "timestamp" timestamptz, environment text, doc jsonb, stamps jsonb)
		ON CONFLICT (project_id, id) DO UPDATE SET
		  trace_id = EXCLUDED.trace_id, observation_id = EXCLUDED.observation_id, session_id = EXCLUDED.session_id,
		  name = EXCLUDED.name, "timestamp" = EXCLUDED."timestamp", environment = EXCLUDED.environment,
		  doc = EXCLUDED.doc, stamps = EXCLUDED.stamps, updated_at = now()`,
}

func writeEntities(ctx context.Context, tx pgx.Tx, kind traces.Kind, project string, rows []map[string]any) error {
	payload, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, upsertSQL[kind], project, string(payload))
	return err
}
