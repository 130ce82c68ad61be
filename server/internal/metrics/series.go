package metrics

import (
	"math"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/jsontext"
)

// NameLabel is the label that carries the metric name in Prometheus' data
// model (remote-write, OTLP translated by Prometheus' rules, PromQL).
const NameLabel = "__name__"

// Label is one name/value pair of a Prometheus-style series.
type Label struct{ Name, Value string }

// SeriesIdentity validates a Prometheus-style label set (NameLabel plus the
// other labels, in any order) and returns the series it names: the metric
// name and the canonical JSON of the other labels, so that a remote-written
// series and a natively pushed one with the same name and labels are the same
// series. Labels with an empty value are dropped (in Prometheus an empty
// label is an absent one). The rules are the native push's: a valid name, at
// most MaxLabels labels with valid keys and values of at most MaxLabelBytes;
// a repeated label name is an error.
func SeriesIdentity(labels []Label) (name, labelsJSON string, err error) {
	rest := make(map[string]string, len(labels))
	seenName := false
	for _, l := range labels {
		if l.Name == NameLabel {
			if seenName {
				return "", "", errs.InvalidField(".labels", "label %s appears twice", NameLabel)
			}
			seenName, name = true, l.Value
			continue
		}
		if err := checkLabel(l.Name, l.Value); err != nil {
			return "", "", err
		}
		if problem := jsontext.StringProblem(l.Value); problem != "" {
			// Replacing it would merge distinct series; the sender must fix it.
			return "", "", errs.InvalidField(".labels."+l.Name, "value %s", problem)
		}
		if _, dup := rest[l.Name]; dup {
			return "", "", errs.InvalidField(".labels", "label %q appears twice", l.Name)
		}
		rest[l.Name] = l.Value
	}
	if name == "" {
		return "", "", errs.InvalidField(".labels", "no %s label: every series needs a metric name", NameLabel)
	}
	if err := checkName(name); err != nil {
		return "", "", err
	}
	for k, v := range rest {
		if v == "" {
			delete(rest, k)
		}
	}
	if len(rest) > MaxLabels {
		return "", "", errs.InvalidField(".labels", "%d labels besides %s, at most %d allowed", len(rest), NameLabel, MaxLabels)
	}
	return name, CanonicalLabels(rest), nil
}

// SampleTime converts a Prometheus sample timestamp (milliseconds since the
// epoch) and checks it against the window the native push accepts.
func SampleTime(ms int64, w Window) (time.Time, error) {
	ts := time.UnixMilli(ms).UTC()
	if !w.Contains(ts) {
		return time.Time{}, errs.InvalidField(".timestamp", "%d ms (%s) is outside the accepted window from %s (the %d-day metrics retention) to %s (%s ahead of the server clock)",
			ms, ts.Format(time.RFC3339Nano), w.Oldest().UTC().Format(time.RFC3339), w.RetentionDays, w.Newest().UTC().Format(time.RFC3339), MaxFutureSkew)
	}
	return ts, nil
}

// IsFinite reports whether v is a number the native JSON API can carry
// (remote-written series may also hold NaN, ±Inf and staleness markers).
func IsFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
