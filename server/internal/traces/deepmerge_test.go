package traces

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// inTimeOrder is what a deep-merged field must come out as: the writes
// applied in stamp order, each deep-merged over the value so far (where
// either side is not an object, the newer one replaces the older).
func inTimeOrder(writes []Upsert) json.RawMessage {
	sorted := slices.Clone(writes)
	slices.SortFunc(sorted, func(a, b Upsert) int { return cmp.Compare(a.Stamp, b.Stamp) })
	var v any
	for i, w := range sorted {
		var top any
		if err := json.Unmarshal(w.Fields["metadata"], &top); err != nil {
			panic(err)
		}
		if i == 0 {
			v = top
		} else {
			v = overlay(v, top)
		}
	}
	out, _ := json.Marshal(v)
	return out
}

func overlay(base, top any) any {
	b, ok1 := base.(map[string]any)
	t, ok2 := top.(map[string]any)
	if !ok1 || !ok2 {
		return top
	}
	for k, v := range t {
		if old, ok := b[k]; ok {
			b[k] = overlay(old, v)
		} else {
			b[k] = v
		}
	}
	return b
}

func metadataWrite(stamp Stamp, metadata string) Upsert {
	return Upsert{Kind: KindTrace, ID: "t", Stamp: stamp, Fields: map[string]json.RawMessage{"metadata": json.RawMessage(metadata)}}
}

func mergeAll(writes []Upsert, order []int) Entity {
	var e Entity
	for _, i := range order {
		Merge(&e, writes[i])
	}
	return e
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// permutations calls f with every order of 0..n-1.
func permutations(n int, f func([]int)) {
	var rec func(p []int, k int)
	rec = func(p []int, k int) {
		if k == len(p) {
			f(p)
			return
		}
		for i := k; i < len(p); i++ {
			p[k], p[i] = p[i], p[k]
			rec(p, k+1)
			p[k], p[i] = p[i], p[k]
		}
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	rec(p, 0)
}

// An older write that arrives last still sets what no newer write set:
// each key's value comes from the newest write that set it.
func TestDeepMergeKeepsKeysOfAnOlderWriteThatArrivesLate(t *testing.T) {
	writes := []Upsert{
		metadataWrite(0, `{"w0":0}`), metadataWrite(18, `{"w0":3}`), metadataWrite(23, `{"w5":3}`),
	}
	want := json.RawMessage(`{"w0":3,"w5":3}`)
	var first Entity
	permutations(len(writes), func(order []int) {
		e := mergeAll(writes, order)
		if !sameJSON(e.Fields["metadata"], want) {
			t.Errorf("order %v: metadata %s, want %s", order, e.Fields["metadata"], want)
		}
		if first.Fields == nil {
			first = e
		} else if !e.Equal(first) {
			t.Errorf("order %v: %v, another order gave %v", order, e, first)
		}
	})
}

// Random writes of nested objects and values over a few keys, merged in
// every order, come out as the writes applied in stamp order; with equal
// stamps (no time order to compare with) every order still agrees, stamps
// included, so that a stored entity does not depend on arrival order.
func TestDeepMergeMatchesTimeOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(16))
	var random func(depth int) string
	random = func(depth int) string {
		if depth == 0 || rng.Intn(3) == 0 {
			return []string{`1`, `2`, `"x"`, `null`, `[1]`, `{}`}[rng.Intn(6)]
		}
		var members []string
		for _, k := range []string{"a", "b", "c/d"} {
			if rng.Intn(2) == 0 {
				members = append(members, fmt.Sprintf("%q:%s", k, random(depth-1)))
			}
		}
		return "{" + strings.Join(members, ",") + "}"
	}
	for round := 0; round < 3000; round++ {
		ties := round%3 == 0
		writes := make([]Upsert, 2+rng.Intn(4))
		for i := range writes {
			stamp := Stamp(10 * (i + 1))
			if ties {
				stamp = Stamp(rng.Intn(3))
			}
			writes[i] = metadataWrite(stamp, "{"+fmt.Sprintf("%q:%s", "m", random(3))+"}")
		}
		rng.Shuffle(len(writes), func(i, j int) { writes[i], writes[j] = writes[j], writes[i] })
		var first Entity
		permutations(len(writes), func(order []int) {
			e := mergeAll(writes, order)
			if !ties {
				if want := inTimeOrder(writes); !sameJSON(e.Fields["metadata"], want) {
					t.Fatalf("round %d, writes %v, order %v: metadata %s, want %s", round, describe(writes), order, e.Fields["metadata"], want)
				}
			}
			if first.Fields == nil {
				first = e
			} else if !e.Equal(first) {
				t.Fatalf("round %d, writes %v, order %v: %s %v, another order gave %s %v", round, describe(writes), order,
					e.Fields["metadata"], e.Stamps, first.Fields["metadata"], first.Stamps)
			}
		})
	}
}

func describe(writes []Upsert) []string {
	var out []string
	for _, w := range writes {
		out = append(out, fmt.Sprintf("%d:%s", w.Stamp, w.Fields["metadata"]))
	}
	return out
}

// The stamps an entity stores are all it needs: merging a write into an
// entity read back from its stored form gives what merging into the
// in-memory one gives.
func TestDeepMergeStampsRoundTrip(t *testing.T) {
	writes := []Upsert{
		metadataWrite(30, `{"a":{"x":1},"b":2}`), metadataWrite(20, `{"a":5}`), metadataWrite(40, `{"a":{"y":2}}`),
		metadataWrite(10, `{"a":{"z":3},"c/~d":4}`), metadataWrite(50, `{"b":{"q":1}}`),
	}
	for cut := 1; cut < len(writes); cut++ {
		var live Entity
		for _, w := range writes[:cut] {
			Merge(&live, w)
		}
		raw, _ := json.Marshal(live)
		var stored Entity
		if err := json.Unmarshal(raw, &stored); err != nil {
			t.Fatal(err)
		}
		for _, w := range writes[cut:] {
			Merge(&live, w)
			Merge(&stored, w)
		}
		if !stored.Equal(live) {
			t.Errorf("after %d writes stored and read back: %s %v, in memory %s %v", cut, stored.Fields["metadata"], stored.Stamps, live.Fields["metadata"], live.Stamps)
		}
		if want := inTimeOrder(writes); !sameJSON(live.Fields["metadata"], want) {
			t.Errorf("metadata %s, want %s", live.Fields["metadata"], want)
		}
	}
}
