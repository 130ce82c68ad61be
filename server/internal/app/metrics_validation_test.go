package app_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

func countPoints(t *testing.T, dbURL string) int {
	t.Helper()
	return int(pgtest.Connect(t, dbURL).Int("SELECT count(*) FROM metric_points"))
}

func TestPushValidation(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	now := time.Now().UTC().Format(time.RFC3339)
	good := fmt.Sprintf(`{"name":"ok","labels":{"a":"b"},"value":1,"timestamp":%q}`, now)
	many := func(n int, p string) string {
		return `{"metrics":[` + strings.TrimSuffix(strings.Repeat(p+",", n), ",") + `]}`
	}
	manyLabels := map[string]string{}
	for i := 0; i < 33; i++ {
		manyLabels[fmt.Sprintf("k%d", i)] = "v"
	}
	tooManyLabels, _ := json.Marshal(map[string]any{"metrics": []any{map[string]any{"name": "x", "labels": manyLabels, "value": 1}}})

	cases := []struct {
		name, body, wantMsg string
	}{
		{"not json", `{"metrics":[`, "body: truncated JSON"},
		{"garbage", `hello`, "body: malformed JSON"},
		{"empty body", ``, "body: empty"},
		{"no metrics key", `{"points":[]}`, "metrics: required"},
		{"metrics not array", `{"metrics":{}}`, "metrics: must be an array of points"},
		{"point not object", `{"metrics":[5]}`, "metrics[0]: must be an object"},
		{"missing name", `{"metrics":[` + good + `,{"value":1}]}`, "metrics[1].name: required"},
		{"empty name", `{"metrics":[{"name":"","value":1}]}`, "metrics[0].name: required"},
		{"name with space", `{"metrics":[{"name":"gpu util","value":1}]}`, "metrics[0].name"},
		{"name with quote", `{"metrics":[{"name":"gpu'util","value":1}]}`, "metrics[0].name"},
		{"sql name", `{"metrics":[{"name":"x; DROP TABLE metric_points","value":1}]}`, "metrics[0].name"},
		{"name too long", `{"metrics":[{"name":"` + strings.Repeat("a", 201) + `","value":1}]}`, "metrics[0].name: longer than 200"},
		{"name not string", `{"metrics":[{"name":5,"value":1}]}`, "metrics[0].name"},
		{"label value number", `{"metrics":[{"name":"x","labels":{"gpu":0},"value":1}]}`, "metrics[0].labels.gpu: must be a string"},
		{"label value object", `{"metrics":[{"name":"x","labels":{"gpu":{"a":"b"}},"value":1}]}`, "metrics[0].labels.gpu: must be a string"},
		{"labels array", `{"metrics":[{"name":"x","labels":["a"],"value":1}]}`, "metrics[0].labels"},
		{"bad label key", `{"metrics":[{"name":"x","labels":{"gpu-index":"0"},"value":1}]}`, "metrics[0].labels: key"},
		{"label value too long", `{"metrics":[{"name":"x","labels":{"k":"` + strings.Repeat("v", 257) + `"},"value":1}]}`, "metrics[0].labels.k: value longer than 256"},
		{"too many labels", string(tooManyLabels), "metrics[0].labels: 33 labels"},
		{"NaN string", `{"metrics":[{"name":"x","value":"NaN"}]}`, "metrics[0].value: must be a finite JSON number"},
		{"Infinity string", `{"metrics":[{"name":"x","value":"Infinity"}]}`, "metrics[0].value"},
		{"value missing", `{"metrics":[{"name":"x"}]}`, "metrics[0].value: required"},
		{"value null", `{"metrics":[{"name":"x","value":null}]}`, "metrics[0].value: required"},
		{"value bool", `{"metrics":[{"name":"x","value":true}]}`, "metrics[0].value"},
		{"value overflow", `{"metrics":[{"name":"x","value":1e400}]}`, "metrics[0].value"},
		{"timestamp not rfc3339", `{"metrics":[{"name":"x","value":1,"timestamp":"2026-02-14 10:00:00"}]}`, "metrics[0].timestamp: \"2026-02-14 10:00:00\" is not RFC 3339"},
		{"timestamp epoch number", `{"metrics":[{"name":"x","value":1,"timestamp":1760000000}]}`, "metrics[0].timestamp"},
		{"timestamp before the retention window", `{"metrics":[{"name":"x","value":1,"timestamp":"1900-01-01T00:00:00Z"}]}`, "metrics[0].timestamp: 1900-01-01T00:00:00Z is outside the accepted window from "},
		{"timestamp far future", `{"metrics":[{"name":"x","value":1,"timestamp":"2999-01-01T00:00:00Z"}]}`, "metrics[0].timestamp"},
		{"over 10000 points", many(10001, good), "metrics: 10001 points in one batch, at most 10000"},
		{"trailing data", `{"metrics":[]} {}`, "body: unexpected data"},
	}
	for _, c := range cases {
		resp := s.Do(t, "POST", "/v1/metrics/batch", c.body)
		var e struct {
			Message, Code string
			Data          any
		}
		resp.JSON(t, &e)
		if resp.Status != 400 || e.Code != "BAD_REQUEST" || !strings.Contains(e.Message, c.wantMsg) {
			t.Errorf("%s: %d %s; want 400 containing %q", c.name, resp.Status, resp.Body, c.wantMsg)
		}
	}
	// All-or-nothing: the valid first point of a rejected batch was not written.
	if n := countPoints(t, s.DatabaseURL); n != 0 {
		t.Fatalf("%d points written by rejected batches", n)
	}
	// Exactly 10,000 points is fine; a missing timestamp means "now".
	if resp := s.Do(t, "POST", "/v1/metrics/batch", many(10000, good)); resp.Status != 200 {
		t.Fatalf("10000 points: %d %s", resp.Status, resp.Body)
	}
	if resp := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"no_ts","value":-2.5e-3}]}`); resp.Status != 200 || string(resp.Body) != "{\"accepted\":1}\n" {
		t.Fatalf("point without timestamp: %d %s", resp.Status, resp.Body)
	}
	if got := query(t, s, url.Values{"name": {"no_ts"}, "agg": {"last"}}); len(got.Data) != 1 || got.Data[0].Values[0].Value != -2.5e-3 {
		t.Fatalf("point without timestamp not stored at receive time: %+v", got)
	}
}

func TestQueryValidation(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	cases := []struct{ query, wantMsg string }{
		{"", "name: required"},
		{"name=x&from=yesterday", "from: \"yesterday\" is not a time: use RFC 3339 with or without an offset"},
		{"name=x&to=2026-13-01T00:00:00Z", "to:"},
		{"name=x&from=2026-02-14T11:00:00Z&to=2026-02-14T10:00:00Z", "from: 2026-02-14T11:00:00Z is after to"},
		{"name=x&labels=notjson", "labels: must be a JSON object of string values"},
		{"name=x&labels=" + url.QueryEscape(`["a"]`), "labels: must be a JSON object"},
		{"name=x&labels=" + url.QueryEscape(`{"a":1}`), "labels: must be a JSON object"},
		{"name=x&labels=" + url.QueryEscape(`{"a":{"b":"c"}}`), "labels: must be a JSON object"},
		{"name=x&labels=null", "labels: must be a JSON object"},
		{"name=x&agg=median", "agg: \"median\" is not one of avg, min, max, sum, count, last, p50, p90, p95, p99"},
		{"name=x&step=0", "step: \"0\" is below the minimum of 1s"},
		{"name=x&step=0s", "step:"},
		{"name=x&step=-1m", "step: \"-1m\" is below the minimum"},
		{"name=x&step=500ms", "step: \"500ms\" is below the minimum of 1s"},
		{"name=x&step=1500ms", "step: \"1500ms\" is not a whole number of seconds"},
		{"name=x&step=fortnight", "step: \"fortnight\" is not a duration"},
		{"name=x&group_by=node_id,,gpu", "group_by: empty label key"},
		{"name=x&group_by=", ""}, // empty group_by is simply absent
		{"name=x&group_by=" + url.QueryEscape("node_id; DROP TABLE x"), "group_by: \"node_id; DROP TABLE x\" is not a valid label key"},
		{"name=" + url.QueryEscape("x' OR '1'='1"), "name: \"x' OR '1'='1\" is not a valid metric name"},
	}
	for _, c := range cases {
		resp := s.Do(t, "GET", "/api/public/metrics/query?"+c.query, nil)
		if c.wantMsg == "" {
			if resp.Status != 200 {
				t.Errorf("%q: %d %s, want 200", c.query, resp.Status, resp.Body)
			}
			continue
		}
		var e struct{ Message, Code string }
		resp.JSON(t, &e)
		if resp.Status != 400 || e.Code != "BAD_REQUEST" || !strings.Contains(e.Message, c.wantMsg) {
			t.Errorf("%q: %d %s; want 400 containing %q", c.query, resp.Status, resp.Body, c.wantMsg)
		}
	}
	for _, step := range []string{"1m", "5m", "1h", "1d", "15s", "10m", "6h", "2d"} {
		if resp := s.Do(t, "GET", "/api/public/metrics/query?name=x&step="+step, nil); resp.Status != 200 {
			t.Errorf("step=%s: %d %s", step, resp.Status, resp.Body)
		}
	}
	if resp := s.Do(t, "GET", "/api/public/metrics/labels", nil); resp.Status != 400 || !strings.Contains(string(resp.Body), "name: required") {
		t.Errorf("labels without name: %d %s", resp.Status, resp.Body)
	}
}
