package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/client"
)

// TestRoundTripAgainstTheRealServer: push → query → names → labels → traces, on the real binary.
func TestRoundTripAgainstTheRealServer(t *testing.T) {
	ctx := context.Background()
	c, err := client.New(serverURL, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var pts []client.MetricPoint
	for i := 0; i < 12000; i++ { // more than one push batch
		pts = append(pts, client.MetricPoint{Name: "rt_queue_depth", Labels: map[string]string{"replica_id": fmt.Sprint(i % 3), "model_uid": "rt-model"},
			Value: float64(i), Timestamp: now.Add(-time.Duration(12000-i) * 100 * time.Millisecond)})
	}
	if err := c.PushMetrics(ctx, pts); err != nil {
		t.Fatal(err)
	}
	res, err := c.QueryMetrics(ctx, client.MetricsQuery{Name: "rt_queue_depth", Labels: map[string]string{"model_uid": "rt-model"},
		From: now.Add(-30 * time.Minute), To: now, Step: time.Hour, Agg: client.AggCount, GroupBy: []string{"model_uid"}})
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, v := range res.Series[0].Values {
		total += v.Value
	}
	if len(res.Series) != 1 || total != 12000 || res.Meta.LatestTS == nil || !res.Meta.LatestTS.Equal(now.Add(-100*time.Millisecond)) {
		t.Fatalf("query: %d series, count %v, latest %v", len(res.Series), total, res.Meta.LatestTS)
	}
	names, err := c.ListMetricNames(ctx)
	if err != nil || len(names) == 0 {
		t.Fatalf("names %v %v", names, err)
	}
	labels, err := c.MetricLabels(ctx, "rt_queue_depth")
	if err != nil || len(labels["replica_id"]) != 3 {
		t.Fatalf("labels %v %v", labels, err)
	}
	latest, err := c.LatestValue(ctx, "rt_queue_depth", map[string]string{"model_uid": "rt-model", "replica_id": "2"})
	if err != nil || latest == nil || latest.Value != 11999 || client.IsStale(client.QueryMeta{LatestTS: latest.LatestTS}, 15*time.Second, now) {
		t.Fatalf("latest %+v %v", latest, err)
	}
	if _, err := c.LatestValue(ctx, "rt_queue_depth", map[string]string{"model_uid": "rt-model"}); !errors.Is(err, client.ErrAmbiguousSeries) {
		t.Fatalf("ambiguous latest: %v", err)
	}
	// The Router's question: which replicas of a model are fresh? A replica
	// that stopped pushing 41 s ago must not hide behind one that pushed 6 s ago.
	if err := c.PushMetrics(ctx, []client.MetricPoint{
		{Name: "rt_pending", Labels: map[string]string{"model_uid": "qwen-72b", "replica_id": "fresh"}, Value: 2, Timestamp: now.Add(-6 * time.Second)},
		{Name: "rt_pending", Labels: map[string]string{"model_uid": "qwen-72b", "replica_id": "stale"}, Value: 7, Timestamp: now.Add(-41 * time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	replicas, err := c.LatestValues(ctx, "rt_pending", map[string]string{"model_uid": "qwen-72b"})
	if err != nil || len(replicas) != 2 {
		t.Fatalf("latest values: %+v %v", replicas, err)
	}
	for _, r := range replicas {
		wantStale := r.Labels["replica_id"] == "stale"
		if r.IsStale(15*time.Second, now) != wantStale || r.LatestTS == nil {
			t.Errorf("replica %s: latest %v value %v, stale=%v, want stale=%v", r.Labels["replica_id"], r.LatestTS, r.Value, r.IsStale(15*time.Second, now), wantStale)
		}
	}

	tr := &client.Trace{ID: "rt-trace", Name: "/v1/chat/completions", UserID: "router-test", Tags: []string{"gateway"}, Timestamp: now}
	obs := []client.Observation{{ID: "rt-gen", Type: "GENERATION", Model: "rt-model", StartTime: now, EndTime: now.Add(time.Second),
		PromptTokens: 10, CompletionTokens: 20}}
	accepted, err := c.IngestBatch(ctx, tr, obs)
	if err != nil || accepted.Traces != 1 || accepted.Observations != 1 {
		t.Fatalf("ingest %+v %v", accepted, err)
	}
	list, err := c.ListTraces(ctx, client.TraceListQuery{UserID: "router-test", Tags: []string{"gateway"}})
	if err != nil || list.Meta.TotalItems != 1 || list.Data[0].ID != "rt-trace" || list.Data[0].ObservationIDs[0] != "rt-gen" {
		t.Fatalf("list %+v %v", list, err)
	}
	got, err := c.GetTrace(ctx, "rt-trace")
	if err != nil || len(got.Observations) != 1 || got.Observations[0].UsageDetails["total"] != 30 || *got.Name != "/v1/chat/completions" || got.Latency != 1 {
		t.Fatalf("get %+v %v", got, err)
	}
	if _, err := c.GetTrace(ctx, "no-such-trace"); !client.IsNotFound(err) {
		t.Fatalf("missing trace: %v", err)
	}
	bad, _ := client.New(serverURL, "wrong-token")
	if _, err := bad.ListMetricNames(ctx); !client.IsUnauthorized(err) {
		t.Fatalf("wrong token: %v", err)
	}
	var apiErr *client.APIError
	_, err = c.QueryMetrics(ctx, client.MetricsQuery{Name: "x", From: now, To: now.Add(-time.Hour)})
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "BAD_REQUEST" || apiErr.RequestID == "" {
		t.Fatalf("bad query: %v", err)
	}
}
