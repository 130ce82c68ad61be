package httpapi

import (
	"encoding/json"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// Read shapes follow Langfuse's public API (what the SDKs parse).

const langfuseTime = "2006-01-02T15:04:05.000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(langfuseTime) }

// field returns a stored field as is, or JSON null.
func field(doc map[string]json.RawMessage, name string) json.RawMessage {
	if v, ok := doc[name]; ok {
		return v
	}
	return json.RawMessage("null")
}

func timeField(doc map[string]json.RawMessage, name string) any {
	var s string
	if v, ok := doc[name]; ok && json.Unmarshal(v, &s) == nil {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return fmtTime(t)
		}
	}
	return nil
}

func numbers(doc map[string]json.RawMessage, name string) map[string]float64 {
	m := map[string]float64{}
	if v, ok := doc[name]; ok {
		_ = json.Unmarshal(v, &m)
	}
	return m
}

func optNumber(m map[string]float64, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	return nil
}

func (a *API) traceView(t *store.TraceRow, observations []store.ObservationRow, scores []store.ScoreRow, full bool) map[string]any {
	v := map[string]any{
		"id": t.ID, "externalId": nil, "timestamp": fmtTime(t.Timestamp), "projectId": a.cfg.DefaultProjectID,
		"environment": t.Environment, "bookmarked": false, "createdAt": fmtTime(t.CreatedAt), "updatedAt": fmtTime(t.UpdatedAt),
		"totalCost": t.TotalCost, "latency": t.Latency, "htmlPath": "/project/" + a.cfg.DefaultProjectID + "/traces/" + t.ID,
		"public": false, "tags": []string{},
	}
	for _, name := range []string{"name", "userId", "sessionId", "release", "version", "input", "output", "metadata"} {
		v[name] = field(t.Doc, name)
	}
	if raw, ok := t.Doc["tags"]; ok {
		v["tags"] = raw
	}
	if raw, ok := t.Doc["public"]; ok {
		v["public"] = raw
	}
	if len(t.Truncated) > 0 {
		v["truncatedFields"] = t.Truncated
	}
	if given, ok := numberField(t.Doc, "latency"); ok { // the gateway's own measure wins over the computed one
		v["latency"] = given
	}
	if full {
		obs := make([]map[string]any, 0, len(observations))
		for i := range observations {
			obs = append(obs, a.observationView(&observations[i]))
		}
		sc := make([]map[string]any, 0, len(scores))
		for i := range scores {
			sc = append(sc, a.scoreView(&scores[i]))
		}
		v["observations"], v["scores"] = obs, sc
	} else {
		v["observations"], v["scores"] = t.ObservationIDs, t.ScoreIDs
	}
	return v
}

func (a *API) observationView(o *store.ObservationRow) map[string]any {
	usage := numbers(o.Doc, "usageDetails")
	cost := numbers(o.Doc, "costDetails")
	v := map[string]any{
		"id": o.ID, "projectId": a.cfg.DefaultProjectID, "traceId": o.TraceID, "type": o.Type, "environment": o.Environment,
		"startTime": fmtTime(o.StartTime), "endTime": timeField(o.Doc, "endTime"),
		"completionStartTime": timeField(o.Doc, "completionStartTime"),
		"createdAt":           fmtTime(o.CreatedAt), "updatedAt": fmtTime(o.UpdatedAt), "level": o.Level,
		"usageDetails": usage, "costDetails": cost, "promptId": nil, "modelId": nil,
		"inputPrice": nil, "outputPrice": nil, "totalPrice": nil, "unit": "TOKENS",
		"usage":        map[string]any{"unit": "TOKENS", "input": usage["input"], "output": usage["output"], "total": usage["total"]},
		"promptTokens": usage["input"], "completionTokens": usage["output"], "totalTokens": usage["total"],
		"calculatedInputCost": optNumber(cost, "input"), "calculatedOutputCost": optNumber(cost, "output"),
		"calculatedTotalCost": optNumber(cost, "total"), "latency": nil, "timeToFirstToken": nil,
	}
	for _, name := range []string{"parentObservationId", "name", "version", "input", "output", "metadata", "statusMessage",
		"model", "modelParameters", "promptName", "promptVersion"} {
		v[name] = field(o.Doc, name)
	}
	if len(o.Truncated) > 0 {
		v["truncatedFields"] = o.Truncated
	}
	if end, ok := parseDocTime(o.Doc, "endTime"); ok {
		v["latency"] = end.Sub(o.StartTime).Seconds()
	}
	if first, ok := parseDocTime(o.Doc, "completionStartTime"); ok {
		v["timeToFirstToken"] = first.Sub(o.StartTime).Seconds()
	}
	return v
}

func numberField(doc map[string]json.RawMessage, name string) (float64, bool) {
	var f float64
	raw, ok := doc[name]
	return f, ok && json.Unmarshal(raw, &f) == nil
}

func parseDocTime(doc map[string]json.RawMessage, name string) (time.Time, bool) {
	var s string
	if v, ok := doc[name]; ok && json.Unmarshal(v, &s) == nil {
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	}
	return time.Time{}, false
}

func (a *API) scoreView(s *store.ScoreRow) map[string]any {
	v := map[string]any{
		"id": s.ID, "projectId": a.cfg.DefaultProjectID, "environment": s.Environment, "timestamp": fmtTime(s.Timestamp),
		"createdAt": fmtTime(s.CreatedAt), "updatedAt": fmtTime(s.UpdatedAt), "source": "API",
	}
	for _, name := range []string{"traceId", "observationId", "sessionId", "name", "value", "stringValue", "dataType",
		"comment", "metadata", "configId"} {
		v[name] = field(s.Doc, name)
	}
	return v
}
