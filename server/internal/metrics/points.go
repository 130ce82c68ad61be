// Package metrics is the time-series domain: validation of pushed points and
// of query parameters (SPEC §3.4, §3.5). It has no SQL and no HTTP.
package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/jsontext"
)

// Limits of a push (SPEC §3.4).
const (
	MaxPointsPerBatch = 10000
	MaxNameLength     = 200
	MaxLabels         = 32
	MaxLabelBytes     = 256
	// Timestamps more than MaxFutureSkew ahead are rejected: they are almost
	// always unit mistakes (seconds vs. milliseconds) and would create
	// partitions nobody asked for.
	MaxFutureSkew = 24 * time.Hour
)

// MinTimestamp is the earliest point time accepted whatever the retention:
// older times are unit mistakes (seconds taken for milliseconds).
var MinTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Window is the receive time of a push and the point times it may carry:
// from the start of the metrics retention (older points would be deleted at
// the next prune, and each day costs a partition) to MaxFutureSkew ahead.
type Window struct {
	Now           time.Time
	RetentionDays int
}

// Oldest is the earliest accepted point time.
func (w Window) Oldest() time.Time {
	if t := w.Now.AddDate(0, 0, -w.RetentionDays); t.After(MinTimestamp) {
		return t
	}
	return MinTimestamp
}

// Newest is the latest accepted point time.
func (w Window) Newest() time.Time { return w.Now.Add(MaxFutureSkew) }

// Contains says whether t may be stored.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Oldest()) && !t.After(w.Newest()) }

// Point is one validated sample.
type Point struct {
	Name string
	// LabelsJSON is the canonical encoding of Labels (keys sorted); it identifies the series.
	LabelsJSON string
	Value      float64
	Time       time.Time
}

type wirePoint struct {
	Name      *string         `json:"name"`
	Labels    json.RawMessage `json:"labels"`
	Value     json.RawMessage `json:"value"`
	Timestamp *string         `json:"timestamp"`
}

// ParseBatch decodes and validates a push body {"metrics":[...]}. It is
// all-or-nothing: the first problem is returned as a 400 naming the index and
// field, and no points are returned. w.Now is the receive time, used for points
// without a timestamp.
//
// The common, valid body is read by a reflection-free scanner (fastBatch);
// only when that declines is the body decoded with encoding/json, point by
// point, to accept it or to say precisely what is wrong.
func ParseBatch(body []byte, w Window) ([]Point, error) {
	if points, ok := fastBatch(body, w); ok {
		return points, nil
	}
	return parseBatchSlow(body, w)
}

// parseBatchSlow decodes point by point to name the first problem precisely.
func parseBatchSlow(body []byte, w Window) ([]Point, error) {
	var req struct {
		Metrics []json.RawMessage `json:"metrics"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		if asTypeError(err, &te) && te.Field == "metrics" {
			return nil, errs.InvalidField("metrics", "must be an array of points")
		}
		return nil, errs.InvalidField("body", "%s", jsonProblem(err))
	}
	if dec.More() {
		return nil, errs.InvalidField("body", "unexpected data after the JSON object")
	}
	if req.Metrics == nil {
		return nil, errs.InvalidField("metrics", `required (body is {"metrics":[...]})`)
	}
	if len(req.Metrics) > MaxPointsPerBatch {
		return nil, errs.InvalidField("metrics", "%d points in one batch, at most %d allowed", len(req.Metrics), MaxPointsPerBatch)
	}
	out := make([]Point, len(req.Metrics))
	for i, raw := range req.Metrics {
		if err := parsePoint(raw, w, &out[i]); err != nil {
			return nil, errs.WithField(err, fmt.Sprintf("metrics[%d]", i))
		}
	}
	return out, nil
}

func parsePoint(raw json.RawMessage, win Window, p *Point) error {
	var w wirePoint
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		if asTypeError(err, &te) && te.Field != "" {
			return errs.InvalidField("."+te.Field, "must be a %s", expectedType(te.Field))
		}
		return errs.InvalidField("", "must be an object with name, labels, value, timestamp")
	}
	if w.Name == nil || *w.Name == "" {
		return errs.InvalidField(".name", "required")
	}
	if err := checkName(*w.Name); err != nil {
		return err
	}
	p.Name = *w.Name

	labels, err := parseLabels(w.Labels)
	if err != nil {
		return err
	}
	p.LabelsJSON = CanonicalLabels(labels)

	if len(w.Value) == 0 || string(w.Value) == "null" {
		return errs.InvalidField(".value", "required")
	}
	if w.Value[0] == '"' {
		return errs.InvalidField(".value", "must be a finite JSON number, not a string (NaN and Infinity are not accepted)")
	}
	var v float64
	if err := json.Unmarshal(w.Value, &v); err != nil {
		return errs.InvalidField(".value", "must be a finite JSON number")
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return errs.InvalidField(".value", "must be finite")
	}
	p.Value = v

	ts, err := parseTimestamp(w.Timestamp, win)
	p.Time = ts
	return err
}

func parseTimestamp(v *string, w Window) (time.Time, error) {
	if v == nil || *v == "" {
		return w.Now.UTC().Truncate(time.Microsecond), nil
	}
	ts, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, errs.InvalidField(".timestamp", "%q is not RFC 3339 (e.g. 2026-02-14T10:00:00Z)", *v)
	}
	if !w.Contains(ts) {
		return time.Time{}, errs.InvalidField(".timestamp", "%s is outside the accepted window from %s (the %d-day metrics retention) to %s (%s ahead of the server clock)",
			*v, w.Oldest().UTC().Format(time.RFC3339), w.RetentionDays, w.Newest().UTC().Format(time.RFC3339), MaxFutureSkew)
	}
	// Postgres stores microseconds; truncate here so the identity of a point is what is stored.
	return ts.UTC().Truncate(time.Microsecond), nil
}

func checkName(name string) error {
	if len(name) > MaxNameLength {
		return errs.InvalidField(".name", "longer than %d characters", MaxNameLength)
	}
	if !validName(name) {
		return errs.InvalidField(".name", "%q does not match [a-zA-Z_:][a-zA-Z0-9_:.-]*", name)
	}
	return nil
}

// checkLabels validates decoded string labels (count, keys, sizes).
func checkLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return errs.InvalidField(".labels", "%d labels, at most %d allowed", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if err := checkLabel(k, v); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(k, v string) error {
	if len(k) > MaxLabelBytes {
		return errs.InvalidField(".labels", "key %q longer than %d bytes", k[:32]+"…", MaxLabelBytes)
	}
	if !validLabelKey(k) {
		return errs.InvalidField(".labels", "key %q does not match [a-zA-Z_][a-zA-Z0-9_]*", k)
	}
	if len(v) > MaxLabelBytes {
		return errs.InvalidField(".labels."+k, "value longer than %d bytes", MaxLabelBytes)
	}
	return nil
}

// validName is [a-zA-Z_:][a-zA-Z0-9_:.-]* without a regexp (it runs for every point).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// validLabelKey is [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

func parseLabels(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return map[string]string{}, nil
	}
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, errs.InvalidField(".labels", "must be an object of string values")
	}
	if len(generic) > MaxLabels {
		return nil, errs.InvalidField(".labels", "%d labels, at most %d allowed", len(generic), MaxLabels)
	}
	labels := make(map[string]string, len(generic))
	for _, k := range slices.Sorted(maps.Keys(generic)) { // the 400 names the first bad label by name
		rv := generic[k]
		var s string
		if err := checkLabel(k, ""); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(rv, &s); err != nil {
			return nil, errs.InvalidField(".labels."+k, "must be a string")
		}
		if problem := jsontext.Problem(rv); problem != "" {
			// Replacing it would merge distinct series; the sender must fix it.
			return nil, errs.InvalidField(".labels."+k, "value %s", problem)
		}
		if err := checkLabel(k, s); err != nil {
			return nil, err
		}
		labels[k] = s
	}
	return labels, nil
}

// CanonicalLabels encodes labels as JSON with sorted keys: the identity of a series
// and the order in which series are returned.
func CanonicalLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, k)
		b.WriteByte(':')
		writeJSONString(&b, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// writeJSONString writes s as a JSON string; plain strings (the usual label) skip encoding/json.
func writeJSONString(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			enc, _ := json.Marshal(s)
			b.Write(enc)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

func expectedType(field string) string {
	switch field {
	case "name", "timestamp":
		return "string"
	case "labels":
		return "object of string values"
	default:
		return "valid value"
	}
}
