package httpapi

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/jsontext"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// All query-string and path parsing of the API lives here: strings in,
// typed values out. The domain packages validate the typed values.

// Paging limits (Langfuse: limit default 50, at most 100).
const (
	defaultLimit = 50
	maxLimit     = 100
	// maxPage keeps OFFSET far from overflowing and from scanning absurd distances.
	maxPage = 1_000_000
)

// pageParams reads page (1-based) and limit.
func pageParams(q url.Values) (store.Page, error) {
	p := store.Page{Page: 1, Limit: defaultLimit}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return p, errs.InvalidField("page", "%q is not an integer from 1 to %d", clip(v, 32), maxPage)
		}
		p.Page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, errs.InvalidField("limit", "%q is not an integer from 1 to %d", clip(v, 32), maxLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// acceptedTimes names the time forms timeParam accepts, for error messages.
const acceptedTimes = "RFC 3339 with or without an offset (none means UTC, e.g. 2026-11-30T09:00:00Z), a date (2026-11-30), or unix seconds (milliseconds when ≥ 1e12)"

// timeParam reads an optional time parameter.
func timeParam(q url.Values, name string) (*time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	t, ok := parseTime(v)
	if !ok {
		return nil, errs.InvalidField(name, "%q is not a time: use %s", clip(v, 64), acceptedTimes)
	}
	return &t, nil
}

// spaceForPlus matches an offset whose "+" arrived as a space (an unencoded + in a query string).
var spaceForPlus = regexp.MustCompile(` (\d\d:?\d\d)$`)

// parseTime accepts the forms in acceptedTimes, returned in UTC.
func parseTime(v string) (time.Time, bool) {
	v = strings.TrimSpace(spaceForPlus.ReplaceAllString(v, "+$1"))
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), true
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02T15:04:05.999999999Z0700", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0 && isNumeric(v) {
		if f >= 1e12 {
			f /= 1000 // milliseconds
		}
		if f > 1e11 { // beyond year 5138: not a time anyone means
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).UTC(), true
	}
	return time.Time{}, false
}

func isNumeric(v string) bool {
	for _, c := range v {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// multiParam accepts repeated keys and comma-joined values (SDKs send both).
func multiParam(q url.Values, name string) ([]string, error) {
	var out []string
	for _, v := range q[name] {
		if problem := jsontext.StringProblem(v); problem != "" {
			return nil, errs.InvalidField(name, "%s; nothing stored matches it", problem)
		}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// pathID reads an id from the path. Ids are text: NUL and invalid UTF-8 cannot be stored, so no such object exists.
func pathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if problem := jsontext.StringProblem(id); problem != "" {
		return "", errs.InvalidField(name, "%s; no object has such an id", problem)
	}
	if len(id) > traces.MaxIDLength {
		return "", errs.InvalidField(name, "longer than %d characters", traces.MaxIDLength)
	}
	return id, nil
}

// textParam reads a filter value; NUL and invalid UTF-8 are rejected (they can match nothing stored).
func textParam(q url.Values, name string) (string, error) {
	v := q.Get(name)
	if problem := jsontext.StringProblem(v); problem != "" {
		return "", errs.InvalidField(name, "%s; nothing stored matches it", problem)
	}
	return v, nil
}

// textParams reads several filter values at once, stopping at the first bad one.
func textParams(q url.Values, names ...string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, err := textParam(q, n)
		if err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, nil
}

// traceFilter reads the filters of GET /api/public/traces.
func traceFilter(q url.Values) (store.TraceFilter, error) {
	f := store.TraceFilter{OrderBy: "timestamp", Desc: true}
	var err error
	if f.Tags, err = multiParam(q, "tags"); err != nil {
		return f, err
	}
	if f.Page, err = pageParams(q); err != nil {
		return f, err
	}
	text, err := textParams(q, "userId", "name", "sessionId", "version", "release", "environment")
	if err != nil {
		return f, err
	}
	f.UserID, f.Name, f.SessionID = text["userId"], text["name"], text["sessionId"]
	f.Version, f.Release, f.Environment = text["version"], text["release"], text["environment"]
	if f.From, err = timeParam(q, "fromTimestamp"); err != nil {
		return f, err
	}
	if f.To, err = timeParam(q, "toTimestamp"); err != nil {
		return f, err
	}
	if v := q.Get("orderBy"); v != "" {
		col, dir, _ := strings.Cut(v, ".")
		if _, ok := store.TraceOrderColumns[col]; !ok || (dir != "asc" && dir != "desc" && dir != "") {
			return f, errs.InvalidField("orderBy", "%q is not field.asc or field.desc with field one of timestamp, name, userId, sessionId, release, version, environment, createdAt, updatedAt, id", clip(v, 64))
		}
		f.OrderBy, f.Desc = col, dir != "asc"
	}
	return f, nil
}

// observationFilter reads the filters of GET /api/public/observations.
func observationFilter(q url.Values) (store.ObservationFilter, error) {
	var f store.ObservationFilter
	var err error
	if f.Page, err = pageParams(q); err != nil {
		return f, err
	}
	text, err := textParams(q, "traceId", "name", "type", "userId", "parentObservationId", "environment", "version")
	if err != nil {
		return f, err
	}
	f.TraceID, f.Name, f.Type, f.UserID = text["traceId"], text["name"], text["type"], text["userId"]
	f.ParentObservationID, f.Environment, f.Version = text["parentObservationId"], text["environment"], text["version"]
	if f.FromStartTime, err = timeParam(q, "fromStartTime"); err != nil {
		return f, err
	}
	f.ToStartTime, err = timeParam(q, "toStartTime")
	return f, err
}

// sessionFilter reads the filters of GET /api/public/sessions.
func sessionFilter(q url.Values) (store.SessionFilter, error) {
	var f store.SessionFilter
	var err error
	if f.Page, err = pageParams(q); err != nil {
		return f, err
	}
	if f.From, err = timeParam(q, "fromTimestamp"); err != nil {
		return f, err
	}
	f.To, err = timeParam(q, "toTimestamp")
	return f, err
}

// dailyFilter reads the filters of GET /api/public/metrics/daily.
func dailyFilter(q url.Values) (store.DailyFilter, error) {
	var f store.DailyFilter
	var err error
	if f.Tags, err = multiParam(q, "tags"); err != nil {
		return f, err
	}
	if f.Page, err = pageParams(q); err != nil {
		return f, err
	}
	text, err := textParams(q, "traceName", "userId")
	if err != nil {
		return f, err
	}
	f.TraceName, f.UserID = text["traceName"], text["userId"]
	if f.From, err = timeParam(q, "fromTimestamp"); err != nil {
		return f, err
	}
	f.To, err = timeParam(q, "toTimestamp")
	return f, err
}

// metricsQuery reads GET /api/public/metrics/query (SPEC §3.5).
func metricsQuery(q url.Values) (metrics.QueryInput, error) {
	in := metrics.QueryInput{Name: q.Get("name"), Agg: q.Get("agg")}
	var err error
	if in.From, err = timeParam(q, "from"); err != nil {
		return in, err
	}
	if in.To, err = timeParam(q, "to"); err != nil {
		return in, err
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &in.Labels); err != nil || in.Labels == nil {
			return in, errs.InvalidField("labels", `must be a JSON object of string values, e.g. {"node_id":"node-1"}`)
		}
		if problem := jsontext.Problem([]byte(v)); problem != "" {
			return in, errs.InvalidField("labels", "%s; no series has such a label", problem)
		}
	}
	if v := q.Get("step"); v != "" {
		if in.Step, err = parseStep(v); err != nil {
			return in, err
		}
	}
	if v := q.Get("group_by"); v != "" {
		for _, k := range strings.Split(v, ",") {
			in.GroupBy = append(in.GroupBy, strings.TrimSpace(k))
		}
	}
	return in, nil
}

// parseStep reads 15s, 1m, 5m, 1h, 1d: Go durations of whole seconds ≥ 1s, plus days.
func parseStep(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n time.Duration
		n, err = time.ParseDuration(days + "h")
		d = n * 24
	}
	switch {
	case err != nil:
		return 0, errs.InvalidField("step", "%q is not a duration like 15s, 1m, 5m, 1h or 1d", clip(v, 32))
	case d < time.Second:
		return 0, errs.InvalidField("step", "%q is below the minimum of 1s", clip(v, 32))
	case d%time.Second != 0:
		return 0, errs.InvalidField("step", "%q is not a whole number of seconds", clip(v, 32))
	case d > metrics.MaxStep:
		return 0, errs.InvalidField("step", "%q is longer than a year", clip(v, 32))
	}
	return d, nil
}

// clip shortens client input quoted in error messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
