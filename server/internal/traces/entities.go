package traces

import (
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

var traceSpecs = specsOf(map[string]fieldSpec{
	"timestamp": asTime, "name": asIndexed, "userId": asIndexed, "sessionId": asIndexed, "release": asIndexed,
	"version": asIndexed, "tags": asTags, "public": asBool, "environment": asEnvironment, "metadata": asAny,
	"latency": asSeconds,
})

// traceUpserts validates a trace body. fallbackTime is used by native batches without a timestamp.
func traceUpserts(fields map[string]json.RawMessage, stamp Stamp, fallbackTime string) ([]Upsert, error) {
	id, err := requireID(fields, "id")
	if err != nil {
		return nil, err
	}
	if err := cleanFields(fields); err != nil {
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

var observationSpecs = specsOf(map[string]fieldSpec{
	"startTime": asTime, "endTime": asTime, "completionStartTime": asTime, "name": asIndexed, "model": asIndexed,
	"level": asLevel, "statusMessage": asString, "version": asIndexed, "environment": asEnvironment,
	"promptName": asString, "type": asType, "modelParameters": asObject, "latency": asSeconds,
})

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
	if err := cleanFields(fields); err != nil {
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
			return nil, errs.InvalidField("promptVersion", "must be an integer")
		}
	}
	if err := normalizeUsage(fields); err != nil {
		return nil, err
	}
	if _, ok := fields["startTime"]; !ok && fallbackTime != "" && !isUpdate(stamp) {
		fields["startTime"] = json.RawMessage(`"` + fallbackTime + `"`)
	}
	endFromLatency(fields)
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

var scoreSpecs = specsOf(map[string]fieldSpec{
	"name": asString, "comment": asString, "environment": asEnvironment, "configId": asString, "timestamp": asTime,
})

func scoreUpserts(fields map[string]json.RawMessage, stamp Stamp) ([]Upsert, error) {
	id, err := requireID(fields, "id")
	if err != nil {
		return nil, err
	}
	if _, ok := fields["name"]; !ok {
		return nil, errs.InvalidField("name", "required")
	}
	traceID, err := optionalID(fields, "traceId")
	if err != nil {
		return nil, err
	}
	if _, err := optionalID(fields, "observationId"); err != nil {
		return nil, err
	}
	if err := cleanFields(fields); err != nil {
		return nil, err
	}
	if err := validate(fields, scoreSpecs); err != nil {
		return nil, err
	}
	raw, ok := fields["value"]
	if !ok {
		return nil, errs.InvalidField("value", "required")
	}
	var dataType string
	if dt, ok := fields["dataType"]; ok {
		_ = json.Unmarshal(dt, &dataType)
		dataType = strings.ToUpper(dataType)
		if dataType != "NUMERIC" && dataType != "BOOLEAN" && dataType != "CATEGORICAL" {
			return nil, errs.InvalidField("dataType", "must be NUMERIC, BOOLEAN or CATEGORICAL")
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
		return nil, errs.InvalidField("value", "must be a number, a string or a boolean")
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

// MaxLatency bounds a latency in seconds (a day is far more than any request).
const MaxLatency = 86400.0

// asSeconds accepts a latency: a finite number of seconds from 0 to MaxLatency.
func asSeconds(name string, v json.RawMessage) (json.RawMessage, error) {
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || f < 0 || f > MaxLatency {
		return nil, errs.InvalidField(name, "must be a number of seconds from 0 to %g", MaxLatency)
	}
	return v, nil
}

// endFromLatency gives an observation that has a start and a latency but no
// end the end start + latency (the gateway sends latency instead of an end).
func endFromLatency(fields map[string]json.RawMessage) {
	raw, ok := fields["latency"]
	if _, hasEnd := fields["endTime"]; !ok || hasEnd {
		return
	}
	var seconds float64
	var start string
	if json.Unmarshal(raw, &seconds) != nil || json.Unmarshal(fields["startTime"], &start) != nil {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, start)
	if err != nil {
		return
	}
	end := t.Add(time.Duration(seconds * float64(time.Second)))
	fields["endTime"] = json.RawMessage(`"` + end.UTC().Format(time.RFC3339Nano) + `"`)
}
