package promapi_test

import (
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// A natively pushed point and a remote-written sample of the same name and
// labels are one series, whichever API reads it.
func TestNativePushAndRemoteWriteAreOneSeries(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	resp := s.Do(t, "POST", "/v1/metrics/batch", map[string]any{"metrics": []map[string]any{
		{"name": "pending_requests", "labels": map[string]string{"model_uid": "qwen", "replica_id": "0"}, "value": 3, "timestamp": t0.Format(time.RFC3339)},
	}})
	if resp.Status != 200 {
		t.Fatalf("push: %d %s", resp.Status, resp.Body)
	}
	mustWrite(t, s, servertest.Series(series("pending_requests", "replica_id", "0", "model_uid", "qwen"), at(t0.Add(15*time.Second), 5)))

	got := rangeQuery(t, s, `pending_requests{model_uid="qwen"}`, t0, t0.Add(15*time.Second), 15*time.Second)
	if len(got) != 1 || len(got[0].Values) != 2 || got[0].Values[0].V != "3" || got[0].Values[1].V != "5" {
		t.Fatalf("PromQL sees %+v, want one series with 3 then 5", got)
	}
	if want := "__name__=pending_requests,model_uid=qwen,replica_id=0,"; labelsKey(got[0].Metric) != want {
		t.Errorf("labels %v, want %s", got[0].Metric, want)
	}

	// The native query API reads the remote-written sample too.
	var native struct {
		Data []struct {
			Values []struct{ Value float64 } `json:"values"`
		} `json:"data"`
	}
	q := url.Values{"name": {"pending_requests"}, "step": {"15s"}, "agg": {"last"},
		"from": {t0.Format(time.RFC3339)}, "to": {t0.Add(20 * time.Second).Format(time.RFC3339)}}
	s.Do(t, "GET", "/api/public/metrics/query?"+q.Encode(), nil).JSON(t, &native)
	if len(native.Data) != 1 || len(native.Data[0].Values) != 2 || native.Data[0].Values[1].Value != 5 {
		t.Fatalf("native query sees %+v", native.Data)
	}
	if n := pgtest.Connect(t, s.DatabaseURL).Int(`SELECT count(*) FROM metric_series`); n != 1 {
		t.Errorf("%d series stored, want 1", n)
	}
}

// Remote-written NaN, ±Inf and staleness markers are stored bit for bit; the
// engine honours the marker (the series ends there, as in Prometheus) and
// the native JSON API, which cannot carry them, skips them.
func TestSpecialValuesAndStaleness(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	stale := math.Float64frombits(value.StaleNaN)
	mustWrite(t, s,
		servertest.Series(series("target_up", "job", "a"), at(t0, 1), at(t0.Add(10*time.Second), 1), at(t0.Add(20*time.Second), stale)),
		servertest.Series(series("odd_values", "kind", "nan"), at(t0, math.NaN())),
		servertest.Series(series("odd_values", "kind", "inf"), at(t0, math.Inf(1))),
		servertest.Series(series("odd_values", "kind", "-inf"), at(t0, math.Inf(-1))),
	)

	db := pgtest.Connect(t, s.DatabaseURL)
	checkMarker := func(path string) {
		var bits float64
		db.Scan(`SELECT p.value FROM metric_points p JOIN metric_series s ON s.id = p.series_id
			WHERE s.name = 'target_up' AND p.ts = $1`, []any{t0.Add(20 * time.Second)}, &bits)
		if math.Float64bits(bits) != value.StaleNaN {
			t.Fatalf("%s: staleness marker read back as %x, want %x", path, math.Float64bits(bits), value.StaleNaN)
		}
	}
	checkMarker("COPY")
	// Written again, the sample takes the upsert path (ON CONFLICT DO UPDATE).
	mustWrite(t, s, servertest.Series(series("target_up", "job", "a"), at(t0.Add(20*time.Second), stale)))
	checkMarker("upsert")

	if got := instantQuery(t, s, "target_up", t0.Add(15*time.Second)); len(got) != 1 {
		t.Fatalf("before the marker: %+v, want the series", got)
	}
	if got := instantQuery(t, s, "target_up", t0.Add(25*time.Second)); len(got) != 0 {
		t.Fatalf("after the marker: %+v, want nothing (within the 5m lookback the marker ends the series)", got)
	}
	values := map[string]string{}
	for _, v := range instantQuery(t, s, "odd_values", t0.Add(time.Second)) {
		values[v.Metric["kind"]] = v.Value.V
	}
	if values["nan"] != "NaN" || values["inf"] != "+Inf" || values["-inf"] != "-Inf" {
		t.Fatalf("odd values read as %v", values)
	}

	resp := s.Do(t, "GET", "/api/public/metrics/query?"+url.Values{"name": {"target_up"}, "step": {"10s"}, "agg": {"avg"},
		"from": {t0.Format(time.RFC3339)}, "to": {t0.Add(30 * time.Second).Format(time.RFC3339)}}.Encode(), nil)
	if resp.Status != 200 || strings.Contains(string(resp.Body), "NaN") {
		t.Fatalf("native query over a staleness marker: %d %s", resp.Status, resp.Body)
	}
}

// Remote-write 2.0 (symbols table) is decoded too, and answered with the
// written-samples headers the 2.0 sender reads.
func TestRemoteWriteV2(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	body := encodeV2(t, []string{"", "__name__", "queue_depth", "replica", "r1"}, []uint32{1, 2, 3, 4}, at(t0, 7), at(t0.Add(time.Second), 8))
	resp := s.Do(t, "POST", "/api/v1/write", body, "Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request",
		"Content-Encoding", "snappy", "X-Prometheus-Remote-Write-Version", "2.0.0")
	if resp.Status != 204 || resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written") != "2" {
		t.Fatalf("v2 write: %d %v %s", resp.Status, resp.Header, resp.Body)
	}
	got := instantQuery(t, s, `queue_depth{replica="r1"}`, t0.Add(2*time.Second))
	if len(got) != 1 || got[0].Value.V != "8" {
		t.Fatalf("v2 samples read back as %+v", got)
	}
	bad := encodeV2(t, []string{"", "__name__", "x"}, []uint32{1, 7}, at(t0, 1))
	resp = s.Do(t, "POST", "/api/v1/write", bad, "Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding", "snappy")
	if resp.Status != 400 || !strings.Contains(string(resp.Body), "beyond the 3 symbols") {
		t.Fatalf("a reference beyond the symbols table: %d %s", resp.Status, resp.Body)
	}
}

// The same point pushed twice, or out of order, follows the store's rule:
// the last write of a (series, timestamp) wins.
func TestDuplicatesAndOutOfOrderLastWriteWins(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	lbls := series("ooo", "k", "v")
	mustWrite(t, s, servertest.Series(lbls, at(t0.Add(10*time.Second), 1)))
	mustWrite(t, s, servertest.Series(lbls, at(t0, 2)))                     // older than what is stored: accepted
	mustWrite(t, s, servertest.Series(lbls, at(t0.Add(10*time.Second), 3))) // same timestamp: replaces
	got := rangeQuery(t, s, "ooo", t0, t0.Add(10*time.Second), 10*time.Second)
	if len(got) != 1 || len(got[0].Values) != 2 || got[0].Values[0].V != "2" || got[0].Values[1].V != "3" {
		t.Fatalf("got %+v, want 2 then 3", got)
	}
}

// Each project sees only its own series, through every read endpoint.
func TestProjectsSeeOnlyTheirOwnSeries(t *testing.T) {
	t.Parallel()
	a := servertest.Start(t, servertest.Options{Env: map[string]string{"DEFAULT_PROJECT_ID": "team-a"}})
	b := servertest.Start(t, servertest.Options{DatabaseURL: a.DatabaseURL, Env: map[string]string{"DEFAULT_PROJECT_ID": "team-b"}})
	t0 := base()
	mustWrite(t, a, servertest.Series(series("shared_name", "owner", "a"), at(t0, 1)))
	mustWrite(t, b, servertest.Series(series("shared_name", "owner", "b"), at(t0, 2)))
	for name, s := range map[string]*servertest.Server{"a": a, "b": b} {
		got := instantQuery(t, s, `{__name__=~"shared.*"}`, t0.Add(time.Second))
		if len(got) != 1 || got[0].Metric["owner"] != name {
			t.Errorf("project %s sees %+v", name, got)
		}
		var values []string
		prom(t, s, false, "/api/v1/label/owner/values", nil).ok(t, &values)
		if len(values) != 1 || values[0] != name {
			t.Errorf("project %s lists owners %v", name, values)
		}
	}
}

// In Prometheus an empty label is an absent one: a pushed series with an
// empty label and a remote-written one without it are one series to PromQL.
func TestEmptyLabelIsAbsentLabel(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	t0 := base()
	resp := s.Do(t, "POST", "/v1/metrics/batch", map[string]any{"metrics": []map[string]any{
		{"name": "kv_cache_usage", "labels": map[string]string{"replica_id": "0", "zone": ""}, "value": 0.5, "timestamp": t0.Format(time.RFC3339)},
	}})
	if resp.Status != 200 {
		t.Fatalf("push: %d %s", resp.Status, resp.Body)
	}
	mustWrite(t, s, servertest.Series(series("kv_cache_usage", "replica_id", "0"), at(t0.Add(10*time.Second), 0.75)))
	got := rangeQuery(t, s, `kv_cache_usage{zone=""}`, t0, t0.Add(10*time.Second), 10*time.Second)
	if len(got) != 1 || len(got[0].Values) != 2 || got[0].Values[0].V != "0.5" || got[0].Values[1].V != "0.75" {
		t.Fatalf("got %+v, want one series with 0.5 then 0.75", got)
	}
	if _, ok := got[0].Metric["zone"]; ok {
		t.Errorf("the empty label is shown: %v", got[0].Metric)
	}
}
