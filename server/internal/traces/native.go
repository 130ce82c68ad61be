package traces

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// ParseNativeBatch parses POST /v1/l/batch: {"trace": {...}?, "observations": [...]}.
// It is all-or-nothing: the first problem is a 400 naming the field.
func ParseNativeBatch(body []byte, now time.Time) (ups []Upsert, traces, observations int, err error) {
	var req struct {
		Trace        json.RawMessage   `json:"trace"`
		Observations []json.RawMessage `json:"observations"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, 0, 0, errs.InvalidField("body", "must be a JSON object with trace and/or observations")
	}
	if len(req.Observations) > MaxBatchEvents {
		return nil, 0, 0, errs.TooLargef("observations", "%d in one request, at most %d; split it into smaller batches", len(req.Observations), MaxBatchEvents)
	}
	stamp := NewStamp(now, false)
	nowText := now.UTC().Format(time.RFC3339Nano)
	if len(req.Trace) > 0 && string(req.Trace) != "null" {
		fields, err := bodyFields(req.Trace)
		if err != nil {
			return nil, 0, 0, bodyError(err, "trace")
		}
		u, err := traceUpserts(fields, stamp, nowText)
		if err != nil {
			return nil, 0, 0, errs.WithField(err, "trace")
		}
		ups = append(ups, u...)
		traces = 1
	}
	for i, raw := range req.Observations {
		fields, err := bodyFields(raw)
		if err != nil {
			return nil, 0, 0, bodyError(err, fmt.Sprintf("observations[%d]", i))
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
			return nil, 0, 0, errs.WithField(err, fmt.Sprintf("observations[%d]", i))
		}
		if _, ok := u[0].Fields["traceId"]; !ok {
			return nil, 0, 0, errs.InvalidField(fmt.Sprintf("observations[%d].traceId", i), "required (or send a trace in the same batch)")
		}
		ups = append(ups, u...)
		observations++
	}
	if traces == 0 && observations == 0 {
		return nil, 0, 0, errs.InvalidField("body", "needs a trace or at least one observation")
	}
	return ups, traces, observations, nil
}
