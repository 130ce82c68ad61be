package replicatest

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// sampleEvery is the replicas' lag sampling period in these tests (1 s in production).
const sampleEvery = 100 * time.Millisecond

// replicated is a server on a private primary with one streaming replica.
type replicated struct {
	db      *pgtest.Replicated
	server  *servertest.Server
	logs    *logSink
	replica string // the replica's pool name, as in logs and /metrics
}

// startReplicated starts a primary, a replica and a server reading from the
// replica, with env added to the server's settings, and waits until the
// replica serves reads.
func startReplicated(t *testing.T, env map[string]string) *replicated {
	t.Helper()
	db := pgtest.NewReplicated(t)
	settings := map[string]string{"DATABASE_READ_URL": db.ReplicaURL(), "XTRACE_LOG_LEVEL": "info"}
	for k, v := range env {
		settings[k] = v
	}
	logs := &logSink{}
	s := servertest.Start(t, servertest.Options{DatabaseURL: db.PrimaryURL(), Env: settings, ReplicaSampleInterval: sampleEvery, Log: logs})
	r := &replicated{db: db, server: s, logs: logs, replica: "replica:127.0.0.1:" + strconv.Itoa(db.Replica.Port)}
	r.waitState(t, "serving")
	return r
}

// waitState waits until /metrics shows the replica in state.
func (r *replicated) waitState(t *testing.T, state string) {
	t.Helper()
	servertest.WaitFor(t, 30*time.Second, "replica state "+state, func() bool {
		return scrape(t, r.server)[`xtrace_db_replica_state{pool="`+r.replica+`",state="`+state+`"}`] == 1
	})
}

// servedBy sends a request with a fresh request id and returns its status
// and the pool its access log line names ("" when it read nothing).
func (r *replicated) servedBy(t *testing.T, method, path string, body any, headers ...string) (int, string) {
	t.Helper()
	id := "req-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	resp := r.server.Do(t, method, path, body, append([]string{"X-Request-Id", id}, headers...)...)
	line := r.logs.waitFor(t, func(l map[string]any) bool { return l["message"] == "request" && l["request_id"] == id })
	pool, _ := line["pool"].(string)
	return resp.Status, pool
}

// scrape reads /metrics into "name{labels}" → value.
func scrape(t *testing.T, s *servertest.Server) map[string]float64 {
	t.Helper()
	return devproc.ParseMetrics(s.Do(t, "GET", "/metrics", nil).Body)
}

// logSink collects JSON log lines.
type logSink struct {
	mu    sync.Mutex
	buf   []byte
	lines []map[string]any
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		var m map[string]any
		if json.Unmarshal(l.buf[:i], &m) == nil {
			l.lines = append(l.lines, m)
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

// all returns the lines that match.
func (l *logSink) all(match func(map[string]any) bool) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// waitFor waits for a matching line (the access log is written after the response).
func (l *logSink) waitFor(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	servertest.WaitFor(t, 10*time.Second, "a log line", func() bool {
		if m := l.all(match); len(m) > 0 {
			found = m[0]
			return true
		}
		return false
	})
	return found
}
