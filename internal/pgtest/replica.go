package pgtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReplicatedDB is the database NewReplicated creates on its primary.
const ReplicatedDB = "xtrace"

// Replicated is a private primary with a streaming hot standby, for tests
// that crash, restart or pause either of them.
type Replicated struct {
	Primary, Replica *Cluster
}

// NewReplicated starts a private primary and a streaming replica of it, with
// an empty database ReplicatedDB on both, and stops them when the test ends.
// It ignores XTRACE_TEST_DATABASE_URL: replication needs servers of its own.
func NewReplicated(t testing.TB) *Replicated {
	t.Helper()
	if os.Getenv(EnvURL) != "" {
		t.Log("ignoring " + EnvURL + ": this test runs its own primary and replica")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("pgtest: start primary: %v", err)
	}
	t.Cleanup(primary.Stop)
	if err := primary.CreateDatabase(ctx, ReplicatedDB); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	replica, err := primary.StartReplica(ctx, Options{})
	if err != nil {
		t.Fatalf("pgtest: start replica: %v", err)
	}
	t.Cleanup(replica.Stop) // runs first: a replica stops before its primary
	return &Replicated{Primary: primary, Replica: replica}
}

// PrimaryURL is the URL of ReplicatedDB on the primary.
func (r *Replicated) PrimaryURL() string { return r.Primary.URL(ReplicatedDB) }

// ReplicaURL is the URL of ReplicatedDB on the replica.
func (r *Replicated) ReplicaURL() string { return r.Replica.URL(ReplicatedDB) }

// WaitCaughtUp waits until the replica has replayed everything the primary
// had written when it was called.
func (r *Replicated) WaitCaughtUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := r.Replica.WaitReplayed(ctx, r.Primary); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// WaitReplayed waits until c, a replica of primary, has replayed everything
// primary had written when it was called.
func (c *Cluster) WaitReplayed(ctx context.Context, primary *Cluster) error {
	var lsn string
	if err := queryOnce(ctx, primary.URL("postgres"), "SELECT pg_current_wal_lsn()::text", nil, &lsn); err != nil {
		return fmt.Errorf("primary WAL position: %w", err)
	}
	for {
		var done bool
		err := queryOnce(ctx, c.URL("postgres"), "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", []any{lsn}, &done)
		if err == nil && done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica on port %d did not replay up to %s (last error: %v)", c.Port, lsn, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func queryOnce(ctx context.Context, url, sql string, args []any, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// DelayReplay makes c, a replica, apply each transaction d after the
// primary committed it (recovery_min_apply_delay; 0 turns it off): a replica
// that lags on purpose, for measurements.
func (c *Cluster) DelayReplay(ctx context.Context, d time.Duration) error {
	if err := execSQL(ctx, c.URL("postgres"), fmt.Sprintf("ALTER SYSTEM SET recovery_min_apply_delay = '%dms'", d.Milliseconds())); err != nil {
		return err
	}
	return execSQL(ctx, c.URL("postgres"), "SELECT pg_reload_conf()")
}
