package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// TestConcurrentGroupsMergeTheSameEntities: six stores (as six replicas)
// write groups that all touch the same 20 traces and observations, starting
// together while none of them exists. Every group must commit (no deadlock,
// no lost race between two first inserts) and every entity must end as the
// merge of all upserts, whichever group inserted it and whichever merged.
func TestConcurrentGroupsMergeTheSameEntities(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	url := s.pool.Config().ConnString()
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	const writers, rounds, entities = 6, 4, 20
	raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	group := func(w, r int, rng *rand.Rand) []traces.Upsert {
		at := t0.Add(time.Duration(r*writers+w) * time.Second)
		stamp := traces.NewStamp(at, false)
		var ups []traces.Upsert
		for _, i := range rng.Perm(entities) {
			id := fmt.Sprintf("cc-%d", i)
			tr, err := traces.TraceUpserts(map[string]json.RawMessage{"id": raw(id), "name": raw(fmt.Sprintf("w%d-r%d", w, r)),
				"metadata": raw(map[string]int{fmt.Sprintf("w%dr%d", w, r): r}), "tags": raw([]string{fmt.Sprintf("w%d", w)})}, stamp)
			if err != nil {
				t.Fatal(err)
			}
			// An update of the same trace, which a split may put in another write.
			update, err := traces.TraceUpserts(map[string]json.RawMessage{"id": raw(id),
				"metadata": raw(map[string]int{fmt.Sprintf("w%dr%du", w, r): r})}, stamp+1)
			if err != nil {
				t.Fatal(err)
			}
			tr = append(tr, update...)
			obs, err := traces.ObservationUpserts(map[string]json.RawMessage{"id": raw(id + "-obs"), "traceId": raw(id), "type": raw("SPAN"),
				"name": raw(fmt.Sprintf("w%d-r%d", w, r)), "startTime": raw(at.Format(time.RFC3339))}, stamp)
			if err != nil {
				t.Fatal(err)
			}
			ups = append(append(ups, tr...), obs...)
		}
		return ups
	}
	groups := make([][][]traces.Upsert, writers) // built here: group may fail the test
	for w := range groups {
		rng := rand.New(rand.NewSource(int64(w)))
		for r := 0; r < rounds; r++ {
			groups[w] = append(groups[w], group(w, r, rng))
		}
	}
	onReplicas(t, url, writers, func(w int, st *Store) error {
		for r, ups := range groups[w] {
			// Writes of 16 upserts hold whole entities (4 upserts each);
			// writes of 7 split some entities between two of them.
			if err := st.WriteTraces(ctx, "default", splitIntoWrites(ups, 16-9*(r%2))); err != nil {
				return err
			}
		}
		return nil
	})
	var ids, obsIDs []string
	for i := 0; i < entities; i++ {
		ids, obsIDs = append(ids, fmt.Sprintf("cc-%d", i)), append(obsIDs, fmt.Sprintf("cc-%d-obs", i))
	}
	stored, err := loadEntities(ctx, s.pool, traces.KindTrace, "default", ids)
	if err != nil {
		t.Fatal(err)
	}
	storedObs, err := loadEntities(ctx, s.pool, traces.KindObservation, "default", obsIDs)
	if err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf(`"w%d-r%d"`, writers-1, rounds-1) // the latest stamp
	wantMeta, wantTags := map[string]int{}, []string{}
	for w := 0; w < writers; w++ {
		for r := 0; r < rounds; r++ {
			wantMeta[fmt.Sprintf("w%dr%d", w, r)] = r
			wantMeta[fmt.Sprintf("w%dr%du", w, r)] = r
		}
		wantTags = append(wantTags, fmt.Sprintf("w%d", w))
	}
	for _, id := range ids {
		e, ok := stored[id]
		if !ok {
			t.Fatalf("trace %s not stored", id)
		}
		var meta map[string]int
		var tags []string
		_ = json.Unmarshal(e.Fields["metadata"], &meta)
		_ = json.Unmarshal(e.Fields["tags"], &tags)
		if string(e.Fields["name"]) != last || !reflect.DeepEqual(meta, wantMeta) || !reflect.DeepEqual(tags, wantTags) {
			t.Errorf("trace %s: name %s metadata %v tags %v; want name %s metadata %v tags %v",
				id, e.Fields["name"], meta, tags, last, wantMeta, wantTags)
		}
		o, ok := storedObs[id+"-obs"]
		if !ok {
			t.Fatalf("observation %s-obs not stored", id)
		}
		if string(o.Fields["name"]) != last || string(o.Fields["startTime"]) != `"`+t0.Format(time.RFC3339)+`"` {
			t.Errorf("observation %s-obs: name %s startTime %s; want %s and the first write's %s",
				id, o.Fields["name"], o.Fields["startTime"], last, t0.Format(time.RFC3339))
		}
	}
}

// splitIntoWrites cuts a group's upserts into writes of n, as from several requests.
func splitIntoWrites(ups []traces.Upsert, n int) []*TraceWrite {
	var writes []*TraceWrite
	for len(ups) > 0 {
		n := min(len(ups), n)
		writes = append(writes, PrepareTraceWrite(ups[:n]))
		ups = ups[n:]
	}
	return writes
}

// TestGroupsLargerThanOneInsert: a group's rows of a kind travel in INSERTs
// of at most maxRowsPerInsert rows. A group of several such chunks, half of
// whose traces exist already, must store every entity, with every column as
// sent, and merge the existing ones.
func TestGroupsLargerThanOneInsert(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	traceID := func(i int) string { return fmt.Sprintf("big-%03d", i) }
	write := func(from, to int, name string, at time.Time) {
		t.Helper()
		stamp := traces.NewStamp(at, false)
		var ups []traces.Upsert
		for i := from; i < to; i++ {
			tr, err := traces.TraceUpserts(map[string]json.RawMessage{"id": raw(traceID(i)), "name": raw(name),
				"timestamp": raw(t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339)),
				"tags":      raw([]string{name, fmt.Sprintf("t%d", i)})}, stamp)
			if err != nil {
				t.Fatal(err)
			}
			obs, err := traces.ObservationUpserts(map[string]json.RawMessage{"id": raw(traceID(i) + "-gen"), "traceId": raw(traceID(i)),
				"type": raw("GENERATION"), "name": raw(name), "startTime": raw(t0.Format(time.RFC3339)),
				"usageDetails": raw(map[string]int{"input": i, "output": 2 * i})}, stamp)
			if err != nil {
				t.Fatal(err)
			}
			ups = append(append(ups, tr...), obs...)
		}
		if err := s.WriteTraces(ctx, "default", splitIntoWrites(ups, 30)); err != nil {
			t.Fatal(err)
		}
	}
	const n = 3*maxRowsPerInsert + 5
	write(0, n/2, "first", t0)
	write(n/4, n, "second", t0.Add(time.Minute)) // a quarter exists already
	rows, err := s.pool.Query(ctx, `SELECT t.id, t.name, t.tags, t."timestamp", o.name, o.usage_input, o.usage_output
		FROM traces t JOIN observations o ON o.trace_id = t.id AND o.id = t.id || '-gen' ORDER BY t.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for ; rows.Next(); i++ {
		var id, name, obsName string
		var tags []string
		var ts time.Time
		var in, out float64
		if err := rows.Scan(&id, &name, &tags, &ts, &obsName, &in, &out); err != nil {
			t.Fatal(err)
		}
		want := "first"
		if i >= n/4 {
			want = "second"
		}
		wantTags := []string{want, fmt.Sprintf("t%d", i)}
		if i >= n/4 && i < n/2 {
			wantTags = []string{"first", "second", fmt.Sprintf("t%d", i)} // tags merge as a sorted set
		}
		if id != traceID(i) || name != want || obsName != want || !reflect.DeepEqual(tags, wantTags) ||
			!ts.Equal(t0.Add(time.Duration(i)*time.Second)) || in != float64(i) || out != float64(2*i) {
			t.Errorf("row %d: %s %s %v %s %s %v %v; want %s %s %v %s usage %d/%d", i, id, name, tags, ts, obsName, in, out,
				traceID(i), want, wantTags, t0.Add(time.Duration(i)*time.Second), i, 2*i)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Errorf("%d traces with their generation stored, want %d", i, n)
	}
}

// TestAConflictFallsBackToTheMerge: a group is first inserted without ON
// CONFLICT. One holding an existing entity fails as a whole, is written by
// the merge path (the new entity inserted, the existing one merged), and
// the next groups go straight to ON CONFLICT DO NOTHING. Every group feeds
// the flush gauge.
func TestAConflictFallsBackToTheMerge(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	trace := func(id, name string, at time.Time) []traces.Upsert {
		ups, err := traces.TraceUpserts(map[string]json.RawMessage{"id": raw(id), "name": raw(name), "metadata": raw(map[string]string{name: id})}, traces.NewStamp(at, false))
		if err != nil {
			t.Fatal(err)
		}
		return ups
	}
	write := func(ups ...[]traces.Upsert) {
		t.Helper()
		var all []traces.Upsert
		for _, u := range ups {
			all = append(all, u...)
		}
		if err := s.WriteTraces(ctx, "default", []*TraceWrite{PrepareTraceWrite(all)}); err != nil {
			t.Fatal(err)
		}
	}
	write(trace("fb-1", "first", t0))
	if n := s.traceConflictGroups.Load(); n != 0 {
		t.Fatalf("after a group of new entities %d groups are to skip the plain insert, want 0", n)
	}
	write(trace("fb-1", "second", t0.Add(time.Second)), trace("fb-2", "new", t0))
	if n := s.traceConflictGroups.Load(); n != conflictBackoffGroups {
		t.Fatalf("after a conflict %d groups are to skip the plain insert, want %d", n, conflictBackoffGroups)
	}
	write(trace("fb-3", "later", t0))
	if n := s.traceConflictGroups.Load(); n != conflictBackoffGroups-1 {
		t.Fatalf("one group later %d groups are to skip the plain insert, want %d", n, conflictBackoffGroups-1)
	}
	// Each of the three groups fed the flush gauge, whichever path it took.
	if n := s.traceFlush.groups; n != 3 {
		t.Errorf("the flush gauge measured %d groups, want 3", n)
	}
	stored, err := loadEntities(ctx, s.pool, traces.KindTrace, "default", []string{"fb-1", "fb-2", "fb-3"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"fb-1": {`"second"`, `{"first":"fb-1","second":"fb-1"}`},
		"fb-2": {`"new"`, `{"new":"fb-2"}`},
		"fb-3": {`"later"`, `{"later":"fb-3"}`},
	}
	for id, w := range want {
		e, ok := stored[id]
		if !ok {
			t.Errorf("trace %s not stored", id)
			continue
		}
		var gotMeta, wantMeta map[string]string
		_ = json.Unmarshal(e.Fields["metadata"], &gotMeta)
		_ = json.Unmarshal([]byte(w[1]), &wantMeta)
		if string(e.Fields["name"]) != w[0] || !reflect.DeepEqual(gotMeta, wantMeta) {
			t.Errorf("trace %s: name %s metadata %s, want %s and %s", id, e.Fields["name"], e.Fields["metadata"], w[0], w[1])
		}
	}
}
