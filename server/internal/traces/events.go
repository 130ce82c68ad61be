package traces

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/apierror"
)

// MaxIDLength bounds ids (Langfuse: 1–800 characters).
const MaxIDLength = 800

// maxDepth bounds JSON nesting of input/output/metadata so that deep bodies
// cannot exhaust the stack or the database's jsonb limits.
const maxDepth = 64

// EventResult is the outcome of one ingestion event.
type EventResult struct {
	ID      string `json:"id"`
	Status  int    `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// observation event types and the observation type they create.
var observationTypes = map[string]string{
	"span-create": "SPAN", "span-update": "SPAN",
	"generation-create": "GENERATION", "generation-update": "GENERATION",
	"event-create":       "EVENT",
	"observation-create": "", "observation-update": "", // type from the body
	"agent-create": "AGENT", "tool-create": "TOOL", "chain-create": "CHAIN", "retriever-create": "RETRIEVER",
	"evaluator-create": "EVALUATOR", "embedding-create": "EMBEDDING", "guardrail-create": "GUARDRAIL",
}

var validObservationTypes = map[string]bool{
	"SPAN": true, "GENERATION": true, "EVENT": true, "AGENT": true, "TOOL": true, "CHAIN": true,
	"RETRIEVER": true, "EVALUATOR": true, "EMBEDDING": true, "GUARDRAIL": true,
}

type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Body      json.RawMessage `json:"body"`
}

// ParseIngestion turns a Langfuse ingestion body into upserts. Each event
// stands alone: invalid ones get an error result, valid ones a 201. Events
// repeated in the batch (same envelope id) are applied once.
func ParseIngestion(body []byte, now time.Time) ([]Upsert, []EventResult, []EventResult, error) {
	var req struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, nil, nil, apierror.BadRequest("body: must be a JSON object with a batch array")
	}
	if req.Batch == nil {
		return nil, nil, nil, apierror.BadRequest("batch: required")
	}
	var ups []Upsert
	successes, failures := []EventResult{}, []EventResult{}
	seen := map[string]bool{}
	for i, raw := range req.Batch {
		var env envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			failures = append(failures, failure(fmt.Sprintf("batch[%d]", i), fmt.Sprintf("batch[%d]: not an event object", i)))
			continue
		}
		id := env.ID
		if id == "" {
			id = fmt.Sprintf("batch[%d]", i)
		}
		if seen[env.ID] && env.ID != "" {
			successes = append(successes, EventResult{ID: id, Status: 201})
			continue
		}
		u, err := parseEvent(env, now)
		if err != nil {
			failures = append(failures, failure(id, fmt.Sprintf("batch[%d] (%s): %v", i, env.Type, err)))
			continue
		}
		seen[env.ID] = true
		ups = append(ups, u...)
		successes = append(successes, EventResult{ID: id, Status: 201})
	}
	return ups, successes, failures, nil
}

func failure(id, msg string) EventResult {
	return EventResult{ID: id, Status: 400, Message: msg, Error: "InvalidRequestError"}
}

func parseEvent(env envelope, now time.Time) ([]Upsert, error) {
	when := now
	if env.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, env.Timestamp)
		if err != nil {
			return nil, fmt.Errorf("timestamp: %q is not ISO 8601 with an offset", trunc(env.Timestamp))
		}
		when = t
	}
	if env.Type == "sdk-log" {
		return nil, nil
	}
	fields, err := bodyFields(env.Body)
	if err != nil {
		return nil, err
	}
	update := strings.HasSuffix(env.Type, "-update")
	switch {
	case env.Type == "trace-create":
		return traceUpserts(fields, NewStamp(when, false), "")
	case env.Type == "score-create":
		return scoreUpserts(fields, NewStamp(when, false))
	default:
		obsType, ok := observationTypes[env.Type]
		if !ok {
			return nil, fmt.Errorf("type: unknown event type %q", trunc(env.Type))
		}
		return observationUpserts(fields, NewStamp(when, update), obsType, "")
	}
}

// bodyFields decodes an event body into its defined fields.
func bodyFields(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("body: required")
	}
	if err := checkDepth(raw); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("body: must be an object")
	}
	for k, v := range fields {
		if string(v) == "null" {
			delete(fields, k) // undefined: never overwrites
		}
	}
	return fields, nil
}

func checkDepth(raw []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return fmt.Errorf("body: nested deeper than %d levels", maxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// fieldSpec validates and normalises known fields; unknown fields are kept as they are.
type fieldSpec func(name string, v json.RawMessage) (json.RawMessage, error)

func asString(name string, v json.RawMessage) (json.RawMessage, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("%s: must be a string", name)
	}
	return v, nil
}

func asTime(name string, v json.RawMessage) (json.RawMessage, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("%s: must be an ISO 8601 string", name)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not ISO 8601 with an offset", name, trunc(s))
	}
	return json.RawMessage(`"` + t.UTC().Format(time.RFC3339Nano) + `"`), nil
}

func asBool(name string, v json.RawMessage) (json.RawMessage, error) {
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("%s: must be a boolean", name)
	}
	return v, nil
}

func asStrings(name string, v json.RawMessage) (json.RawMessage, error) {
	var ss []string
	if err := json.Unmarshal(v, &ss); err != nil {
		return nil, fmt.Errorf("%s: must be an array of strings", name)
	}
	return v, nil
}

func asObject(name string, v json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("%s: must be an object", name)
	}
	return v, nil
}

func asEnvironment(_ string, v json.RawMessage) (json.RawMessage, error) {
	var s string
	_ = json.Unmarshal(v, &s)
	out, _ := json.Marshal(NormalizeEnvironment(s))
	return out, nil
}

var environmentPattern = regexp.MustCompile(`^[a-z0-9_-]{1,40}$`)

// NormalizeEnvironment applies Langfuse's rule: lower-case, [a-z0-9_-]{1,40},
// no "langfuse" prefix; anything else is "default".
func NormalizeEnvironment(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !environmentPattern.MatchString(s) || strings.HasPrefix(s, "langfuse") {
		return "default"
	}
	return s
}

func validate(fields map[string]json.RawMessage, specs map[string]fieldSpec) error {
	for name, spec := range specs {
		if v, ok := fields[name]; ok {
			out, err := spec(name, v)
			if err != nil {
				return err
			}
			fields[name] = out
		}
	}
	return nil
}

func requireID(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", fmt.Errorf("%s: required", name)
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil || id == "" {
		return "", fmt.Errorf("%s: must be a non-empty string", name)
	}
	if len(id) > MaxIDLength {
		return "", fmt.Errorf("%s: longer than %d characters", name, MaxIDLength)
	}
	return id, nil
}

func optionalID(fields map[string]json.RawMessage, name string) (string, error) {
	if _, ok := fields[name]; !ok {
		return "", nil
	}
	return requireID(fields, name)
}

var traceSpecs = map[string]fieldSpec{
	"timestamp": asTime, "name": asString, "userId": asString, "sessionId": asString, "release": asString,
	"version": asString, "tags": asStrings, "public": asBool, "environment": asEnvironment, "metadata": asAny,
}

func asAny(_ string, v json.RawMessage) (json.RawMessage, error) { return v, nil }

// traceUpserts validates a trace body. fallbackTime is used by native batches without a timestamp.
func traceUpserts(fields map[string]json.RawMessage, stamp Stamp, fallbackTime string) ([]Upsert, error) {
	id, err := requireID(fields, "id")
	if err != nil {
		return nil, err
	}
	if err := validate(fields, traceSpecs); err != nil {
		return nil, err
	}
	if _, ok := fields["timestamp"]; !ok && fallbackTime != "" {
		fields["timestamp"] = json.RawMessage(`"` + fallbackTime + `"`)
	}
	delete(fields, "id")
	return []Upsert{{Kind: KindTrace, ID: id, Stamp: stamp, Fields: fields}}, nil
}

var observationSpecs = map[string]fieldSpec{
	"startTime": asTime, "endTime": asTime, "completionStartTime": asTime, "name": asString, "model": asString,
	"level": asLevel, "statusMessage": asString, "version": asString, "environment": asEnvironment,
	"promptName": asString, "type": asType, "modelParameters": asObject,
}

func asLevel(name string, v json.RawMessage) (json.RawMessage, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("%s: must be a string", name)
	}
	switch strings.ToUpper(s) {
	case "DEBUG", "DEFAULT", "WARNING", "ERROR":
		return json.RawMessage(`"` + strings.ToUpper(s) + `"`), nil
	}
	return nil, fmt.Errorf("%s: %q is not one of DEBUG, DEFAULT, WARNING, ERROR", name, trunc(s))
}

func asType(name string, v json.RawMessage) (json.RawMessage, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil || !validObservationTypes[strings.ToUpper(s)] {
		return nil, fmt.Errorf("%s: %s is not an observation type (SPAN, GENERATION, EVENT, AGENT, TOOL, CHAIN, RETRIEVER, EVALUATOR, EMBEDDING, GUARDRAIL)", name, trunc(string(v)))
	}
	return json.RawMessage(`"` + strings.ToUpper(s) + `"`), nil
}

// observationUpserts validates an observation body and normalises usage and
// cost. It also yields a placeholder trace so that an observation whose trace
// does not exist yet creates a minimal one.
func observationUpserts(fields map[string]json.RawMessage, stamp Stamp, obsType, fallbackTime string) ([]Upsert, error) {
	id, err := requireID(fields, "id")
	if err != nil {
		return nil, err
	}
	traceID, err := optionalID(fields, "traceId")
	if err != nil {
		return nil, err
	}
	if _, err := optionalID(fields, "parentObservationId"); err != nil {
		return nil, err
	}
	if obsType != "" {
		fields["type"] = json.RawMessage(`"` + obsType + `"`)
	}
	if err := validate(fields, observationSpecs); err != nil {
		return nil, err
	}
	if pv, ok := fields["promptVersion"]; ok {
		var n float64
		if json.Unmarshal(pv, &n) != nil || n != math.Trunc(n) {
			return nil, fmt.Errorf("promptVersion: must be an integer")
		}
	}
	if err := normalizeUsage(fields); err != nil {
		return nil, err
	}
	if _, ok := fields["startTime"]; !ok && fallbackTime != "" && !isUpdate(stamp) {
		fields["startTime"] = json.RawMessage(`"` + fallbackTime + `"`)
	}
	delete(fields, "id")
	ups := []Upsert{{Kind: KindObservation, ID: id, Stamp: stamp, Fields: fields}}
	if traceID != "" {
		ups = append(ups, placeholderTrace(traceID, fields))
	}
	return ups, nil
}

func isUpdate(s Stamp) bool { return s%2 != 0 }

// placeholderTrace makes a minimal trace for an observation or score; real trace events replace its values.
func placeholderTrace(traceID string, from map[string]json.RawMessage) Upsert {
	f := map[string]json.RawMessage{}
	for _, k := range []string{"startTime", "timestamp"} {
		if v, ok := from[k]; ok {
			f["timestamp"] = v
			break
		}
	}
	if v, ok := from["environment"]; ok {
		f["environment"] = v
	}
	return Upsert{Kind: KindTrace, ID: traceID, Stamp: Placeholder, Fields: f}
}

// normalizeUsage folds the usage forms into usageDetails {input, output, total, …}
// and costDetails {input, output, total}; empty objects are ignored; a missing total is computed.
func normalizeUsage(fields map[string]json.RawMessage) error {
	details := map[string]float64{}
	costs := map[string]float64{}
	num := func(m map[string]json.RawMessage, key string) (float64, bool) {
		if v, ok := m[key]; ok {
			var f float64
			if json.Unmarshal(v, &f) == nil {
				return f, true
			}
		}
		return 0, false
	}
	if raw, ok := fields["usage"]; ok {
		var u map[string]json.RawMessage
		if json.Unmarshal(raw, &u) != nil {
			return fmt.Errorf("usage: must be an object")
		}
		for from, to := range map[string]string{"input": "input", "output": "output", "total": "total",
			"promptTokens": "input", "completionTokens": "output", "totalTokens": "total"} {
			if f, ok := num(u, from); ok {
				details[to] = f
			}
		}
		for from, to := range map[string]string{"inputCost": "input", "outputCost": "output", "totalCost": "total"} {
			if f, ok := num(u, from); ok {
				costs[to] = f
			}
		}
		delete(fields, "usage")
	}
	for from, to := range map[string]string{"promptTokens": "input", "completionTokens": "output", "totalTokens": "total"} {
		if f, ok := num(fields, from); ok {
			details[to] = f
			delete(fields, from)
		}
	}
	if raw, ok := fields["usageDetails"]; ok {
		var u map[string]json.RawMessage
		if json.Unmarshal(raw, &u) != nil {
			return fmt.Errorf("usageDetails: must be an object of numbers")
		}
		for k, v := range u {
			var f float64
			switch {
			case json.Unmarshal(v, &f) == nil:
			case k == "prompt_tokens_details" || k == "completion_tokens_details" || k == "input_tokens_details" || k == "output_tokens_details":
				continue // nested details of a raw OpenAI usage object
			default:
				return fmt.Errorf("usageDetails.%s: must be a number", k)
			}
			switch k {
			case "prompt_tokens", "input_tokens":
				k = "input"
			case "completion_tokens", "output_tokens":
				k = "output"
			case "total_tokens":
				k = "total"
			}
			details[k] = f
		}
	}
	if raw, ok := fields["costDetails"]; ok {
		var c map[string]float64
		if json.Unmarshal(raw, &c) != nil {
			return fmt.Errorf("costDetails: must be an object of numbers")
		}
		for k, v := range c {
			costs[k] = v
		}
	}
	for from, to := range map[string]string{"inputCost": "input", "outputCost": "output", "totalCost": "total", "calculatedTotalCost": "total"} {
		if f, ok := num(fields, from); ok {
			costs[to] = f
			delete(fields, from)
		}
	}
	delete(fields, "usageDetails")
	delete(fields, "costDetails")
	if len(details) > 0 {
		if _, ok := details["total"]; !ok {
			sum := 0.0
			for k, v := range details {
				if !strings.Contains(k, "_") || k == "input" || k == "output" {
					sum += v
				}
			}
			details["total"] = sum
		}
		fields["usageDetails"], _ = json.Marshal(details)
	}
	if len(costs) > 0 {
		if _, ok := costs["total"]; !ok {
			costs["total"] = costs["input"] + costs["output"]
		}
		fields["costDetails"], _ = json.Marshal(costs)
	}
	return nil
}

var scoreSpecs = map[string]fieldSpec{
	"name": asString, "comment": asString, "environment": asEnvironment, "configId": asString, "timestamp": asTime,
}

func scoreUpserts(fields map[string]json.RawMessage, stamp Stamp) ([]Upsert, error) {
	id, err := requireID(fields, "id")
	if err != nil {
		return nil, err
	}
	if _, ok := fields["name"]; !ok {
		return nil, fmt.Errorf("name: required")
	}
	traceID, err := optionalID(fields, "traceId")
	if err != nil {
		return nil, err
	}
	if _, err := optionalID(fields, "observationId"); err != nil {
		return nil, err
	}
	if err := validate(fields, scoreSpecs); err != nil {
		return nil, err
	}
	raw, ok := fields["value"]
	if !ok {
		return nil, fmt.Errorf("value: required")
	}
	var dataType string
	if dt, ok := fields["dataType"]; ok {
		_ = json.Unmarshal(dt, &dataType)
		dataType = strings.ToUpper(dataType)
		if dataType != "NUMERIC" && dataType != "BOOLEAN" && dataType != "CATEGORICAL" {
			return nil, fmt.Errorf("dataType: must be NUMERIC, BOOLEAN or CATEGORICAL")
		}
	}
	var f float64
	var s string
	var b bool
	switch {
	case json.Unmarshal(raw, &f) == nil:
		if dataType == "" {
			dataType = "NUMERIC"
		}
	case json.Unmarshal(raw, &b) == nil:
		dataType = "BOOLEAN"
		fields["value"] = json.RawMessage(map[bool]string{true: "1", false: "0"}[b])
		fields["stringValue"] = json.RawMessage(map[bool]string{true: `"True"`, false: `"False"`}[b])
	case json.Unmarshal(raw, &s) == nil:
		if dataType == "" {
			dataType = "CATEGORICAL"
		}
		fields["stringValue"] = raw
		delete(fields, "value")
	default:
		return nil, fmt.Errorf("value: must be a number, a string or a boolean")
	}
	fields["dataType"] = json.RawMessage(`"` + dataType + `"`)
	if _, ok := fields["timestamp"]; !ok && stamp > 0 {
		fields["timestamp"] = json.RawMessage(`"` + time.UnixMicro(int64(stamp/2)).UTC().Format(time.RFC3339Nano) + `"`)
	}
	delete(fields, "id")
	ups := []Upsert{{Kind: KindScore, ID: id, Stamp: stamp, Fields: fields}}
	if traceID != "" {
		ups = append(ups, placeholderTrace(traceID, fields))
	}
	return ups, nil
}

// ParseNativeBatch parses POST /v1/l/batch: {"trace": {...}?, "observations": [...]}.
// It is all-or-nothing: the first problem is a 400 naming the field.
func ParseNativeBatch(body []byte, now time.Time) (ups []Upsert, traces, observations int, err error) {
	var req struct {
		Trace        json.RawMessage   `json:"trace"`
		Observations []json.RawMessage `json:"observations"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, 0, 0, apierror.BadRequest("body: must be a JSON object with trace and/or observations")
	}
	stamp := NewStamp(now, false)
	nowText := now.UTC().Format(time.RFC3339Nano)
	if len(req.Trace) > 0 && string(req.Trace) != "null" {
		fields, err := bodyFields(req.Trace)
		if err != nil {
			return nil, 0, 0, apierror.BadRequest("trace.%s", strings.TrimPrefix(err.Error(), "body: "))
		}
		u, err := traceUpserts(fields, stamp, nowText)
		if err != nil {
			return nil, 0, 0, apierror.BadRequest("trace.%v", err)
		}
		ups = append(ups, u...)
		traces = 1
	}
	for i, raw := range req.Observations {
		fields, err := bodyFields(raw)
		if err != nil {
			return nil, 0, 0, apierror.BadRequest("observations[%d]: %v", i, strings.TrimPrefix(err.Error(), "body: "))
		}
		if _, ok := fields["traceId"]; !ok && traces == 1 {
			fields["traceId"], _ = json.Marshal(ups[0].ID)
		}
		obsType := ""
		if _, ok := fields["type"]; !ok {
			obsType = "SPAN"
		}
		u, err := observationUpserts(fields, stamp, obsType, nowText)
		if err != nil {
			return nil, 0, 0, apierror.BadRequest("observations[%d].%v", i, err)
		}
		if _, ok := u[0].Fields["traceId"]; !ok {
			return nil, 0, 0, apierror.BadRequest("observations[%d].traceId: required (or send a trace in the same batch)", i)
		}
		ups = append(ups, u...)
		observations++
	}
	if traces == 0 && observations == 0 {
		return nil, 0, 0, apierror.BadRequest("body: needs a trace or at least one observation")
	}
	return ups, traces, observations, nil
}

// TraceUpserts validates trace fields (Langfuse names, "id" required) from another
// wire format (OTLP) and returns the upserts, exactly as for ingestion events.
func TraceUpserts(fields map[string]json.RawMessage, stamp Stamp) ([]Upsert, error) {
	return traceUpserts(fields, stamp, "")
}

// ObservationUpserts validates observation fields ("id" required; "type" in
// the fields) and returns the upserts, including the placeholder trace.
func ObservationUpserts(fields map[string]json.RawMessage, stamp Stamp) ([]Upsert, error) {
	return observationUpserts(fields, stamp, "", "")
}
