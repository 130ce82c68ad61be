package app_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

func otlpProtobuf(traceID, spanID string, attrs map[string]string) []byte {
	tid, _ := hex.DecodeString(traceID)
	sid, _ := hex.DecodeString(spanID)
	var kvs []*commonpb.KeyValue
	for k, v := range attrs {
		kvs = append(kvs, &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}})
	}
	t0 := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	b, _ := proto.Marshal(&tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
		TraceId: tid, SpanId: sid, Name: "root", StartTimeUnixNano: uint64(t0.UnixNano()), EndTimeUnixNano: uint64(t0.Add(time.Second).UnixNano()),
		Attributes: kvs}}}}}}})
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func TestOTLPEndpoints(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Env: map[string]string{"XTRACE_MAX_REQUEST_BODY_BYTES": "65536"}})
	for i, c := range []struct {
		path, ctype, enc string
		body             func(tid, sid string) []byte
	}{
		{"/api/public/otel/v1/traces", "application/x-protobuf", "", func(tid, sid string) []byte {
			return otlpProtobuf(tid, sid, map[string]string{"langfuse.trace.name": "pb", "user.id": "u-pb"})
		}},
		{"/v1/traces", "application/x-protobuf", "gzip", func(tid, sid string) []byte {
			return gz(otlpProtobuf(tid, sid, map[string]string{"langfuse.trace.name": "pb-gz", "user.id": "u-pbgz"}))
		}},
		{"/api/public/otel/v1/traces", "application/json; charset=utf-8", "", func(tid, sid string) []byte {
			return []byte(fmt.Sprintf(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":%q,"spanId":%q,"name":"root","startTimeUnixNano":"1771063200000000000",
				"attributes":[{"key":"langfuse.trace.name","value":{"stringValue":"json"}},{"key":"user.id","value":{"stringValue":"u-json"}}]}]}]}]}`, tid, sid))
		}},
		{"/v1/traces", "application/json", "gzip", func(tid, sid string) []byte {
			return gz([]byte(fmt.Sprintf(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":%q,"spanId":%q,"name":"root","startTimeUnixNano":1771063200000000000,
				"attributes":[{"key":"langfuse.trace.name","value":{"stringValue":"json-gz"}},{"key":"user.id","value":{"stringValue":"u-jsongz"}}]}]}]}]}`, tid, sid)))
		}},
	} {
		tid := fmt.Sprintf("%032x", 0xabc0+i)
		sid := fmt.Sprintf("%016x", 0xdef0+i)
		headers := []string{"Content-Type", c.ctype}
		if c.enc != "" {
			headers = append(headers, "Content-Encoding", c.enc)
		}
		for attempt := 0; attempt < 2; attempt++ { // a re-export changes nothing
			r := s.Do(t, "POST", c.path, c.body(tid, sid), headers...)
			if r.Status != 200 {
				t.Fatalf("%s %s %s: %d %s", c.path, c.ctype, c.enc, r.Status, r.Body)
			}
			if strings.HasPrefix(c.ctype, "application/json") && strings.TrimSpace(string(r.Body)) != "{}" {
				t.Errorf("JSON answer %q, want {}", r.Body)
			}
			if c.ctype == "application/x-protobuf" && (len(r.Body) != 0 || r.Header.Get("Content-Type") != "application/x-protobuf") {
				t.Errorf("protobuf answer %q (%s), want an empty ExportTraceServiceResponse", r.Body, r.Header.Get("Content-Type"))
			}
		}
		tr := getJSON(t, s, "/api/public/traces/"+tid)
		obs := tr["observations"].([]any)
		if tr["id"] != tid || len(obs) != 1 || obs[0].(map[string]any)["id"] != sid || tr["userId"] == nil {
			t.Errorf("%s %s: read back %v", c.ctype, c.enc, tr)
		}
	}
	if m := getJSON(t, s, "/api/public/traces"); m["meta"].(map[string]any)["totalItems"] != 4.0 {
		t.Fatalf("re-exports duplicated traces: %v", m["meta"])
	}

	// Bad input.
	bomb := gz(bytes.Repeat([]byte{'0'}, 10<<20)) // 10 MiB of zeros in ~10 KiB
	valid := otlpProtobuf(fmt.Sprintf("%032x", 1), fmt.Sprintf("%016x", 1), nil)
	cases := []struct {
		name    string
		body    []byte
		headers []string
		status  int
		want    string
	}{
		{"wrong content type", []byte(`{}`), []string{"Content-Type", "text/plain"}, 400, "Content-Type"},
		{"truncated protobuf", valid[:len(valid)-5], []string{"Content-Type", "application/x-protobuf"}, 400, "protobuf"},
		{"broken JSON", []byte(`{"resourceSpans":[`), []string{"Content-Type", "application/json"}, 400, "JSON"},
		{"gzip bomb", bomb, []string{"Content-Type", "application/x-protobuf", "Content-Encoding", "gzip"}, 413, "PAYLOAD_TOO_LARGE"},
		{"not gzip", []byte("plain"), []string{"Content-Type", "application/json", "Content-Encoding", "gzip"}, 400, "gzip"},
		{"unknown encoding", []byte("{}"), []string{"Content-Type", "application/json", "Content-Encoding", "br"}, 400, "Content-Encoding"},
		{"bad ids only", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"bm90LWhleA==","spanId":"AAAA","name":"x","startTimeUnixNano":"1"}]}]}]}`),
			[]string{"Content-Type", "application/json"}, 400, "no valid span"},
	}
	for _, c := range cases {
		r := s.Do(t, "POST", "/api/public/otel/v1/traces", c.body, c.headers...)
		if r.Status != c.status || !strings.Contains(string(r.Body), c.want) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, r.Status, r.Body, c.status, c.want)
		}
	}
	// Some spans invalid: the rest is stored and partialSuccess says how many were dropped.
	partial := fmt.Sprintf(`{"resourceSpans":[{"scopeSpans":[{"spans":[
		{"traceId":%q,"spanId":%q,"name":"ok","startTimeUnixNano":"1771063200000000000"},
		{"traceId":"zz","spanId":"zz","name":"bad","startTimeUnixNano":"1771063200000000000"}]}]}]}`, fmt.Sprintf("%032x", 77), fmt.Sprintf("%016x", 77))
	r := s.Do(t, "POST", "/api/public/otel/v1/traces", partial, "Content-Type", "application/json")
	if r.Status != 200 || !strings.Contains(string(r.Body), `"rejectedSpans":1`) {
		t.Fatalf("partial: %d %s", r.Status, r.Body)
	}
	getJSON(t, s, "/api/public/traces/"+fmt.Sprintf("%032x", 77))
	// Authentication as for ingestion.
	if r := s.Do(t, "POST", "/v1/traces", valid, "Content-Type", "application/x-protobuf", "Authorization", ""); r.Status != 401 {
		t.Errorf("OTLP without credentials: %d", r.Status)
	}
}

// TestOTLPChunkedBody: exporters may stream without Content-Length.
func TestOTLPChunkedBody(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	tid, sid := fmt.Sprintf("%032x", 0xc4c4), fmt.Sprintf("%016x", 0xc4)
	body := otlpProtobuf(tid, sid, map[string]string{"langfuse.trace.name": "chunked"})
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(body); i += 7 { // several chunks
			_, _ = pw.Write(body[i:min(i+7, len(body))])
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", s.URL+"/api/public/otel/v1/traces", pr)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer "+servertest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || req.ContentLength != -1 && req.ContentLength != 0 {
		t.Fatalf("chunked export: %d (content length %d)", resp.StatusCode, req.ContentLength)
	}
	if tr := getJSON(t, s, "/api/public/traces/"+tid); tr["name"] != "chunked" {
		t.Fatalf("chunked export not stored: %v", tr)
	}
}
