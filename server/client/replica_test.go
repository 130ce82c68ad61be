package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/client"
)

// TestStrongReadsSeeTheirOwnWrites runs the server on a primary and a
// streaming replica whose replay is paused (a lag the server tolerates
// here): a plain read is answered by the replica and misses a fresh write;
// with WithStrongReads or StrongReads the primary answers and has it.
func TestStrongReadsSeeTheirOwnWrites(t *testing.T) {
	t.Parallel()
	db := pgtest.NewReplicated(t)
	port, err := devproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := devproc.Command(serverBin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db.PrimaryURL(), "DATABASE_READ_URL="+db.ReplicaURL(), "XTRACE_READ_MAX_LAG=1h",
		"API_BEARER_TOKEN="+token, "BIND_ADDR=127.0.0.1:"+strconv.Itoa(port), "XTRACE_LOG_LEVEL=error", "XTRACE_RETENTION_INTERVAL=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devproc.Stop(cmd) })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := devproc.WaitOK(base+"/readyz", 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	replicaPool := `pool="replica:127.0.0.1:` + strconv.Itoa(db.Replica.Port) + `"`
	serving := `xtrace_db_replica_state{` + replicaPool + `,state="serving"} 1`
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(get(t, base+"/metrics"), serving) {
		if time.Now().After(deadline) {
			t.Fatal("the replica never served reads")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// reads counts the read queries each pool has answered.
	reads := func() (replica, primary float64) {
		m := devproc.ParseMetrics([]byte(get(t, base+"/metrics")))
		return m[`xtrace_db_pool_reads_total{`+replicaPool+`}`], m[`xtrace_db_pool_reads_total{pool="primary"}`]
	}
	// The replica can report serving before the server's migrations: it had
	// replayed all there was. Pausing it before it replays them would leave
	// it without the tables (its reads fail over to the primary) and without
	// a replayed commit to date its lag by (unknown lag: skipped), so no read
	// could ever be answered by it alone.
	db.WaitCaughtUp(t, 30*time.Second)
	pgtest.Connect(t, db.Replica.URL("postgres")).Exec("SELECT pg_wal_replay_pause()")

	ctx := context.Background()
	plain, err := client.New(base, token)
	if err != nil {
		t.Fatal(err)
	}
	strong, err := client.New(base, token, client.WithStrongReads())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second) // far from the freshness window
	if err := plain.PushMetrics(ctx, []client.MetricPoint{{Name: "strong_reads", Value: 1, Timestamp: at}}); err != nil {
		t.Fatal(err)
	}
	q := client.MetricsQuery{Name: "strong_reads", From: at.Add(-time.Minute), To: at.Add(time.Minute)}
	count := func(c *client.Client, ctx context.Context) int {
		t.Helper()
		res, err := c.QueryMetrics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Series)
	}
	// A loaded machine can make a lag sample time out, and the server then
	// sends reads to the primary for a moment: only an answer the replica
	// gave alone is judged.
	for judged := false; !judged; {
		replicaBefore, primaryBefore := reads()
		n := count(plain, ctx)
		replicaAfter, primaryAfter := reads()
		if judged = replicaAfter > replicaBefore && primaryAfter == primaryBefore; judged && n != 0 {
			t.Fatalf("a plain read answered by the paused replica found %d series; want none (the write is not replayed)", n)
		}
		if !judged && time.Now().After(deadline.Add(30*time.Second)) {
			t.Fatal("no plain read was answered by the replica alone")
		}
	}
	if n := count(strong, ctx); n != 1 {
		t.Errorf("WithStrongReads found %d series; want the write, from the primary", n)
	}
	if n := count(plain, client.StrongReads(ctx)); n != 1 {
		t.Errorf("StrongReads(ctx) found %d series; want the write, from the primary", n)
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
