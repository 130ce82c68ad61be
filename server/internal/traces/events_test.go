package traces

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 2, 14, 12, 0, 0, 0, time.UTC)

func TestMergeRulesAreOrderIndependent(t *testing.T) {
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	ups := []Upsert{
		{Kind: KindTrace, ID: "t", Stamp: NewStamp(t0, false), Fields: map[string]json.RawMessage{
			"timestamp": json.RawMessage(`"2026-02-14T10:00:05Z"`), "name": json.RawMessage(`"a"`), "tags": json.RawMessage(`["x"]`),
			"metadata": json.RawMessage(`{"a":1,"o":{"p":1}}`), "environment": json.RawMessage(`"one"`)}},
		{Kind: KindTrace, ID: "t", Stamp: NewStamp(t0.Add(time.Second), false), Fields: map[string]json.RawMessage{
			"timestamp": json.RawMessage(`"2026-02-14T10:00:00Z"`), "name": json.RawMessage(`"b"`), "tags": json.RawMessage(`["y","x"]`),
			"metadata": json.RawMessage(`{"a":2,"o":{"q":2}}`), "environment": json.RawMessage(`"two"`)}},
		{Kind: KindTrace, ID: "t", Stamp: Placeholder, Fields: map[string]json.RawMessage{
			"timestamp": json.RawMessage(`"2026-02-14T09:00:00Z"`), "environment": json.RawMessage(`"placeholder"`)}},
		{Kind: KindTrace, ID: "t", Stamp: NewStamp(t0.Add(2*time.Second), true), Fields: map[string]json.RawMessage{
			"output": json.RawMessage(`"done"`)}},
	}
	want := map[string]string{
		"timestamp": `"2026-02-14T10:00:00Z"`, "name": `"b"`, "tags": `["x","y"]`,
		"metadata": `{"a":2,"o":{"p":1,"q":2}}`, "environment": `"one"`, "output": `"done"`,
	}
	rng := rand.New(rand.NewSource(9))
	for round := 0; round < 50; round++ {
		rng.Shuffle(len(ups), func(i, j int) { ups[i], ups[j] = ups[j], ups[i] })
		var e Entity
		for _, u := range ups {
			Merge(&e, u)
		}
		got := map[string]string{}
		for k, v := range e.Fields {
			got[k] = string(v)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("order %d: %v, want %v", round, got, want)
		}
	}
}

func TestNormalizeEnvironment(t *testing.T) {
	for in, want := range map[string]string{"Prod": "prod", "": "default", "langfuse-x": "default", "a b": "default",
		"staging_2": "staging_2", "x-y": "x-y", "averyveryveryveryveryveryveryverylongname": "default"} {
		if got := NormalizeEnvironment(in); got != want {
			t.Errorf("NormalizeEnvironment(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUsageForms(t *testing.T) {
	cases := []struct{ in, wantUsage, wantCost string }{
		{`{"usage":{"input":10,"output":5,"inputCost":0.1,"outputCost":0.2}}`, `{"input":10,"output":5,"total":15}`, `{"input":0.1,"output":0.2,"total":0.30000000000000004}`},
		{`{"usage":{"promptTokens":3,"completionTokens":4,"totalTokens":7}}`, `{"input":3,"output":4,"total":7}`, ``},
		{`{"usageDetails":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}}`, `{"input":3,"output":4,"total":7}`, ``},
		{`{"usageDetails":{"input":3,"output":4,"cache_read":2}}`, `{"cache_read":2,"input":3,"output":4,"total":7}`, ``},
		{`{"usage":{},"costDetails":{}}`, ``, ``},
		{`{"promptTokens":1,"completionTokens":2,"totalCost":0.5}`, `{"input":1,"output":2,"total":3}`, `{"total":0.5}`},
		// Two names for one place: the same one wins every time.
		{`{"usage":{"input":5,"promptTokens":7,"totalTokens":9,"total":6}}`, `{"input":5,"total":6}`, ``},
		{`{"calculatedTotalCost":0.7,"totalCost":0.5}`, ``, `{"total":0.5}`},
		{`{"usageDetails":{"input":3,"prompt_tokens":5,"output":1}}`, `{"input":3,"output":1,"total":4}`, ``},
		{`{"usageDetails":{"prompt_tokens":5,"input_tokens":2}}`, `{"input":2,"total":2}`, ``},
		{`{"usageDetails":{"input":null,"prompt_tokens":9}}`, `{"input":9,"total":9}`, ``},
		{`{"usageDetails":{"input":null}}`, ``, ``},
		{`{"usage":{"input":null,"output":2}}`, `{"output":2,"total":2}`, ``},
		{`{"costDetails":{"total":null,"input":0.1}}`, ``, `{"input":0.1,"total":0.1}`},
	}
	for _, c := range cases {
		for range 20 { // map iteration order differs from run to run
			var f map[string]json.RawMessage
			_ = json.Unmarshal([]byte(c.in), &f)
			if err := normalizeUsage(f); err != nil {
				t.Fatalf("%s: %v", c.in, err)
			}
			if string(f["usageDetails"]) != c.wantUsage || string(f["costDetails"]) != c.wantCost {
				t.Fatalf("%s: usage %s cost %s; want %s and %s", c.in, f["usageDetails"], f["costDetails"], c.wantUsage, c.wantCost)
			}
		}
	}
}

func TestUsageErrorNamesTheFirstBadKey(t *testing.T) {
	for range 20 {
		f := map[string]json.RawMessage{"usageDetails": json.RawMessage(`{"zeta":"x","alpha":"y","input":1}`)}
		err := normalizeUsage(f)
		if err == nil || !strings.Contains(err.Error(), "usageDetails.alpha") {
			t.Fatalf("error %v, want one naming usageDetails.alpha", err)
		}
	}
}

// FuzzParseIngestion and FuzzParseNativeBatch: no body crashes the decoders,
// and every upsert they produce is well-formed. `go test` runs the seeds.
func FuzzParseIngestion(f *testing.F) {
	f.Add(`{"batch":[{"id":"e","type":"trace-create","timestamp":"2026-02-14T10:00:00Z","body":{"id":"t","tags":["a"]}}]}`)
	f.Add(`{"batch":[{"id":"e","type":"generation-create","body":{"id":"g","traceId":"t","usage":{"input":1}}}]}`)
	f.Add(`{"batch":[{"type":"score-create","body":{"id":"s","name":"n","value":"x"}},{"type":"sdk-log","body":{}}]}`)
	f.Add(`{"batch":[{"type":"span-update","body":{"id":"s","metadata":{"a":{"b":[1,2,{"c":null}]}}}}]}`)
	f.Add(`{"batch":5}`)
	f.Fuzz(func(t *testing.T, body string) {
		ups, ok, bad, err := ParseIngestion([]byte(body), now)
		if err != nil {
			return
		}
		checkUpserts(t, ups)
		for _, r := range append(ok, bad...) {
			if r.ID == "" {
				t.Fatalf("result without id for %q", body)
			}
		}
	})
}

func FuzzParseNativeBatch(f *testing.F) {
	f.Add(`{"trace":{"id":"t","name":"x"},"observations":[{"id":"o","promptTokens":1}]}`)
	f.Add(`{"observations":[{"id":"o","traceId":"t","type":"GENERATION","usageDetails":{"input":2}}]}`)
	f.Add(`{"trace":{"id":"t","metadata":[[[[[]]]]]}}`)
	f.Fuzz(func(t *testing.T, body string) {
		ups, _, _, err := ParseNativeBatch([]byte(body), now)
		if err == nil {
			checkUpserts(t, ups)
		}
	})
}

func checkUpserts(t *testing.T, ups []Upsert) {
	for _, u := range ups {
		if u.ID == "" || len(u.ID) > MaxIDLength {
			t.Fatalf("upsert with bad id %q", u.ID)
		}
		for k, v := range u.Fields {
			if !json.Valid(v) {
				t.Fatalf("field %s is not valid JSON: %q", k, v)
			}
		}
		var e Entity
		Merge(&e, u)
		Merge(&e, u) // merging twice is a no-op
	}
}

// The other rules keep one winner; at equal stamps the value decides, so
// that two spellings of one trace timestamp do not depend on arrival order.
func TestEqualStampsAreOrderIndependent(t *testing.T) {
	write := func(fields string) Upsert {
		var f map[string]json.RawMessage
		if err := json.Unmarshal([]byte(fields), &f); err != nil {
			t.Fatal(err)
		}
		return Upsert{Kind: KindTrace, ID: "t", Stamp: 7, Fields: f}
	}
	writes := []Upsert{
		write(`{"timestamp":"2026-02-14T10:00:00Z","name":"a","environment":"one","tags":["x"]}`),
		write(`{"timestamp":"2026-02-14T10:00:00+00:00","name":"b","environment":"two","tags":["y"]}`),
		write(`{"timestamp":"2026-02-14T10:00:00.000Z","name":"c","environment":"three"}`),
	}
	var first Entity
	permutations(len(writes), func(order []int) {
		e := mergeAll(writes, order)
		if first.Fields == nil {
			first = e
		} else if !e.Equal(first) {
			t.Errorf("order %v: %v, another order gave %v", order, e.Fields, first.Fields)
		}
	})
}

func TestTwoBadFieldsNameTheSameOneEveryTime(t *testing.T) {
	body := []byte(`{"observations":[{"id":"o","traceId":"t","startTime":"x","endTime":"y","level":"z"}]}`)
	for range 20 {
		_, _, _, err := ParseNativeBatch(body, now)
		if err == nil || !strings.Contains(err.Error(), "endTime") {
			t.Fatalf("error %v, want one naming endTime (the first bad field by name)", err)
		}
	}
}

func TestTooDeepFieldsAndComputedTotalsAreTheSameEveryTime(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	var total string
	for i := range 20 {
		f := map[string]json.RawMessage{"output": json.RawMessage(deep), "input": json.RawMessage(deep), "name": json.RawMessage(`"x"`)}
		if err := cleanFields(f); err == nil || !strings.HasPrefix(err.Error(), "input:") {
			t.Fatalf("error %v, want one naming input (the first too-deep field by name)", err)
		}
		u := map[string]json.RawMessage{"usageDetails": json.RawMessage(`{"input":0.1,"output":0.2,"cached":0.3,"audio":0.7}`)}
		if err := normalizeUsage(u); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			total = string(u["usageDetails"])
		} else if string(u["usageDetails"]) != total {
			t.Fatalf("usageDetails %s, then %s: a computed total must not depend on map order", total, u["usageDetails"])
		}
	}
}

// A field named like a member's stamp ("metadata/a") would steer the deep
// merge of metadata; such a name is refused.
func TestFieldNamesWithASlashAreRefused(t *testing.T) {
	body := []byte(`{"trace":{"id":"t","metadata":{"a":2},"metadata/a":"z"}}`)
	_, _, _, err := ParseNativeBatch(body, now)
	if err == nil || !strings.Contains(err.Error(), "metadata/a") {
		t.Fatalf("error %v, want a 400 naming metadata/a", err)
	}
	if _, _, _, err := ParseNativeBatch([]byte(`{"trace":{"id":"t","metadata":{"a/b":2}}}`), now); err != nil {
		t.Fatalf("a slash inside metadata's keys is data: %v", err)
	}
}

// Dropping the placeholders that real upserts cover changes no merge, into
// an empty entity or into stored ones (one holding a placeholder value, one
// holding real values).
func TestRedundantPlaceholdersChangeNothing(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	realTrace := Upsert{Kind: KindTrace, ID: "t", Stamp: NewStamp(now, false), Fields: map[string]json.RawMessage{
		"timestamp": raw(`"2026-02-14T12:00:00Z"`), "name": raw(`"gateway"`)}}
	covered := Upsert{Kind: KindTrace, ID: "t", Stamp: Placeholder, Fields: map[string]json.RawMessage{"timestamp": raw(`"2026-02-14T11:00:00Z"`)}}
	uncovered := Upsert{Kind: KindTrace, ID: "t", Stamp: Placeholder, Fields: map[string]json.RawMessage{
		"timestamp": raw(`"2026-02-14T11:00:00Z"`), "environment": raw(`"prod"`)}}
	list := []Upsert{covered, realTrace, uncovered, covered}
	kept := WithoutRedundantPlaceholders(list)
	if len(kept) != 2 || kept[0].Stamp == Placeholder || len(kept[1].Fields) != 2 {
		t.Fatalf("kept %v, want the real trace and the placeholder with an environment", kept)
	}
	if got := WithoutRedundantPlaceholders([]Upsert{covered, uncovered}); len(got) != 2 {
		t.Errorf("placeholders alone: kept %d of 2", len(got))
	}
	stored := []Entity{{}, {Fields: map[string]json.RawMessage{"timestamp": raw(`"2026-02-14T10:00:00Z"`)}, Stamps: map[string]Stamp{"timestamp": Placeholder}},
		{Fields: map[string]json.RawMessage{"timestamp": raw(`"2026-02-14T09:00:00Z"`), "name": raw(`"old"`)}, Stamps: map[string]Stamp{"timestamp": 1, "name": 1}}}
	for i, before := range stored {
		all, fewer := before.Clone(), before.Clone()
		for _, u := range list {
			Merge(&all, u)
		}
		for _, u := range kept {
			Merge(&fewer, u)
		}
		if !all.Equal(fewer) {
			t.Errorf("stored entity %d: with every placeholder %v, without the covered ones %v", i, all, fewer)
		}
	}
	one := EntityOf(realTrace)
	var merged Entity
	Merge(&merged, realTrace)
	if !one.Equal(merged) {
		t.Errorf("EntityOf %v, Merge into an empty entity %v", one, merged)
	}
}
