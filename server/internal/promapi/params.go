package promapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// The bounds Prometheus uses for "no start" and "no end" in listings.
var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
)

// badData is Prometheus' bad_data error (400).
func badData(msg string) error { return &errs.Error{Kind: errs.Invalid, Msg: msg} }

// invalidParam words a parameter error as Prometheus does.
func invalidParam(name string, err error) error {
	return badData(fmt.Sprintf("invalid parameter %q: %v", name, err))
}

// parseForm reads the query string and, for POST, a form-encoded body (what
// Grafana sends). The body is bounded by the server's body limit.
func parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return err
		}
		return badData(fmt.Sprintf("error parsing form values: %v", err))
	}
	return nil
}

func limitParam(r *http.Request) (int, error) {
	v := r.FormValue("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalidParam("limit", err)
	}
	if n < 0 {
		return 0, invalidParam("limit", errors.New("limit must be non-negative"))
	}
	return n, nil
}

// hintLimit asks storage for one more than the limit, to know whether the answer was cut.
func hintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

// listingParams are limit, start and end of series and label listings.
func listingParams(r *http.Request) (limit int, start, end time.Time, err error) {
	if limit, err = limitParam(r); err != nil {
		return
	}
	if start, err = timeParam(r, "start", minTime); err != nil {
		return
	}
	end, err = timeParam(r, "end", maxTime)
	return
}

func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, invalidParam(name, fmt.Errorf("invalid time value for '%s': %w", name, err))
	}
	return t, nil
}

func requiredTimeParam(r *http.Request, name string) (time.Time, error) {
	t, err := parseTime(r.FormValue(name))
	if err != nil {
		return time.Time{}, invalidParam(name, err)
	}
	return t, nil
}

// parseTime accepts unix seconds with a fraction or RFC 3339, as Prometheus does.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTime.Format(time.RFC3339Nano):
		return minTime, nil
	case maxTime.Format(time.RFC3339Nano):
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration accepts seconds with a fraction or a Prometheus duration (5m, 1h30m).
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// queryOpts reads the per-query lookback_delta.
func queryOpts(r *http.Request) (promql.QueryOpts, error) {
	var lookback time.Duration
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, badData(fmt.Sprintf("error parsing lookback delta duration: %v", err))
		}
		lookback = d
	}
	return promql.NewPrometheusQueryOpts(false, lookback, nil), nil
}

// labelNameParam is the label name of label/{name}/values as Prometheus
// reads it (with its U__ escaping of UTF-8 names), and whether it is valid.
func labelNameParam(name string) (string, bool) {
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	return name, model.UTF8Validation.IsValidLabelName(name)
}
