package otlp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// Result of mapping an export.
type Result struct {
	Upserts  []traces.Upsert
	Accepted int
	Rejected int
	Problem  string // the first rejected span's problem
}

// ToUpserts maps spans onto trace and observation upserts (Langfuse's mapping).
// Invalid spans are counted as rejected; the others are kept.
func ToUpserts(spans []Span) Result {
	var r Result
	for i := range spans {
		ups, err := spanUpserts(&spans[i])
		if err != nil {
			r.Rejected++
			if r.Problem == "" {
				r.Problem = fmt.Sprintf("span %d (%s): %v", i, trunc(spans[i].Name), err)
			}
			continue
		}
		r.Upserts = append(r.Upserts, ups...)
		r.Accepted++
	}
	return r
}

// attribute keys consumed by the mapping (everything else goes to metadata).
var traceKeys = map[string]bool{
	"langfuse.trace.name": true, "langfuse.user.id": true, "user.id": true, "langfuse.session.id": true, "session.id": true,
	"gen_ai.conversation.id": true, "langfuse.trace.tags": true, "langfuse.trace.public": true, "langfuse.trace.metadata": true,
	"langfuse.trace.input": true, "langfuse.trace.output": true, "langfuse.release": true, "langfuse.version": true,
	"langfuse.environment": true, "deployment.environment.name": true, "deployment.environment": true,
}

func spanUpserts(s *Span) ([]traces.Upsert, error) {
	if err := s.ValidIDs(); err != nil {
		return nil, err
	}
	if s.Start.IsZero() {
		return nil, fmt.Errorf("startTimeUnixNano: missing")
	}
	a := attrs{s.Attributes, map[string]bool{}}
	res := attrs{s.Resource, map[string]bool{}}
	stamp := traces.NewStamp(s.Start, false)
	env := firstString(a.str("langfuse.environment"), a.str("deployment.environment.name"), a.str("deployment.environment"),
		res.str("langfuse.environment"), res.str("deployment.environment.name"), res.str("deployment.environment"))

	obs := observationFields(s, &a, env)
	tr, wantTrace := traceFields(s, &a, &res, env, obs)
	if meta := observationMetadata(s, &a); len(meta) > 0 {
		obs["metadata"] = mustJSON(meta)
	}
	ups, err := traces.ObservationUpserts(obs, stamp)
	if err != nil {
		return nil, err
	}
	if wantTrace {
		tu, err := traces.TraceUpserts(tr, stamp)
		if err != nil {
			return nil, err
		}
		ups = append(ups, tu...)
	}
	return ups, nil
}

// observationFields maps a span onto the Langfuse observation fields.
func observationFields(s *Span, a *attrs, env string) map[string]json.RawMessage {
	obs := map[string]json.RawMessage{
		"id": raw(s.SpanID), "traceId": raw(s.TraceID), "name": raw(s.Name), "startTime": raw(s.Start.Format(time.RFC3339Nano)),
		"type": raw(observationType(a)),
	}
	if s.ParentSpanID != "" {
		obs["parentObservationId"] = raw(s.ParentSpanID)
	}
	if !s.End.IsZero() {
		obs["endTime"] = raw(s.End.Format(time.RFC3339Nano))
	}
	if env != "" {
		obs["environment"] = raw(env)
	}
	level := a.str("langfuse.observation.level")
	if level == "" {
		level = "DEFAULT"
		if s.StatusCode == 2 {
			level = "ERROR"
		}
	}
	obs["level"] = raw(strings.ToUpper(level))
	if msg := firstString(a.str("langfuse.observation.status_message"), s.StatusMessage); msg != "" {
		obs["statusMessage"] = raw(msg)
	}
	if model := firstString(a.str("langfuse.observation.model.name"), a.str("gen_ai.response.model"), a.str("gen_ai.request.model"),
		a.str("llm.model_name"), a.str("model")); model != "" {
		obs["model"] = raw(model)
	}
	if p := a.jsonObject("langfuse.observation.model.parameters"); p != nil {
		obs["modelParameters"] = p
	} else if p := a.prefixed("gen_ai.request.", "gen_ai.request.model"); len(p) > 0 {
		obs["modelParameters"] = mustJSON(p)
	}
	usageAndCost(a, obs)
	if v := a.str("langfuse.observation.completion_start_time"); v != "" {
		var unquoted string
		if json.Unmarshal([]byte(v), &unquoted) == nil {
			v = unquoted // @langfuse/otel JSON-quotes it
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			obs["completionStartTime"] = raw(t.UTC().Format(time.RFC3339Nano))
		}
	}
	if v := a.str("langfuse.observation.prompt.name"); v != "" {
		obs["promptName"] = raw(v)
	}
	if v, ok := a.num("langfuse.observation.prompt.version"); ok {
		obs["promptVersion"] = mustJSON(int64(v))
	}
	if in := firstJSON(a.jsonAny("langfuse.observation.input"), a.jsonAny("gen_ai.input.messages"), a.indexed("gen_ai.prompt."),
		a.jsonAny("input.value")); in != nil {
		obs["input"] = in
	}
	if out := firstJSON(a.jsonAny("langfuse.observation.output"), a.jsonAny("gen_ai.output.messages"), a.indexed("gen_ai.completion."),
		a.jsonAny("output.value")); out != nil {
		obs["output"] = out
	}
	if v := a.str("langfuse.version"); v != "" {
		obs["version"] = raw(v)
	}
	return obs
}

// usageAndCost sets usageDetails and costDetails from Langfuse's or gen_ai's attributes.
func usageAndCost(a *attrs, obs map[string]json.RawMessage) {
	if u := a.jsonObject("langfuse.observation.usage_details"); u != nil {
		obs["usageDetails"] = u
	} else if u := genAIUsage(a); len(u) > 0 {
		obs["usageDetails"] = mustJSON(u)
	}
	if c := a.jsonObject("langfuse.observation.cost_details"); c != nil {
		obs["costDetails"] = c
	} else if cost, ok := a.num("gen_ai.usage.cost"); ok {
		obs["costDetails"] = mustJSON(map[string]float64{"total": cost})
	}
}

// traceFields maps the trace attributes of a span (also consumed, so they do
// not land in the observation's metadata); wanted says whether the span
// carries a trace at all (it is the root, or sets trace attributes).
func traceFields(s *Span, a, res *attrs, env string, obs map[string]json.RawMessage) (tr map[string]json.RawMessage, wanted bool) {
	tr = map[string]json.RawMessage{"id": raw(s.TraceID)}
	root := s.ParentSpanID == ""
	hasTraceAttrs := false
	for k := range s.Attributes {
		if traceKeys[k] || strings.HasPrefix(k, "langfuse.trace.metadata.") {
			hasTraceAttrs = true
		}
	}
	if name := a.str("langfuse.trace.name"); name != "" {
		tr["name"] = raw(name)
	} else if root {
		tr["name"] = raw(s.Name)
	}
	if v := firstString(a.str("langfuse.user.id"), a.str("user.id")); v != "" {
		tr["userId"] = raw(v)
	}
	if v := firstString(a.str("langfuse.session.id"), a.str("session.id"), a.str("gen_ai.conversation.id")); v != "" {
		tr["sessionId"] = raw(v)
	}
	if tags := a.tags("langfuse.trace.tags"); tags != nil {
		tr["tags"] = mustJSON(tags)
	}
	if v, ok := a.boolean("langfuse.trace.public"); ok {
		tr["public"] = mustJSON(v)
	}
	if v := a.str("langfuse.release"); v != "" {
		tr["release"] = raw(v)
	}
	if v := firstString(a.str("langfuse.version"), res.str("service.version")); v != "" {
		tr["version"] = raw(v)
	}
	if env != "" {
		tr["environment"] = raw(env)
	}
	meta := map[string]any{}
	if m := a.jsonObject("langfuse.trace.metadata"); m != nil {
		_ = json.Unmarshal(m, &meta)
	}
	for k, v := range a.prefixed("langfuse.trace.metadata.", "") {
		meta[k] = v
	}
	if len(s.Resource) > 0 && (root || hasTraceAttrs) {
		meta["resourceAttributes"] = s.Resource
	}
	if len(meta) > 0 {
		tr["metadata"] = mustJSON(meta)
	}
	if in := a.jsonAny("langfuse.trace.input"); in != nil {
		tr["input"] = in
	} else if root && obs["input"] != nil {
		tr["input"] = obs["input"]
	}
	if out := a.jsonAny("langfuse.trace.output"); out != nil {
		tr["output"] = out
	} else if root && obs["output"] != nil {
		tr["output"] = obs["output"]
	}
	if root {
		tr["timestamp"] = raw(s.Start.Format(time.RFC3339Nano))
	}
	return tr, root || hasTraceAttrs
}

// observationMetadata is what the mapping left: unused attributes, the resource and the scope.
func observationMetadata(s *Span, a *attrs) map[string]any {
	meta := map[string]any{}
	for k, v := range a.prefixed("langfuse.observation.metadata.", "") {
		meta[k] = v
	}
	rest := map[string]any{}
	for k, v := range s.Attributes {
		if !a.used[k] && !traceKeys[k] && !strings.HasPrefix(k, "langfuse.trace.metadata.") {
			rest[k] = v
		}
	}
	if len(rest) > 0 {
		meta["attributes"] = rest
	}
	if len(s.Resource) > 0 {
		meta["resourceAttributes"] = s.Resource
	}
	if s.ScopeName != "" {
		meta["scope"] = map[string]string{"name": s.ScopeName, "version": s.ScopeVersion}
	}
	return meta
}

// observationType follows Langfuse: explicit type, OpenInference kind, gen_ai operation, a model, else SPAN.
func observationType(a *attrs) string {
	if t := strings.ToUpper(a.str("langfuse.observation.type")); t != "" {
		return t
	}
	switch strings.ToUpper(a.str("openinference.span.kind")) {
	case "LLM":
		return "GENERATION"
	case "CHAIN", "TOOL", "AGENT", "RETRIEVER", "EMBEDDING", "EVALUATOR", "GUARDRAIL":
		return strings.ToUpper(a.str("openinference.span.kind"))
	}
	switch a.str("gen_ai.operation.name") {
	case "chat", "completion", "generate_content", "text_completion":
		return "GENERATION"
	case "embeddings":
		return "EMBEDDING"
	case "invoke_agent":
		return "AGENT"
	case "execute_tool":
		return "TOOL"
	}
	for _, k := range []string{"langfuse.observation.model.name", "gen_ai.response.model", "gen_ai.request.model", "llm.model_name", "model"} {
		if _, ok := a.m[k]; ok {
			return "GENERATION"
		}
	}
	return "SPAN"
}

// genAIUsageNames are the usage attributes, in order: the current semantic
// conventions' names come after the older ones they replace and win when a
// span carries both.
var genAIUsageNames = []struct{ attr, to string }{
	{"gen_ai.usage.prompt_tokens", "input"}, {"gen_ai.usage.completion_tokens", "output"},
	{"gen_ai.usage.input_tokens", "input"}, {"gen_ai.usage.output_tokens", "output"}, {"gen_ai.usage.total_tokens", "total"},
}

func genAIUsage(a *attrs) map[string]float64 {
	out := map[string]float64{}
	for _, n := range genAIUsageNames {
		if v, ok := a.num(n.attr); ok {
			out[n.to] = v
		}
	}
	return out
}

// attrs reads attributes and remembers which ones the mapping used.
type attrs struct {
	m    map[string]any
	used map[string]bool
}

func (a *attrs) get(k string) (any, bool) {
	v, ok := a.m[k]
	if ok {
		a.used[k] = true
	}
	return v, ok
}

func (a *attrs) str(k string) string {
	v, ok := a.get(k)
	if !ok {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func (a *attrs) num(k string) (float64, bool) {
	v, ok := a.get(k)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

func (a *attrs) boolean(k string) (bool, bool) {
	v, ok := a.get(k)
	if !ok {
		return false, false
	}
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(x)
		return b, err == nil
	}
	return false, false
}

// jsonAny returns an attribute as JSON: a string holding JSON is parsed, another string kept as a string.
func (a *attrs) jsonAny(k string) json.RawMessage {
	v, ok := a.get(k)
	if !ok {
		return nil
	}
	if s, isStr := v.(string); isStr {
		if t := strings.TrimSpace(s); t != "" && (t[0] == '{' || t[0] == '[' || t[0] == '"') && json.Valid([]byte(t)) {
			return json.RawMessage(t)
		}
		return raw(s)
	}
	return mustJSON(v)
}

// jsonObject returns an attribute holding a JSON object (as a string or a kvlist).
func (a *attrs) jsonObject(k string) json.RawMessage {
	j := a.jsonAny(k)
	var m map[string]any
	if j == nil || json.Unmarshal(j, &m) != nil || m == nil {
		return nil
	}
	return j
}

// tags reads an array, a JSON array string or a comma-separated list.
func (a *attrs) tags(k string) []string {
	v, ok := a.get(k)
	if !ok {
		return nil
	}
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	case string:
		if json.Unmarshal([]byte(x), &out) != nil {
			out = nil
			for _, s := range strings.Split(x, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// prefixed collects attributes under a prefix (without it), except skip.
func (a *attrs) prefixed(prefix, skip string) map[string]any {
	out := map[string]any{}
	for k := range a.m {
		if strings.HasPrefix(k, prefix) && k != skip {
			v, _ := a.get(k)
			out[strings.TrimPrefix(k, prefix)] = v
		}
	}
	return out
}

// indexed reassembles gen_ai.prompt.N.role / .content style attributes into an array.
func (a *attrs) indexed(prefix string) json.RawMessage {
	items := map[int]map[string]any{}
	for k := range a.m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		idx, field, ok := strings.Cut(strings.TrimPrefix(k, prefix), ".")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n > 10000 || strconv.Itoa(n) != idx {
			continue // "00" or "+0" would fill the same item as "0"
		}
		v, _ := a.get(k)
		if items[n] == nil {
			items[n] = map[string]any{}
		}
		items[n][field] = v
	}
	if len(items) == 0 {
		return nil
	}
	keys := make([]int, 0, len(items))
	for n := range items {
		keys = append(keys, n)
	}
	sort.Ints(keys)
	arr := make([]map[string]any, 0, len(keys))
	for _, n := range keys {
		arr = append(arr, items[n])
	}
	return mustJSON(arr)
}

func firstString(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstJSON(vs ...json.RawMessage) json.RawMessage {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func raw(s string) json.RawMessage { return mustJSON(s) }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}
