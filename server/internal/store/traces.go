package store

import (
	"context"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

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
		buckets[lockBucket(k, project)] = true
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

// lockBucket is the advisory-lock bucket of an entity (see traceLockBuckets).
func lockBucket(k entityKey, project string) int32 {
	// The bytes hashed never change: processes of two versions side by side
	// (a rolling upgrade) must lock the same bucket for the same id.
	h := fnv.New64a()
	_, _ = h.Write([]byte(string(k.kind) + "\x00" + project + "\x00" + k.id))
	return int32(h.Sum64() % traceLockBuckets)
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
		rows := make([][]any, 0, len(ids))
		for _, id := range ids {
			e := g.fresh[entityKey{kind, id}]
			rows = append(rows, entityValues(kind, id, &e))
		}
		first := len(args) + 1
		args = append(args, columnArrays(kind, rows)...)
		name := string(kind)
		ctes = append(ctes, name+" AS ("+insertSQL(kind, first)+" ON CONFLICT (project_id, id) DO NOTHING RETURNING id)")
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
		rows := make([][]any, 0, len(ids))
		for _, id := range ids {
			before, hadRow := existing[id]
			e := before.Clone()
			for _, u := range g.byKey[entityKey{kind, id}] {
				traces.Merge(&e, u)
			}
			if hadRow && e.Equal(before) {
				continue // e.g. a placeholder for a trace that has its real values: nothing to write
			}
			rows = append(rows, entityValues(kind, id, &e))
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

func writeEntities(ctx context.Context, db execer, kind traces.Kind, project string, rows [][]any) error {
	args := append([]any{project}, columnArrays(kind, rows)...)
	_, err := db.Exec(ctx, insertSQL(kind, 2)+upsertSet[kind], args...)
	return err
}
