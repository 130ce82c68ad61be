package store

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// WriteTraceUpserts merges a group of upserts into the stored traces,
// observations and scores in one transaction, with Langfuse's merge rules.
//
// Most ids of a group are new (a gateway sends each request once), so the
// common case costs two round trips: one batch that begins, takes the locks
// and inserts every entity as if it were new (ON CONFLICT DO NOTHING), and
// the commit. Only ids that already existed are then read, merged and
// written back. The locks are advisory locks on hash buckets of the ids (they
// also cover rows that do not exist yet), taken in a fixed order, at most
// traceLockBuckets of them however many ids the group has.
func (s *Store) WriteTraceUpserts(ctx context.Context, project string, ups []traces.Upsert) error {
	if len(ups) == 0 {
		return nil
	}
	g := groupUpserts(project, ups)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify(err)
	}
	defer conn.Release()
	err = func() (err error) {
		defer func() {
			if err != nil {
				_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			}
		}()
		batch := &pgx.Batch{}
		batch.Queue("BEGIN")
		batch.Queue("SELECT pg_advisory_xact_lock($1, b) FROM unnest($2::int[]) AS b ORDER BY b", lockSpaceTraces, g.locks)
		insertNew := g.insertNewQuery(project)
		batch.Queue(insertNew.sql, insertNew.args...)
		results := conn.SendBatch(ctx, batch)
		if _, err := results.Exec(); err != nil {
			results.Close()
			return err
		}
		if _, err := results.Exec(); err != nil {
			results.Close()
			return err
		}
		rows, err := results.Query()
		if err != nil {
			results.Close()
			return err
		}
		inserted := map[entityKey]bool{}
		var kind, id string
		_, err = pgx.ForEachRow(rows, []any{&kind, &id}, func() error {
			inserted[entityKey{traces.Kind(kind), id}] = true
			return nil
		})
		if closeErr := results.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			return err
		}
		if err := g.mergeExisting(ctx, conn, project, inserted); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "COMMIT")
		return err
	}()
	return classify(err)
}

type entityKey struct {
	kind traces.Kind
	id   string
}

// upsertGroup is a group of upserts by entity, each merged as if new.
type upsertGroup struct {
	byKey map[entityKey][]traces.Upsert
	keys  map[traces.Kind][]string // sorted ids per kind
	fresh map[entityKey]traces.Entity
	locks []int32
}

func groupUpserts(project string, ups []traces.Upsert) *upsertGroup {
	g := &upsertGroup{byKey: map[entityKey][]traces.Upsert{}, keys: map[traces.Kind][]string{}, fresh: map[entityKey]traces.Entity{}}
	for _, u := range ups {
		k := entityKey{u.Kind, u.ID}
		if _, seen := g.byKey[k]; !seen {
			g.keys[u.Kind] = append(g.keys[u.Kind], u.ID)
		}
		g.byKey[k] = append(g.byKey[k], u)
	}
	buckets := map[int32]bool{}
	for k, list := range g.byKey {
		var e traces.Entity
		for _, u := range list {
			traces.Merge(&e, u)
		}
		g.fresh[k] = e
		h := fnv.New64a()
		fmt.Fprintf(h, "%s\x00%s\x00%s", k.kind, project, k.id)
		buckets[int32(h.Sum64()%traceLockBuckets)] = true
	}
	for _, ids := range g.keys {
		sort.Strings(ids)
	}
	for b := range buckets {
		g.locks = append(g.locks, b)
	}
	slices.Sort(g.locks)
	return g
}

type query struct {
	sql  string
	args []any
}

// insertNewQuery inserts every entity of the group as new, skipping those
// that exist, and returns the (kind, id) of the rows it inserted.
func (g *upsertGroup) insertNewQuery(project string) query {
	var ctes, selects []string
	args := []any{project}
	for _, kind := range []traces.Kind{traces.KindTrace, traces.KindObservation, traces.KindScore} {
		ids := g.keys[kind]
		if len(ids) == 0 {
			continue
		}
		rows := make([]map[string]any, 0, len(ids))
		for _, id := range ids {
			e := g.fresh[entityKey{kind, id}]
			rows = append(rows, entityRow(kind, id, &e))
		}
		payload, _ := json.Marshal(rows)
		args = append(args, string(payload))
		name := string(kind)
		ctes = append(ctes, name+" AS ("+insertSQL(kind, len(args))+" ON CONFLICT (project_id, id) DO NOTHING RETURNING id)")
		selects = append(selects, "SELECT '"+name+"', id FROM "+name)
	}
	return query{sql: "WITH " + strings.Join(ctes, ", ") + " " + strings.Join(selects, " UNION ALL "), args: args}
}

// mergeExisting reads the entities of the group that were not inserted (they
// existed), merges the group's upserts into them and writes them back.
func (g *upsertGroup) mergeExisting(ctx context.Context, conn *pgxpool.Conn, project string, inserted map[entityKey]bool) error {
	for _, kind := range []traces.Kind{traces.KindTrace, traces.KindObservation, traces.KindScore} {
		var ids []string
		for _, id := range g.keys[kind] {
			if !inserted[entityKey{kind, id}] {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		existing, err := loadEntities(ctx, conn, kind, project, ids)
		if err != nil {
			return err
		}
		rows := make([]map[string]any, 0, len(ids))
		for _, id := range ids {
			before, hadRow := existing[id]
			e := before.Clone()
			for _, u := range g.byKey[entityKey{kind, id}] {
				traces.Merge(&e, u)
			}
			if hadRow && e.Equal(before) {
				continue // e.g. a placeholder for a trace that has its real values: nothing to write
			}
			rows = append(rows, entityRow(kind, id, &e))
		}
		if len(rows) == 0 {
			continue
		}
		if err := writeEntities(ctx, conn, kind, project, rows); err != nil {
			return err
		}
	}
	return nil
}

var entityTables = map[traces.Kind]string{traces.KindTrace: "traces", traces.KindObservation: "observations", traces.KindScore: "scores"}

func loadEntities(ctx context.Context, db querier, kind traces.Kind, project string, ids []string) (map[string]traces.Entity, error) {
	rows, err := db.Query(ctx, "SELECT id, doc, stamps FROM "+entityTables[kind]+" WHERE project_id = $1 AND id = ANY($2)", project, ids)
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

var insertSQLs = map[traces.Kind]string{
	traces.KindTrace: `
		INSERT INTO traces (project_id, id, "timestamp", name, user_id, session_id, release, version, environment, tags, public, doc, stamps)
		SELECT $1, r.id, r."timestamp", r.name, r.user_id, r.session_id, r.release, r.version, r.environment,
		       ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.public, r.doc, r.stamps
		FROM jsonb_to_recordset($%d::jsonb) AS r(id text, "timestamp" timestamptz, name text, user_id text, session_id text,
		     release text, version text, environment text, tags jsonb, public boolean, doc jsonb, stamps jsonb)`,
	traces.KindObservation: `
		INSERT INTO observations (project_id, id, trace_id, parent_observation_id, type, name, start_time, end_time,
		       completion_start_time, model, environment, level, version, usage_input, usage_output, usage_total, total_cost, doc, stamps)
		SELECT $1, r.id, r.trace_id, r.parent_observation_id, r.type, r.name, r.start_time, r.end_time, r.completion_start_time,
		       r.model, r.environment, r.level, r.version, r.usage_input, r.usage_output, r.usage_total, r.total_cost, r.doc, r.stamps
		FROM jsonb_to_recordset($%d::jsonb) AS r(id text, trace_id text, parent_observation_id text, type text, name text,
		     start_time timestamptz, end_time timestamptz, completion_start_time timestamptz, model text, environment text,
		     level text, version text, usage_input float8, usage_output float8, usage_total float8, total_cost float8, doc jsonb, stamps jsonb)`,
	traces.KindScore: `
		INSERT INTO scores (project_id, id, trace_id, observation_id, session_id, name, "timestamp", environment, doc, stamps)
		SELECT $1, r.id, r.trace_id, r.observation_id, r.session_id, r.name, r."timestamp", r.environment, r.doc, r.stamps
		FROM jsonb_to_recordset($%d::jsonb) AS r(id text, trace_id text, observation_id text, session_id text, name text,
		     "timestamp" timestamptz, environment text, doc jsonb, stamps jsonb)`,
}

// insertSQL inserts the rows of a kind given as a JSON array in parameter $arg.
func insertSQL(kind traces.Kind, arg int) string { return fmt.Sprintf(insertSQLs[kind], arg) }

// upsertSet completes insertSQL into an upsert that replaces stored rows.
var upsertSet = map[traces.Kind]string{
	traces.KindTrace: `
		ON CONFLICT (project_id, id) DO UPDATE SET
		  "timestamp" = EXCLUDED."timestamp", name = EXCLUDED.name, user_id = EXCLUDED.user_id, session_id = EXCLUDED.session_id,
		  release = EXCLUDED.release, version = EXCLUDED.version, environment = EXCLUDED.environment, tags = EXCLUDED.tags,
		  public = EXCLUDED.public, doc = EXCLUDED.doc, stamps = EXCLUDED.stamps, updated_at = now()`,
	traces.KindObservation: `
		ON CONFLICT (project_id, id) DO UPDATE SET
		  trace_id = EXCLUDED.trace_id, parent_observation_id = EXCLUDED.parent_observation_id, type = EXCLUDED.type,
		  name = EXCLUDED.name, start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time,
		  completion_start_time = EXCLUDED.completion_start_time, model = EXCLUDED.model, environment = EXCLUDED.environment,
		  level = EXCLUDED.level, version = EXCLUDED.version, usage_input = EXCLUDED.usage_input, usage_output = EXCLUDED.usage_output,
		  usage_total = EXCLUDED.usage_total, total_cost = EXCLUDED.total_cost, doc = EXCLUDED.doc, stamps = EXCLUDED.stamps, updated_at = now()`,
	traces.KindScore: `
		ON CONFLICT (project_id, id) DO UPDATE SET
		  trace_id = EXCLUDED.trace_id, observation_id = EXCLUDED.observation_id, session_id = EXCLUDED.session_id,
		  name = EXCLUDED.name, "timestamp" = EXCLUDED."timestamp", environment = EXCLUDED.environment,
		  doc = EXCLUDED.doc, stamps = EXCLUDED.stamps, updated_at = now()`,
}

func writeEntities(ctx context.Context, db execer, kind traces.Kind, project string, rows []map[string]any) error {
	payload, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, insertSQL(kind, 2)+upsertSet[kind], project, string(payload))
	return err
}
