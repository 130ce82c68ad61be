package app_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

type ingestResult struct {
	Successes []struct {
		ID     string `json:"id"`
		Status int    `json:"status"`
	} `json:"successes"`
	Errors []struct {
		ID      string `json:"id"`
		Status  int    `json:"status"`
		Message string `json:"message"`
	} `json:"errors"`
}

func ingestEvents(t *testing.T, s *servertest.Server, events ...map[string]any) ingestResult {
	t.Helper()
	resp := s.Do(t, "POST", "/api/public/ingestion", map[string]any{"batch": events, "metadata": map[string]any{"sdk": "test"}})
	if resp.Status != 207 {
		t.Fatalf("ingestion: %d %s", resp.Status, resp.Body)
	}
	var r ingestResult
	resp.JSON(t, &r)
	return r
}

func event(id, typ string, ts time.Time, body map[string]any) map[string]any {
	return map[string]any{"id": id, "type": typ, "timestamp": ts.Format(time.RFC3339Nano), "body": body}
}

func getJSON(t *testing.T, s *servertest.Server, path string) map[string]any {
	t.Helper()
	resp := s.Do(t, "GET", path, nil)
	if resp.Status != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.Status, resp.Body)
	}
	var v map[string]any
	resp.JSON(t, &v)
	return v
}

func TestNativeBatchAndTraceRead(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	resp := s.Do(t, "POST", "/v1/l/batch", `{
	  "trace": {"id": "req-1", "timestamp": "2026-02-14T10:00:00Z", "name": "/v1/chat/completions", "userId": "team-a",
	            "sessionId": "sess-1", "tags": ["gateway"], "release": "r1", "version": "v1", "environment": "prod",
	            "input": {"messages": [{"role": "user", "content": "hi"}]}, "metadata": {"region": "eu"}},
	  "observations": [
	    {"id": "gen-1", "type": "GENERATION", "name": "chat", "startTime": "2026-02-14T10:00:00.100Z",
	     "completionStartTime": "2026-02-14T10:00:00.400Z", "endTime": "2026-02-14T10:00:01.100Z",
	     "model": "qwen-72b", "modelParameters": {"temperature": 0.2}, "input": "hi", "output": "hello",
	     "promptTokens": 12, "completionTokens": 30, "totalCost": 0.0042},
	    {"id": "route-1", "name": "routing", "startTime": "2026-02-14T10:00:00.000Z", "endTime": "2026-02-14T10:00:00.050Z",
	     "metadata": {"endpoint": "http://10.0.0.7:8000"}}
	  ]}`)
	if resp.Status != 200 || strings.TrimSpace(string(resp.Body)) != `{"accepted":{"observations":2,"traces":1}}` {
		t.Fatalf("native batch: %d %s", resp.Status, resp.Body)
	}
	tr := getJSON(t, s, "/api/public/traces/req-1")
	want := map[string]any{
		"id": "req-1", "name": "/v1/chat/completions", "userId": "team-a", "sessionId": "sess-1", "release": "r1",
		"version": "v1", "environment": "prod", "timestamp": "2026-02-14T10:00:00.000Z", "projectId": "default",
		"latency": 1.1, "totalCost": 0.0042, "tags": []any{"gateway"}, "metadata": map[string]any{"region": "eu"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(tr[k], v) {
			t.Errorf("trace.%s = %#v, want %#v", k, tr[k], v)
		}
	}
	obs := tr["observations"].([]any)
	if len(obs) != 2 || obs[0].(map[string]any)["id"] != "route-1" {
		t.Fatalf("observations not embedded in start order: %v", obs)
	}
	gen := obs[1].(map[string]any)
	checks := map[string]any{
		"type": "GENERATION", "model": "qwen-72b", "traceId": "req-1", "level": "DEFAULT", "promptTokens": 12.0,
		"completionTokens": 30.0, "totalTokens": 42.0, "calculatedTotalCost": 0.0042, "latency": 1.0,
		"timeToFirstToken": 0.3, "usage": map[string]any{"unit": "TOKENS", "input": 12.0, "output": 30.0, "total": 42.0},
		"modelParameters": map[string]any{"temperature": 0.2}, "output": "hello",
	}
	for k, v := range checks {
		if got := gen[k]; !reflect.DeepEqual(got, v) && !(isFloat(got) && isFloat(v) && approxEqual(got.(float64), v.(float64))) {
			t.Errorf("generation.%s = %#v, want %#v", k, got, v)
		}
	}
	if obs[0].(map[string]any)["type"] != "SPAN" {
		t.Errorf("observation without type is a SPAN: %v", obs[0])
	}
	// The same observation by id, and 404s.
	if o := getJSON(t, s, "/api/public/observations/gen-1"); o["model"] != "qwen-72b" {
		t.Errorf("observation by id: %v", o)
	}
	for _, path := range []string{"/api/public/traces/nope", "/api/public/observations/nope", "/api/public/sessions/nope"} {
		if r := s.Do(t, "GET", path, nil); r.Status != 404 || !strings.Contains(string(r.Body), `"code":"NOT_FOUND"`) {
			t.Errorf("%s: %d %s", path, r.Status, r.Body)
		}
	}
	// Idempotent retry: the same batch again changes nothing.
	before := s.Do(t, "GET", "/api/public/traces/req-1", nil).Body
	resp = s.Do(t, "POST", "/v1/l/batch", `{"trace":{"id":"req-1","timestamp":"2026-02-14T10:00:00Z","name":"/v1/chat/completions"}}`)
	if resp.Status != 200 {
		t.Fatal(resp.Status)
	}
	after := getJSON(t, s, "/api/public/traces/req-1")
	var b map[string]any
	_ = json.Unmarshal(before, &b)
	delete(b, "updatedAt")
	delete(after, "updatedAt")
	if !reflect.DeepEqual(b, after) {
		t.Errorf("retry changed the trace:\nbefore %v\nafter  %v", b, after)
	}
}

func isFloat(v any) bool { _, ok := v.(float64); return ok }

func TestNativeBatchValidation(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	long := strings.Repeat("x", 801)
	deep := strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70)
	cases := []struct{ body, want string }{
		{`not json`, "body: must be a JSON object"},
		{`{}`, "body: needs a trace or at least one observation"},
		{`{"trace":{"name":"x"}}`, "trace.id: required"},
		{`{"trace":{"id":""}}`, "trace.id: must be a non-empty string"},
		{`{"trace":{"id":"` + long + `"}}`, "trace.id: longer than 800 characters"},
		{`{"trace":{"id":5}}`, "trace.id: must be a non-empty string"},
		{`{"trace":{"id":"t","timestamp":"yesterday"}}`, `is not ISO 8601 with an offset`},
		{`{"trace":{"id":"t","tags":"gateway"}}`, "trace.tags: must be an array of strings"},
		{`{"trace":{"id":"t","public":"yes"}}`, "trace.public: must be a boolean"},
		{`{"trace":{"id":"t","metadata":` + deep + `}}`, "nested deeper than 64 levels"},
		{`{"observations":[{"id":"o"}]}`, "observations[0].traceId: required"},
		{`{"trace":{"id":"t"},"observations":[{"id":"o1"},{"name":"no id"}]}`, "observations[1].id: required"},
		{`{"trace":{"id":"t"},"observations":[{"id":"o","type":"THING"}]}`, "observations[0].type:"},
		{`{"trace":{"id":"t"},"observations":[{"id":"o","level":"LOUD"}]}`, "observations[0].level:"},
		{`{"trace":{"id":"t"},"observations":[{"id":"o","startTime":"10:00"}]}`, "observations[0].startTime:"},
		{`{"trace":{"id":"t"},"observations":[{"id":"o","usageDetails":{"input":"many"}}]}`, "observations[0].usageDetails.input: must be a number"},
		{`{"trace":{"id":"t"},"observations":[5]}`, "observations[0]: must be an object"},
	}
	for _, c := range cases {
		resp := s.Do(t, "POST", "/v1/l/batch", c.body)
		if resp.Status != 400 || !strings.Contains(string(resp.Body), c.want) {
			t.Errorf("%.60s: %d %s; want 400 with %q", c.body, resp.Status, resp.Body, c.want)
		}
	}
	// Nothing was written by the rejected batches (one of them had a valid trace and observation).
	if got := getJSON(t, s, "/api/public/traces"); got["meta"].(map[string]any)["totalItems"] != 0.0 {
		t.Fatalf("rejected batches wrote traces: %v", got["meta"])
	}
	if r := s.Do(t, "POST", "/api/public/ingestion", `{"events":[]}`); r.Status != 400 || !strings.Contains(string(r.Body), "batch: required") {
		t.Errorf("ingestion without batch: %d %s", r.Status, r.Body)
	}
}

func TestIngestionEventsAndPerEventErrors(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	events := []map[string]any{
		event("e1", "trace-create", t0, map[string]any{"id": "tr", "name": "agent-run", "userId": "u1", "environment": "Staging"}),
		event("e2", "span-create", t0, map[string]any{"id": "sp", "traceId": "tr", "name": "plan", "startTime": t0.Format(time.RFC3339)}),
		event("e3", "event-create", t0, map[string]any{"id": "ev", "traceId": "tr", "parentObservationId": "sp", "name": "tick", "startTime": t0.Format(time.RFC3339)}),
		event("e4", "generation-create", t0, map[string]any{"id": "gen", "traceId": "tr", "model": "m", "startTime": t0.Format(time.RFC3339),
			"usage": map[string]any{"input": 10, "output": 5, "inputCost": 0.1, "outputCost": 0.2}}),
		event("e5", "agent-create", t0, map[string]any{"id": "ag", "traceId": "tr", "startTime": t0.Format(time.RFC3339)}),
		event("e6", "tool-create", t0, map[string]any{"id": "tl", "traceId": "tr", "startTime": t0.Format(time.RFC3339)}),
		event("e7", "observation-create", t0, map[string]any{"id": "ob", "traceId": "tr", "type": "retriever", "startTime": t0.Format(time.RFC3339)}),
		event("e8", "score-create", t0, map[string]any{"id": "sc1", "traceId": "tr", "name": "quality", "value": 0.9}),
		event("e9", "score-create", t0, map[string]any{"id": "sc2", "traceId": "tr", "name": "label", "value": "good"}),
		event("e10", "sdk-log", t0, map[string]any{"log": "hello"}),
		event("bad1", "made-up-create", t0, map[string]any{"id": "x"}),
		event("bad2", "span-create", t0, map[string]any{"traceId": "tr"}),
		event("bad3", "trace-create", t0, map[string]any{"id": strings.Repeat("y", 801)}),
		{"id": "bad4", "type": "trace-create", "timestamp": "not a time", "body": map[string]any{"id": "z"}},
		event("bad5", "score-create", t0, map[string]any{"id": "sc3", "traceId": "tr", "value": 1}),
		event("e1", "trace-create", t0, map[string]any{"id": "tr", "name": "agent-run"}), // duplicate envelope
	}
	r := ingestEvents(t, s, events...)
	if len(r.Successes) != 11 || len(r.Errors) != 5 {
		t.Fatalf("successes %d errors %d: %+v", len(r.Successes), len(r.Errors), r)
	}
	wantErr := map[string]string{"bad1": "unknown event type", "bad2": "id: required", "bad3": "longer than 800",
		"bad4": "timestamp", "bad5": "name: required"}
	for _, e := range r.Errors {
		if e.Status != 400 || !strings.Contains(e.Message, wantErr[e.ID]) {
			t.Errorf("error for %s: %+v, want message with %q", e.ID, e, wantErr[e.ID])
		}
	}
	tr := getJSON(t, s, "/api/public/traces/tr")
	if tr["environment"] != "staging" || tr["userId"] != "u1" {
		t.Errorf("trace: %v", tr)
	}
	types := map[string]string{}
	for _, o := range tr["observations"].([]any) {
		m := o.(map[string]any)
		types[m["id"].(string)] = m["type"].(string)
	}
	wantTypes := map[string]string{"sp": "SPAN", "ev": "EVENT", "gen": "GENERATION", "ag": "AGENT", "tl": "TOOL", "ob": "RETRIEVER"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("observation types %v, want %v", types, wantTypes)
	}
	scores := tr["scores"].([]any)
	if len(scores) != 2 {
		t.Fatalf("scores: %v", scores)
	}
	for _, sc := range scores {
		m := sc.(map[string]any)
		switch m["id"] {
		case "sc1":
			if m["dataType"] != "NUMERIC" || m["value"] != 0.9 {
				t.Errorf("numeric score: %v", m)
			}
		case "sc2":
			if m["dataType"] != "CATEGORICAL" || m["stringValue"] != "good" {
				t.Errorf("categorical score: %v", m)
			}
		}
	}
	if tr["totalCost"] != 0.30000000000000004 && !approxEqual(tr["totalCost"].(float64), 0.3) {
		t.Errorf("totalCost %v", tr["totalCost"])
	}
	// An observation whose trace does not exist creates a minimal trace.
	ingestEvents(t, s, event("o1", "span-create", t0, map[string]any{"id": "orphan-span", "traceId": "orphan-trace", "startTime": t0.Add(time.Hour).Format(time.RFC3339)}))
	if m := getJSON(t, s, "/api/public/traces/orphan-trace"); m["timestamp"] != "2026-02-14T11:00:00.000Z" || m["name"] != nil {
		t.Errorf("minimal trace: %v", m)
	}
	// The real trace arriving later replaces the placeholder values.
	ingestEvents(t, s, event("o2", "trace-create", t0.Add(2*time.Hour), map[string]any{"id": "orphan-trace", "name": "late", "timestamp": t0.Add(90 * time.Minute).Format(time.RFC3339)}))
	if m := getJSON(t, s, "/api/public/traces/orphan-trace"); m["timestamp"] != "2026-02-14T11:30:00.000Z" || m["name"] != "late" {
		t.Errorf("late trace did not replace the placeholder: %v", m)
	}
}

// TestMergeIsOrderIndependent applies the same events in many orders, in one
// batch and spread over batches, and expects the same trace every time.
func TestMergeIsOrderIndependent(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	events := func(tid string) []map[string]any {
		gid := tid + "-gen"
		return []map[string]any{
			event(tid+"a", "trace-create", at(0), map[string]any{"id": tid, "timestamp": at(0).Format(time.RFC3339), "name": "first",
				"tags": []string{"b", "a"}, "metadata": map[string]any{"k1": "v1", "nested": map[string]any{"x": 1}}, "environment": "prod"}),
			// trace.update() sends another trace-create with a newer timestamp.
			event(tid+"b", "trace-create", at(5), map[string]any{"id": tid, "timestamp": at(5).Format(time.RFC3339), "name": "renamed",
				"tags": []string{"c"}, "metadata": map[string]any{"k2": "v2", "nested": map[string]any{"y": 2}}, "environment": "other", "output": "done"}),
			event(tid+"c", "generation-create", at(1), map[string]any{"id": gid, "traceId": tid, "startTime": at(1).Format(time.RFC3339),
				"model": "m1", "usageDetails": map[string]any{"input": 3, "output": 4}}),
			event(tid+"d", "generation-update", at(3), map[string]any{"id": gid, "endTime": at(3).Format(time.RFC3339), "output": "partial",
				"startTime": at(2).Format(time.RFC3339)}), // startTime never changes once set
			event(tid+"e", "generation-update", at(4), map[string]any{"id": gid, "output": "final", "level": "WARNING", "metadata": map[string]any{"m": 1}}),
		}
	}
	normalize := func(tid string) string {
		m := getJSON(t, s, "/api/public/traces/"+tid)
		for _, k := range []string{"id", "createdAt", "updatedAt", "htmlPath"} {
			delete(m, k)
		}
		for _, o := range m["observations"].([]any) {
			om := o.(map[string]any)
			for _, k := range []string{"id", "traceId", "createdAt", "updatedAt"} {
				delete(om, k)
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	rng := rand.New(rand.NewSource(3))
	var reference string
	for round := 0; round < 8; round++ {
		tid := fmt.Sprintf("order-%d", round)
		evs := events(tid)
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		if round%2 == 0 {
			ingestEvents(t, s, evs...) // one batch
		} else {
			for _, e := range evs { // one batch per event
				ingestEvents(t, s, e)
			}
		}
		got := normalize(tid)
		if round == 0 {
			reference = got
			var m map[string]any
			_ = json.Unmarshal([]byte(got), &m)
			checks := map[string]any{"name": "renamed", "timestamp": "2026-02-14T10:00:00.000Z", "environment": "prod",
				"tags": []any{"a", "b", "c"}, "output": "done",
				"metadata": map[string]any{"k1": "v1", "k2": "v2", "nested": map[string]any{"x": 1.0, "y": 2.0}}}
			for k, v := range checks {
				if !reflect.DeepEqual(m[k], v) {
					t.Errorf("merged trace.%s = %#v, want %#v", k, m[k], v)
				}
			}
			gen := m["observations"].([]any)[0].(map[string]any)
			if gen["startTime"] != "2026-02-14T10:00:01.000Z" || gen["output"] != "final" || gen["level"] != "WARNING" ||
				gen["endTime"] != "2026-02-14T10:00:03.000Z" || gen["model"] != "m1" || gen["totalTokens"] != 7.0 {
				t.Errorf("merged generation: %v", gen)
			}
			continue
		}
		if got != reference {
			t.Fatalf("round %d merged differently:\n%s\nvs\n%s", round, got, reference)
		}
	}
}

func TestTraceListsAndFilters(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	var evs []map[string]any
	for i := 0; i < 7; i++ {
		ts := t0.Add(time.Duration(i) * time.Hour)
		if i >= 5 {
			ts = ts.Add(24 * time.Hour) // next day
		}
		tags := []string{"gateway"}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		evs = append(evs,
			event(fmt.Sprintf("t%d", i), "trace-create", ts, map[string]any{"id": fmt.Sprintf("trace-%d", i), "timestamp": ts.Format(time.RFC3339),
				"name": []string{"/v1/chat", "/v1/embed"}[i%2], "userId": fmt.Sprintf("user-%d", i%3), "sessionId": fmt.Sprintf("s-%d", i%2),
				"tags": tags, "release": "r" + fmt.Sprint(i%2), "version": "v1", "environment": []string{"prod", "dev"}[i%2]}),
			event(fmt.Sprintf("g%d", i), "generation-create", ts, map[string]any{"id": fmt.Sprintf("gen-%d", i), "traceId": fmt.Sprintf("trace-%d", i),
				"startTime": ts.Format(time.RFC3339), "model": []string{"qwen", "llama"}[i%2], "name": "llm",
				"usage": map[string]any{"promptTokens": 10, "completionTokens": i}, "costDetails": map[string]any{"total": 0.5}}))
	}
	if r := ingestEvents(t, s, evs...); len(r.Errors) != 0 {
		t.Fatal(r.Errors)
	}
	ids := func(path string) ([]string, map[string]any) {
		m := getJSON(t, s, path)
		var out []string
		for _, d := range m["data"].([]any) {
			out = append(out, d.(map[string]any)["id"].(string))
		}
		return out, m["meta"].(map[string]any)
	}
	cases := []struct {
		query string
		want  string
	}{
		{"", "trace-6 trace-5 trace-4 trace-3 trace-2 trace-1 trace-0"},
		{"?orderBy=timestamp.asc", "trace-0 trace-1 trace-2 trace-3 trace-4 trace-5 trace-6"},
		{"?userId=user-1", "trace-4 trace-1"},
		{"?name=/v1/embed", "trace-5 trace-3 trace-1"},
		{"?sessionId=s-0", "trace-6 trace-4 trace-2 trace-0"},
		{"?tags=even", "trace-6 trace-4 trace-2 trace-0"},
		{"?tags=gateway&tags=even", "trace-6 trace-4 trace-2 trace-0"},
		{"?tags=gateway,even", "trace-6 trace-4 trace-2 trace-0"},
		{"?tags=even&tags=nope", ""},
		{"?release=r1&environment=dev", "trace-5 trace-3 trace-1"},
		{"?fromTimestamp=2026-02-14T12:00:00Z&toTimestamp=2026-02-14T14:00:00Z", "trace-4 trace-3 trace-2"},
		{"?limit=2&page=2", "trace-4 trace-3"},
		{"?orderBy=name.asc&limit=3", "trace-0 trace-2 trace-4"},
	}
	for _, c := range cases {
		got, _ := ids("/api/public/traces" + c.query)
		if strings.Join(got, " ") != c.want {
			t.Errorf("traces%s = %v, want %s", c.query, got, c.want)
		}
	}
	_, m := ids("/api/public/traces?limit=2&page=2")
	if m["page"] != 2.0 || m["limit"] != 2.0 || m["totalItems"] != 7.0 || m["totalPages"] != 4.0 {
		t.Errorf("meta %v", m)
	}
	list := getJSON(t, s, "/api/public/traces?limit=1")["data"].([]any)[0].(map[string]any)
	if obs := list["observations"].([]any); len(obs) != 1 || obs[0] != "gen-6" || list["totalCost"] != 0.5 {
		t.Errorf("list item lists observation ids and cost: %v", list)
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?page=0", "?orderBy=secret.asc", "?orderBy=timestamp.sideways", "?fromTimestamp=x"} {
		if r := s.Do(t, "GET", "/api/public/traces"+bad, nil); r.Status != 400 {
			t.Errorf("traces%s: %d", bad, r.Status)
		}
	}
	// Observations.
	got, om := ids("/api/public/observations?type=GENERATION&userId=user-0&limit=10")
	if strings.Join(got, " ") != "gen-6 gen-3 gen-0" || om["totalItems"] != 3.0 {
		t.Errorf("observations by user: %v %v", got, om)
	}
	if got, _ := ids("/api/public/observations?traceId=trace-2"); strings.Join(got, " ") != "gen-2" {
		t.Errorf("observations by trace: %v", got)
	}
	if got, _ := ids("/api/public/observations?name=llm&fromStartTime=2026-02-15T00:00:00Z"); strings.Join(got, " ") != "gen-6 gen-5" {
		t.Errorf("observations by start time: %v", got)
	}
	// Sessions.
	sess, sm := ids("/api/public/sessions")
	if len(sess) != 2 || sm["totalItems"] != 2.0 {
		t.Errorf("sessions: %v %v", sess, sm)
	}
	one := getJSON(t, s, "/api/public/sessions/s-1")
	if trs := one["traces"].([]any); len(trs) != 3 || trs[0].(map[string]any)["id"] != "trace-1" {
		t.Errorf("session traces: %v", one)
	}
	// Daily metrics.
	daily := getJSON(t, s, "/api/public/metrics/daily")
	days := daily["data"].([]any)
	if len(days) != 2 {
		t.Fatalf("daily: %v", daily)
	}
	d0 := days[0].(map[string]any)
	if d0["date"] != "2026-02-15" || d0["countTraces"] != 2.0 || d0["countObservations"] != 2.0 || d0["totalCost"] != 1.0 {
		t.Errorf("newest day: %v", d0)
	}
	d1 := days[1].(map[string]any)
	usage := d1["usage"].([]any)
	if d1["countTraces"] != 5.0 || len(usage) != 2 {
		t.Fatalf("older day: %v", d1)
	}
	qwen := usage[1].(map[string]any)
	if qwen["model"] != "qwen" || qwen["inputUsage"] != 30.0 || qwen["outputUsage"] != 0.0+2+4 || qwen["countTraces"] != 3.0 {
		t.Errorf("qwen usage: %v", qwen)
	}
	if d := getJSON(t, s, "/api/public/metrics/daily?traceName=/v1/embed&userId=user-1"); len(d["data"].([]any)) != 1 {
		t.Errorf("daily filters: %v", d)
	}
	if p := getJSON(t, s, "/api/public/projects"); p["data"].([]any)[0].(map[string]any)["id"] != "default" {
		t.Errorf("projects: %v", p)
	}
}

// TestGatewayLatency: the gateway sends latency (seconds) on the trace and on
// observations. A trace's given latency wins over the computed one; an
// observation with a start and a latency but no end ends at start + latency.
func TestGatewayLatency(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	r := s.Do(t, "POST", "/v1/l/batch", `{"trace":{"id":"lat-trace","latency":1.5},"observations":[
		{"id":"lat-gen","type":"GENERATION","startTime":"2026-02-14T10:00:00Z","latency":0.8},
		{"id":"lat-span","startTime":"2026-02-14T10:00:00Z","endTime":"2026-02-14T10:00:00.2Z","latency":9}]}`)
	if r.Status != 200 {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	tr := getJSON(t, s, "/api/public/traces/lat-trace")
	if tr["latency"] != 1.5 {
		t.Errorf("trace latency %v, want the given 1.5 (computed would be 0.8)", tr["latency"])
	}
	obs := map[string]map[string]any{}
	for _, o := range tr["observations"].([]any) {
		o := o.(map[string]any)
		obs[o["id"].(string)] = o
	}
	if g := obs["lat-gen"]; g["endTime"] != "2026-02-14T10:00:00.800Z" || g["latency"] != 0.8 {
		t.Errorf("generation: endTime %v latency %v, want start + 0.8 s", g["endTime"], g["latency"])
	}
	if sp := obs["lat-span"]; sp["endTime"] != "2026-02-14T10:00:00.200Z" {
		t.Errorf("span with an end of its own: endTime %v (latency must not move it)", sp["endTime"])
	}
	if r := s.Do(t, "POST", "/v1/l/batch", `{"trace":{"id":"lat-bad","latency":-1}}`); r.Status != 400 || !strings.Contains(string(r.Body), "trace.latency:") {
		t.Errorf("negative latency: %d %s", r.Status, r.Body)
	}
}
