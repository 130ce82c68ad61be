// Package otlp turns OTLP/HTTP trace exports (protobuf or JSON) into trace
// upserts, with Langfuse's attribute mapping (SPEC-LANGFUSE §4).
package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one decoded span with its resource and scope.
type Span struct {
	TraceID, SpanID, ParentSpanID string // lower-case hex; empty parent for a root span
	Name                          string
	Start, End                    time.Time
	Attributes                    map[string]any
	StatusCode                    int // 0 unset, 1 ok, 2 error
	StatusMessage                 string
	Resource                      map[string]any
	ScopeName, ScopeVersion       string
}

// DecodeProtobuf decodes an ExportTraceServiceRequest in protobuf encoding.
// TracesData has the same wire format (field 1: repeated ResourceSpans) and
// spares a dependency on the gRPC service stubs.
func DecodeProtobuf(body []byte) ([]Span, error) {
	var req tracepb.TracesData
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("body: not an OTLP ExportTraceServiceRequest in protobuf encoding: %v", err)
	}
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		resource := protoAttrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				out = append(out, Span{
					TraceID: hexOrEmpty(sp.GetTraceId()), SpanID: hexOrEmpty(sp.GetSpanId()), ParentSpanID: hexOrEmpty(sp.GetParentSpanId()),
					Name: sp.GetName(), Start: nanos(sp.GetStartTimeUnixNano()), End: nanos(sp.GetEndTimeUnixNano()),
					Attributes: protoAttrs(sp.GetAttributes()), StatusCode: int(sp.GetStatus().GetCode()),
					StatusMessage: sp.GetStatus().GetMessage(), Resource: resource,
					ScopeName: ss.GetScope().GetName(), ScopeVersion: ss.GetScope().GetVersion(),
				})
			}
		}
	}
	return out, nil
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return hex.EncodeToString(b)
}

func nanos(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

func protoAttrs(kvs []*commonpb.KeyValue) map[string]any {
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = protoValue(kv.GetValue())
	}
	return out
}

func protoValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		arr := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			arr = append(arr, protoValue(e))
		}
		return arr
	case *commonpb.AnyValue_KvlistValue:
		return protoAttrs(x.KvlistValue.GetValues())
	}
	return nil
}

// The OTLP JSON encoding. Ids are hex strings (not base64, as a generic
// protobuf-JSON decoder would assume); 64-bit integers may be numbers or
// strings; unknown fields are ignored.
type jsonRequest struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []jsonKV `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Scope struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"scope"`
			Spans []jsonSpan `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type jsonSpan struct {
	TraceID           string          `json:"traceId"`
	SpanID            string          `json:"spanId"`
	ParentSpanID      string          `json:"parentSpanId"`
	Name              string          `json:"name"`
	StartTimeUnixNano json.RawMessage `json:"startTimeUnixNano"`
	EndTimeUnixNano   json.RawMessage `json:"endTimeUnixNano"`
	Attributes        []jsonKV        `json:"attributes"`
	Status            struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	} `json:"status"`
}

type jsonKV struct {
	Key   string        `json:"key"`
	Value *jsonAnyValue `json:"value"`
}

type jsonAnyValue struct {
	StringValue *string                           `json:"stringValue"`
	BoolValue   *bool                             `json:"boolValue"`
	IntValue    json.RawMessage                   `json:"intValue"`
	DoubleValue json.RawMessage                   `json:"doubleValue"`
	BytesValue  *string                           `json:"bytesValue"`
	ArrayValue  *struct{ Values []*jsonAnyValue } `json:"arrayValue"`
	KvlistValue *struct{ Values []jsonKV }        `json:"kvlistValue"`
}

// DecodeJSON decodes an ExportTraceServiceRequest in the OTLP JSON encoding.
func DecodeJSON(body []byte) ([]Span, error) {
	var req jsonRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("body: not an OTLP ExportTraceServiceRequest in JSON encoding: %v", err)
	}
	var out []Span
	for _, rs := range req.ResourceSpans {
		resource := jsonAttrs(rs.Resource.Attributes)
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				s := Span{
					TraceID: strings.ToLower(sp.TraceID), SpanID: strings.ToLower(sp.SpanID), ParentSpanID: strings.ToLower(sp.ParentSpanID),
					Name: sp.Name, Attributes: jsonAttrs(sp.Attributes), StatusMessage: sp.Status.Message,
					Resource: resource, ScopeName: ss.Scope.Name, ScopeVersion: ss.Scope.Version,
				}
				s.Start, _ = jsonNanos(sp.StartTimeUnixNano)
				s.End, _ = jsonNanos(sp.EndTimeUnixNano)
				s.StatusCode = jsonStatusCode(sp.Status.Code)
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func jsonNanos(raw json.RawMessage) (time.Time, bool) {
	n, ok := jsonInt(raw)
	if !ok || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n).UTC(), true
}

// jsonInt reads a 64-bit integer sent as a JSON number or a decimal string.
func jsonInt(raw json.RawMessage) (int64, bool) {
	s := strings.Trim(string(raw), `"`)
	if s == "" || s == "null" {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil && u <= math.MaxInt64 {
		return int64(u), true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		return int64(f), true
	}
	return 0, false
}

func jsonStatusCode(raw json.RawMessage) int {
	if n, ok := jsonInt(raw); ok {
		return int(n)
	}
	switch strings.Trim(string(raw), `"`) {
	case "STATUS_CODE_OK":
		return 1
	case "STATUS_CODE_ERROR":
		return 2
	}
	return 0
}

func jsonAttrs(kvs []jsonKV) map[string]any {
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = jsonValue(kv.Value)
	}
	return out
}

func jsonValue(v *jsonAnyValue) any {
	switch {
	case v == nil:
		return nil
	case v.StringValue != nil:
		return *v.StringValue
	case v.BoolValue != nil:
		return *v.BoolValue
	case len(v.IntValue) > 0:
		if n, ok := jsonInt(v.IntValue); ok {
			return n
		}
		return nil
	case len(v.DoubleValue) > 0:
		f, err := strconv.ParseFloat(strings.Trim(string(v.DoubleValue), `"`), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	case v.BytesValue != nil:
		return *v.BytesValue
	case v.ArrayValue != nil:
		arr := make([]any, 0, len(v.ArrayValue.Values))
		for _, e := range v.ArrayValue.Values {
			arr = append(arr, jsonValue(e))
		}
		return arr
	case v.KvlistValue != nil:
		return jsonAttrs(v.KvlistValue.Values)
	}
	return nil
}

// ValidIDs reports whether a span's ids are well-formed: 32-hex trace id,
// 16-hex span id (and parent), not all zero.
func (s *Span) ValidIDs() error {
	if !isHexID(s.TraceID, 32) {
		return fmt.Errorf("traceId %q is not 32 hex characters (or is all zero)", trunc(s.TraceID))
	}
	if !isHexID(s.SpanID, 16) {
		return fmt.Errorf("spanId %q is not 16 hex characters (or is all zero)", trunc(s.SpanID))
	}
	if s.ParentSpanID != "" && !isHexID(s.ParentSpanID, 16) {
		return fmt.Errorf("parentSpanId %q is not 16 hex characters", trunc(s.ParentSpanID))
	}
	return nil
}

func isHexID(s string, n int) bool {
	if len(s) != n || strings.Trim(s, "0") == "" {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
