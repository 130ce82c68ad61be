package main

import (
	"fmt"
	"strconv"
)

// fleet is the Nebula profile: 100 nodes × 8 GPUs × 4 metrics + 200 replicas × 3 metrics = 3,800 series.
type series struct {
	name   string
	labels map[string]string
}

func fleet() []series {
	var out []series
	for n := 0; n < 100; n++ {
		for g := 0; g < 8; g++ {
			for _, m := range []string{"gpu_utilization", "gpu_temperature", "gpu_memory_used_mb", "gpu_memory_total_mb"} {
				out = append(out, series{m, map[string]string{"node_id": fmt.Sprintf("node-%d", n), "gpu_index": strconv.Itoa(g)}})
			}
		}
	}
	for r := 0; r < 200; r++ {
		for _, m := range []string{"kv_cache_usage", "pending_requests", "prefix_cache_hit_rate"} {
			out = append(out, series{m, map[string]string{
				"model_uid": fmt.Sprintf("model-%d", r/4), "replica_id": strconv.Itoa(r % 4), "node_id": fmt.Sprintf("node-%d", r%100)}})
		}
	}
	return out
}

func value(si, step int) float64 { return float64((si*7919+step*104729)%10000) / 100 }
