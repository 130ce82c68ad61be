package traces

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// ParseNativeBatch parses POST /v1/l/batch: {"trace": {...}?, "observations": [...]}.
// It is all-or-nothing: the first problem is a 400 naming the field.
func ParseNativeBatch(body []byte, now time.Time) (ups []Upsert, traces, observations int, err error) {
	req, err := splitNativeBatch(body)
	if err != nil {
		return nil, 0, 0, err
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
	var traceID json.RawMessage // the batch's trace, for observations that name none; values are never changed in place
	if traces == 1 {
		traceID, _ = json.Marshal(ups[0].ID)
	}
	for i, raw := range req.Observations {
		fields, err := bodyFields(raw)
		if err != nil {
			return nil, 0, 0, bodyError(err, fmt.Sprintf("observations[%d]", i))
		}
		if _, ok := fields["traceId"]; !ok && traceID != nil {
			fields["traceId"] = traceID
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

// nativeBatch is a native batch cut into its trace and observations.
type nativeBatch struct {
	Trace        json.RawMessage   `json:"trace"`
	Observations []json.RawMessage `json:"observations"`
}

// splitNativeBatch cuts a native batch into its parts. A valid body whose
// member names are spelled exactly is split in one pass (splitObject);
// anything else (invalid JSON, names in other cases, which encoding/json
// matches too) goes through encoding/json, so the result is the same either
// way: the decoder and its reflection were a quarter of a request's parse.
func splitNativeBatch(body []byte) (nativeBatch, error) {
	var req nativeBatch
	if json.Valid(body) {
		if top, ok := splitObject(body); ok && exactNames(top) {
			req.Trace = top["trace"]
			obs, ok := splitArray(top["observations"])
			if ok {
				req.Observations = obs
				return req, nil
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nativeBatch{}, errs.InvalidField("body", "must be a JSON object with trace and/or observations")
	}
	return req, nil
}

// exactNames says whether no member of a native batch is a case variant of
// "trace" or "observations".
func exactNames(top map[string]json.RawMessage) bool {
	for name := range top {
		if name != "trace" && name != "observations" && (strings.EqualFold(name, "trace") || strings.EqualFold(name, "observations")) {
			return false
		}
	}
	return true
}
