package otlp

import (
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

const (
	traceHex = "5b8efff798038103d269b633813fc60c"
	rootHex  = "eee19b7ec3c1b174"
	childHex = "eee19b7ec3c1b173"
)

var t0 = time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}
func i64(n int64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: n}}
}
func kv(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}
func mustHex(s string) []byte { b, _ := hex.DecodeString(s); return b }

func TestDecodeProtobufKeepsHexIDs(t *testing.T) {
	req := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", str("gateway")), kv("deployment.environment", str("prod"))}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "nebula", Version: "1.0"},
			Spans: []*tracepb.Span{
				{TraceId: mustHex(traceHex), SpanId: mustHex(rootHex), Name: "POST /v1/chat", StartTimeUnixNano: uint64(t0.UnixNano()),
					EndTimeUnixNano: uint64(t0.Add(time.Second).UnixNano()), Attributes: []*commonpb.KeyValue{kv("user.id", str("u1"))}},
				{TraceId: mustHex(traceHex), SpanId: mustHex(childHex), ParentSpanId: mustHex(rootHex), Name: "chat qwen",
					StartTimeUnixNano: uint64(t0.Add(10 * time.Millisecond).UnixNano()),
					Attributes:        []*commonpb.KeyValue{kv("gen_ai.usage.input_tokens", i64(12))},
					Status:            &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "upstream timeout"}},
			},
		}},
	}}}
	body, _ := proto.Marshal(req)
	spans, err := DecodeProtobuf(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 2 || spans[0].TraceID != traceHex || spans[0].SpanID != rootHex || spans[1].ParentSpanID != rootHex {
		t.Fatalf("ids: %+v", spans)
	}
	if !spans[0].Start.Equal(t0) || spans[1].StatusCode != 2 || spans[1].StatusMessage != "upstream timeout" ||
		spans[1].Attributes["gen_ai.usage.input_tokens"] != int64(12) || spans[0].Resource["deployment.environment"] != "prod" || spans[0].ScopeName != "nebula" {
		t.Fatalf("fields: %+v", spans)
	}
	if _, err := DecodeProtobuf(body[:len(body)-7]); err == nil {
		t.Fatal("truncated protobuf decoded")
	}
}

func TestDecodeJSONHexIDsAndIntForms(t *testing.T) {
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.version","value":{"stringValue":"2.1"}}],"droppedAttributesCount":0},
	  "scopeSpans":[{"scope":{"name":"langfuse-sdk","version":"5.11.1"},"spans":[
	    {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","name":"root","kind":1,
	     "startTimeUnixNano":"1771063200000000000","endTimeUnixNano":1771063201000000000,
	     "attributes":[{"key":"n1","value":{"intValue":"42"}},{"key":"n2","value":{"intValue":7}},{"key":"d","value":{"doubleValue":0.5}},
	                   {"key":"b","value":{"boolValue":true}},{"key":"arr","value":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}},
	                   {"key":"kv","value":{"kvlistValue":{"values":[{"key":"x","value":{"stringValue":"y"}}]}}}],
	     "status":{"code":2,"message":"boom"},"unknownField":{"nested":true}}]}]}]}`
	spans, err := DecodeJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	s := spans[0]
	if s.TraceID != traceHex || s.SpanID != rootHex || !s.Start.Equal(t0) || !s.End.Equal(t0.Add(time.Second)) || s.StatusCode != 2 {
		t.Fatalf("span: %+v", s)
	}
	want := map[string]any{"n1": int64(42), "n2": int64(7), "d": 0.5, "b": true, "arr": []any{"a", int64(1)}, "kv": map[string]any{"x": "y"}}
	if !reflect.DeepEqual(s.Attributes, want) {
		t.Fatalf("attributes %#v", s.Attributes)
	}
	if _, err := DecodeJSON([]byte(`{"resourceSpans":[{`)); err == nil {
		t.Fatal("broken JSON decoded")
	}
}

func fields(t *testing.T, ups []traces.Upsert, kind traces.Kind, placeholder bool) map[string]any {
	t.Helper()
	for _, u := range ups {
		if u.Kind == kind && (u.Stamp == traces.Placeholder) == placeholder {
			out := map[string]any{}
			for k, v := range u.Fields {
				var x any
				_ = json.Unmarshal(v, &x)
				out[k] = x
			}
			return out
		}
	}
	return nil
}

func TestAttributeMapping(t *testing.T) {
	base := func(attrs map[string]any, parent string) Span {
		return Span{TraceID: traceHex, SpanID: childHex, ParentSpanID: parent, Name: "op", Start: t0, End: t0.Add(2 * time.Second),
			Attributes: attrs, Resource: map[string]any{"service.name": "svc", "service.version": "9.9", "deployment.environment.name": "Staging"},
			ScopeName: "scope", ScopeVersion: "1"}
	}
	cases := []struct {
		name      string
		span      Span
		wantObs   map[string]any
		wantTrace map[string]any // nil: no trace upsert besides the placeholder
	}{
		{"root span fills the trace", base(map[string]any{"input.value": `{"q":"hi"}`, "output.value": "plain text", "user.id": "u1", "session.id": "s1"}, ""),
			map[string]any{"type": "SPAN", "level": "DEFAULT", "input": map[string]any{"q": "hi"}, "output": "plain text", "environment": "staging"},
			map[string]any{"name": "op", "userId": "u1", "sessionId": "s1", "version": "9.9", "environment": "staging",
				"timestamp": "2026-02-14T10:00:00Z", "input": map[string]any{"q": "hi"}, "output": "plain text"}},
		{"gen_ai chat span", base(map[string]any{"gen_ai.operation.name": "chat", "gen_ai.request.model": "qwen", "gen_ai.response.model": "qwen-72b",
			"gen_ai.request.temperature": 0.2, "gen_ai.usage.input_tokens": int64(12), "gen_ai.usage.output_tokens": int64(30), "gen_ai.usage.cost": 0.01,
			"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi", "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hello",
			"http.status_code": int64(200)}, rootHex),
			map[string]any{"type": "GENERATION", "model": "qwen-72b", "modelParameters": map[string]any{"temperature": 0.2},
				"usageDetails": map[string]any{"input": 12.0, "output": 30.0, "total": 42.0}, "costDetails": map[string]any{"total": 0.01},
				"input": []any{map[string]any{"role": "user", "content": "hi"}}, "output": []any{map[string]any{"role": "assistant", "content": "hello"}},
				"parentObservationId": rootHex},
			nil},
		{"langfuse attributes win", base(map[string]any{"langfuse.observation.type": "tool", "langfuse.observation.level": "warning",
			"langfuse.observation.status_message": "slow", "langfuse.observation.model.name": "m", "langfuse.observation.model.parameters": `{"top_p":0.9}`,
			"langfuse.observation.usage_details": `{"input":1,"output":2}`, "langfuse.observation.cost_details": `{"total":0.5}`,
			"langfuse.observation.completion_start_time": `"2026-02-14T10:00:00.300Z"`, "langfuse.observation.prompt.name": "p",
			"langfuse.observation.prompt.version": int64(3), "langfuse.observation.input": `["a"]`, "langfuse.observation.metadata.k": "v",
			"langfuse.trace.name": "named", "langfuse.trace.tags": `["t2","t1"]`, "langfuse.trace.public": true, "langfuse.trace.metadata": `{"m":1}`,
			"langfuse.trace.metadata.extra": "e", "langfuse.release": "rel", "langfuse.environment": "prod", "langfuse.user.id": "lu", "gen_ai.conversation.id": "conv"}, rootHex),
			map[string]any{"type": "TOOL", "level": "WARNING", "statusMessage": "slow", "model": "m", "modelParameters": map[string]any{"top_p": 0.9},
				"usageDetails": map[string]any{"input": 1.0, "output": 2.0, "total": 3.0}, "costDetails": map[string]any{"total": 0.5},
				"completionStartTime": "2026-02-14T10:00:00.3Z", "promptName": "p", "promptVersion": 3.0, "input": []any{"a"}, "environment": "prod"},
			map[string]any{"name": "named", "tags": []any{"t2", "t1"}, "public": true, "release": "rel", "environment": "prod", "userId": "lu",
				"sessionId": "conv", "metadata": map[string]any{"m": 1.0, "extra": "e", "resourceAttributes": map[string]any{"service.name": "svc",
					"service.version": "9.9", "deployment.environment.name": "Staging"}}, "version": "9.9"}},
		{"error status and comma tags", base(map[string]any{"langfuse.trace.tags": "a, b", "openinference.span.kind": "LLM"}, rootHex),
			map[string]any{"type": "GENERATION", "level": "ERROR", "statusMessage": "bad"}, map[string]any{"tags": []any{"a", "b"}}},
		{"plain completion start time and agent", base(map[string]any{"gen_ai.operation.name": "invoke_agent",
			"langfuse.observation.completion_start_time": "2026-02-14T10:00:01Z"}, rootHex),
			map[string]any{"type": "AGENT", "completionStartTime": "2026-02-14T10:00:01Z"}, nil},
	}
	cases[3].span.StatusCode, cases[3].span.StatusMessage = 2, "bad"
	for _, c := range cases {
		ups, err := spanUpserts(&c.span)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		obs := fields(t, ups, traces.KindObservation, false)
		for k, v := range c.wantObs {
			if !reflect.DeepEqual(obs[k], v) {
				t.Errorf("%s: observation.%s = %#v, want %#v", c.name, k, obs[k], v)
			}
		}
		tr := fields(t, ups, traces.KindTrace, false)
		if c.wantTrace == nil && tr != nil {
			t.Errorf("%s: unexpected trace upsert %v", c.name, tr)
		}
		for k, v := range c.wantTrace {
			if !reflect.DeepEqual(tr[k], v) {
				t.Errorf("%s: trace.%s = %#v, want %#v", c.name, k, tr[k], v)
			}
		}
		if fields(t, ups, traces.KindTrace, true) == nil {
			t.Errorf("%s: no placeholder trace (observations must create a minimal trace)", c.name)
		}
	}
	// Remaining attributes, the resource and the scope go to observation metadata.
	ups, _ := spanUpserts(&cases[1].span)
	meta := fields(t, ups, traces.KindObservation, false)["metadata"].(map[string]any)
	if meta["attributes"].(map[string]any)["http.status_code"] != 200.0 || meta["scope"].(map[string]any)["name"] != "scope" ||
		meta["resourceAttributes"].(map[string]any)["service.name"] != "svc" {
		t.Errorf("metadata %v", meta)
	}
	if _, used := meta["attributes"].(map[string]any)["gen_ai.request.model"]; used {
		t.Errorf("mapped attributes must not be repeated in metadata: %v", meta)
	}
}

func TestInvalidSpansAreRejected(t *testing.T) {
	good := Span{TraceID: traceHex, SpanID: rootHex, Name: "ok", Start: t0}
	bad := []Span{
		{TraceID: "xyz", SpanID: rootHex, Start: t0},
		{TraceID: traceHex, SpanID: "00000000000000000", Start: t0},
		{TraceID: "00000000000000000000000000000000", SpanID: rootHex, Start: t0},
		{TraceID: traceHex, SpanID: "0000000000000000", Start: t0},
		{TraceID: traceHex, SpanID: rootHex, ParentSpanID: "12", Start: t0},
		{TraceID: traceHex, SpanID: rootHex},
	}
	res := ToUpserts(append([]Span{good}, bad...))
	if res.Accepted != 1 || res.Rejected != len(bad) || res.Problem == "" {
		t.Fatalf("%+v", res)
	}
}
