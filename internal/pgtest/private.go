package pgtest

import (
	"context"
	"os"
	"testing"
)

// Private is a PostgreSQL cluster of one test's own, which the test may crash,
// stop and start again on the same data and port. It is stopped and removed
// when the test ends.
type Private struct {
	*Cluster
	opts Options
	t    testing.TB
}

// StartPrivate starts a private cluster (XTRACE_TEST_DATABASE_URL does not
// apply: the test needs a server it may crash).
func StartPrivate(t testing.TB) *Private {
	t.Helper()
	if os.Getenv(EnvURL) != "" {
		t.Log("ignoring " + EnvURL + ": this test must crash its own server")
	}
	dir, err := ReachableTempDir("xtrace-private-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Private{opts: Options{DataDir: dir + "/data"}, t: t}
	p.Cluster, err = Start(context.Background(), p.opts)
	if err != nil {
		t.Fatal(err)
	}
	p.opts.Port = p.Cluster.Port
	t.Cleanup(func() { p.Cluster.Stop() })
	return p
}

// Restart starts the cluster again on its data and port (after Crash or Stop),
// running crash recovery when needed.
func (p *Private) Restart() {
	p.t.Helper()
	p.Cluster.Stop() // after Crash: its socket directory is still there
	c, err := Start(context.Background(), p.opts)
	if err != nil {
		p.t.Fatal(err)
	}
	p.Cluster = c
}
