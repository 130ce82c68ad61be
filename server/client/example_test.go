package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/client"
)

// A node agent pushes GPU metrics; the Router reads the latest queue depth of a
// replica and checks that it is fresh before routing on it.
func Example() {
	ctx := context.Background()
	c, err := client.New(serverURL, token) // e.g. "http://xtrace.observability.svc:8742", os.Getenv("API_BEARER_TOKEN")
	if err != nil {
		panic(err)
	}
	now := time.Now()
	err = c.PushMetrics(ctx, []client.MetricPoint{
		{Name: "pending_requests", Labels: map[string]string{"model_uid": "qwen-72b", "replica_id": "0", "node_id": "node-1"}, Value: 3, Timestamp: now},
		{Name: "gpu_utilization", Labels: map[string]string{"node_id": "node-1", "gpu_index": "0"}, Value: 87.5, Timestamp: now},
	})
	if err != nil {
		panic(err)
	}

	latest, err := c.LatestValue(ctx, "pending_requests", map[string]string{"model_uid": "qwen-72b", "replica_id": "0"})
	if err != nil {
		panic(err)
	}
	stale := client.IsStale(client.QueryMeta{LatestTS: latest.LatestTS}, 15*time.Second, time.Now())
	fmt.Printf("pending=%v stale=%v\n", latest.Value, stale)
	// Output: pending=3 stale=false
}

// The Router asks which replicas of a model are fresh: each series carries
// the time of its own newest point.
func ExampleClient_LatestValues() {
	c, _ := client.New(serverURL, token)
	ctx := context.Background()
	now := time.Now().UTC()
	_ = c.PushMetrics(ctx, []client.MetricPoint{
		{Name: "pending_requests", Labels: map[string]string{"model_uid": "llama-8b", "replica_id": "0"}, Value: 1, Timestamp: now},
		{Name: "pending_requests", Labels: map[string]string{"model_uid": "llama-8b", "replica_id": "1"}, Value: 4, Timestamp: now.Add(-45 * time.Second)},
	})
	replicas, err := c.LatestValues(ctx, "pending_requests", map[string]string{"model_uid": "llama-8b"})
	if err != nil {
		panic(err)
	}
	for _, r := range replicas {
		fmt.Printf("replica %s: pending=%v stale=%v\n", r.Labels["replica_id"], r.Value, r.IsStale(15*time.Second, time.Now()))
	}
	// Output:
	// replica 0: pending=1 stale=false
	// replica 1: pending=4 stale=true
}

// The Scheduler keeps working on the last good answer for up to 30 s when xtrace is unreachable.
func ExampleCachedQuerier() {
	c, _ := client.New(serverURL, token, client.WithRetry(client.RetryPolicy{MaxAttempts: 2, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Jitter: 0.2}))
	cq := &client.CachedQuerier{Client: c, TTL: 30 * time.Second}
	_ = c.PushMetrics(context.Background(), []client.MetricPoint{{Name: "kv_cache_usage", Labels: map[string]string{"model_uid": "llama-8b"}, Value: 0.42}})

	res, err := cq.Query(context.Background(), client.MetricsQuery{
		Name: "kv_cache_usage", Labels: map[string]string{"model_uid": "llama-8b"}, Step: time.Minute, Agg: client.AggLast,
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("series=%d fromCache=%v value=%v\n", len(res.Series), res.FromCache, res.Series[0].Values[0].Value)
	// Output: series=1 fromCache=false value=0.42
}

// The Gateway records one trace per request with its generation.
func ExampleClient_IngestBatch() {
	c, _ := client.New(serverURL, token)
	start := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	res, err := c.IngestBatch(context.Background(),
		&client.Trace{ID: "example-req-1", Name: "/v1/chat/completions", UserID: "team-a", Tags: []string{"gateway"}, Timestamp: start},
		[]client.Observation{{ID: "example-gen-1", Type: "GENERATION", Model: "qwen-72b", StartTime: start,
			EndTime: start.Add(800 * time.Millisecond), PromptTokens: 120, CompletionTokens: 48}})
	if err != nil {
		panic(err)
	}
	trace, _ := c.GetTrace(context.Background(), "example-req-1")
	fmt.Printf("accepted=%d/%d latency=%.1fs tokens=%v\n", res.Traces, res.Observations, trace.Latency, trace.Observations[0].UsageDetails["total"])
	// Output: accepted=1/1 latency=0.8s tokens=168
}
