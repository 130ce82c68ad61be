package metrics

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func benchBody(n int) []byte {
	type wire struct {
		Name      string            `json:"name"`
		Labels    map[string]string `json:"labels"`
		Value     float64           `json:"value"`
		Timestamp string            `json:"timestamp"`
	}
	var pts []wire
	ts := time.Now().UTC().Format(time.RFC3339)
	for i := 0; i < n; i++ {
		pts = append(pts, wire{"gpu_utilization", map[string]string{"node_id": fmt.Sprintf("node-%d", i%100), "gpu_index": fmt.Sprint(i % 8)}, float64(i) / 3, ts})
	}
	b, _ := json.Marshal(map[string]any{"metrics": pts})
	return b
}

func BenchmarkParseBatch(b *testing.B) {
	body := benchBody(2000)
	now := time.Now()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ParseBatch(body, Window{Now: now, RetentionDays: 30}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/point")
}
