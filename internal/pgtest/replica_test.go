package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestReplicaStreamsAndRestarts: a row committed on the primary reaches the
// replica, which is a read-only hot standby; after a crash and a restart the
// replica streams again from where it stopped.
func TestReplicaStreamsAndRestarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := NewReplicated(t)
	primary := connect(t, r.PrimaryURL())
	if _, err := primary.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	r.WaitCaughtUp(t, 30*time.Second)

	replica := connect(t, r.ReplicaURL())
	var inRecovery bool
	var v int
	if err := replica.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT v FROM t)").Scan(&inRecovery, &v); err != nil {
		t.Fatal(err)
	}
	if !inRecovery || v != 1 {
		t.Fatalf("replica: in recovery %v, v = %d; want a standby holding the primary's row", inRecovery, v)
	}
	if _, err := replica.Exec(ctx, "INSERT INTO t VALUES (2)"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write on the replica: %v; want a read-only transaction error", err)
	}

	r.Replica.Crash()
	if _, err := primary.Exec(ctx, "INSERT INTO t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	if err := r.Replica.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	r.WaitCaughtUp(t, 30*time.Second)
	var n int
	if err := queryOnce(ctx, r.ReplicaURL(), "SELECT count(*) FROM t", nil, &n); err != nil || n != 2 {
		t.Fatalf("after restart the replica holds %d rows (err %v); want 2", n, err)
	}
}
