package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// BenchmarkParseAndPrepareGatewayRequest is the server's CPU per gateway
// request before the trace writer (the bench's request: a trace, a routing
// span and a generation), which every request of a group commit waits on:
//
//	go test ./server/internal/store -run '^$' -bench ParseAndPrepare
func BenchmarkParseAndPrepareGatewayRequest(b *testing.B) {
	now := time.Now().UTC()
	body := gatewayRequest(7, now)
	b.ReportAllocs()
	for b.Loop() {
		ups, _, _, err := traces.ParseNativeBatch(body, now)
		if err != nil {
			b.Fatal(err)
		}
		PrepareTraceWrite(ups)
	}
}

// gatewayRequest is the bench's request i: a trace, a routing span and a generation.
func gatewayRequest(i int, now time.Time) []byte {
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	return []byte(fmt.Sprintf(`{"trace":{"id":"bench-trace-%[1]d","name":"/v1/chat/completions","userId":"team-7","tags":["gateway"],"timestamp":%[2]q},`+
		`"observations":[{"id":"bench-route-%[1]d","name":"routing","startTime":%[2]q,"endTime":%[3]q,"metadata":{"endpoint":"node-7"}},`+
		`{"id":"bench-gen-%[1]d","type":"GENERATION","name":"chat","model":"model-7","startTime":%[2]q,"endTime":%[4]q,`+
		`"input":"How do I route this request?","output":"To the least loaded replica.","promptTokens":120,"completionTokens":48}]}`,
		i, at(0), at(2*time.Millisecond), at(800*time.Millisecond)))
}

// BenchmarkWriteTraces is the trace writer's cost per gateway request in
// groups of 1 (a lone client) and 8 (the bench's 8 clients), one writer at
// a time, with the PostgreSQL backend's CPU per request beside it (on the
// test cluster, which does not fsync):
//
//	go test ./server/internal/store -run '^$' -bench WriteTraces
func BenchmarkWriteTraces(b *testing.B) {
	for _, size := range []int{1, 8} {
		b.Run(fmt.Sprintf("group=%d", size), func(b *testing.B) {
			s, err := Open(context.Background(), Options{URL: pgtest.NewDatabase(b), MaxConns: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if _, err := s.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			conn, err := s.pool.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var pid int
			err = conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
			conn.Release()
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC()
			next := 0
			group := func() []*TraceWrite {
				ws := make([]*TraceWrite, size)
				for i := range ws {
					ups, _, _, err := traces.ParseNativeBatch(gatewayRequest(next, now), now)
					if err != nil {
						b.Fatal(err)
					}
					ws[i], next = PrepareTraceWrite(ups), next+1
				}
				return ws
			}
			cpu0 := processCPU(b, pid)
			requests := 0
			for b.Loop() {
				b.StopTimer()
				ws := group()
				b.StartTimer()
				if err := s.WriteTraces(ctx, "default", ws); err != nil {
					b.Fatal(err)
				}
				requests += size
			}
			b.ReportMetric(float64(size), "requests/op")
			b.ReportMetric((processCPU(b, pid)-cpu0)*1e6/float64(requests), "pg-cpu-µs/request")
		})
	}
}

// processCPU is the user and system CPU seconds of a process (Linux).
func processCPU(b *testing.B, pid int) float64 {
	st, err := devproc.ReadProcStat(pid)
	if err != nil {
		b.Fatal(err)
	}
	return st.CPU
}
