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
