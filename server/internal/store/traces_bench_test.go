package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// BenchmarkParseAndPrepareGatewayRequest is the server's CPU per gateway
// request before the trace writer (the bench's request: a trace, a routing
// span and a generation), which every request of a group commit waits on:
//
//	go test ./server/internal/store -run '^$' -bench ParseAndPrepare
func BenchmarkParseAndPrepareGatewayRequest(b *testing.B) {
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	body := []byte(fmt.Sprintf(`{"trace":{"id":"bench-trace-7","name":"/v1/chat/completions","userId":"team-7","tags":["gateway"],"timestamp":%q},`+
		`"observations":[{"id":"bench-route-7","name":"routing","startTime":%q,"endTime":%q,"metadata":{"endpoint":"node-7"}},`+
		`{"id":"bench-gen-7","type":"GENERATION","name":"chat","model":"model-7","startTime":%q,"endTime":%q,`+
		`"input":"How do I route this request?","output":"To the least loaded replica.","promptTokens":120,"completionTokens":48}]}`,
		at(0), at(0), at(2*time.Millisecond), at(0), at(800*time.Millisecond)))
	b.ReportAllocs()
	for b.Loop() {
		ups, _, _, err := traces.ParseNativeBatch(body, now)
		if err != nil {
			b.Fatal(err)
		}
		PrepareTraceWrite(ups)
	}
}
