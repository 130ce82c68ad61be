package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share a URL: %s", a)
	}
	connA := connect(t, a)
	if _, err := connA.Exec(ctx, "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := connA.QueryRow(ctx, "SELECT x FROM only_in_a").Scan(&x); err != nil || x != 42 {
		t.Fatalf("read back in a: x=%d err=%v", x, err)
	}
	connB := connect(t, b)
	var exists bool
	if err := connB.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("table created in database a is visible in database b")
	}
}

func TestTemplatePreparedOnce(t *testing.T) {
	t.Parallel()
	calls := 0
	prepare := func(ctx context.Context, url string) error {
		calls++
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE seeded (v text); INSERT INTO seeded VALUES ('from-template')")
		return err
	}
	for i := 0; i < 2; i++ {
		conn := connect(t, NewDatabaseFrom(t, "seeded", prepare))
		var v string
		if err := conn.QueryRow(context.Background(), "SELECT v FROM seeded").Scan(&v); err != nil || v != "from-template" {
			t.Fatalf("database %d: v=%q err=%v", i, v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("template prepared %d times, want 1", calls)
	}
}

func TestServerRunsUnprivileged(t *testing.T) {
	if os.Getenv(EnvURL) != "" {
		t.Skip("using an existing server: its user is not ours to check")
	}
	conn := connect(t, NewDatabase(t))
	var superuser string
	if err := conn.QueryRow(context.Background(), "SELECT current_user").Scan(&superuser); err != nil {
		t.Fatal(err)
	}
	if superuser != Superuser {
		t.Fatalf("current_user = %q, want %q", superuser, Superuser)
	}
	// The postmaster must not be root even when the tests are.
	var pid int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ps", "-o", "user=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	if owner := strings.TrimSpace(string(out)); owner == "root" || owner == "" {
		t.Fatalf("backend %d runs as %q; PostgreSQL must run unprivileged", pid, owner)
	}
}

func TestFindBinDirNamesTheFix(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinDir(t.TempDir() + "/*/bin")
	if err == nil {
		t.Fatal("found PostgreSQL binaries with an empty PATH and search directory")
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("error %q does not say how to install PostgreSQL", err)
	}
}

func TestWithDatabase(t *testing.T) {
	cases := map[string]string{
		"postgres://u@h:5/old?sslmode=disable": "postgres://u@h:5/new?sslmode=disable",
		"host=h user=u dbname=old":             "host=h user=u dbname=new",
		"host=h user=u":                        "host=h user=u dbname=new",
	}
	for in, want := range cases {
		if got := withDatabase(in, "new"); got != want {
			t.Errorf("withDatabase(%q) = %q, want %q", in, got, want)
		}
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestSettleWritesACheckpoint: after writes, Settle leaves a newer
// checkpoint behind and no autovacuum worker running.
func TestSettleWritesACheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	conn := connect(t, c.URL("postgres"))
	checkpoint := func() (lsn string) {
		t.Helper()
		if err := conn.QueryRow(ctx, "SELECT checkpoint_lsn::text FROM pg_control_checkpoint()").Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		return lsn
	}
	before := checkpoint()
	if _, err := conn.Exec(ctx, "CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Settle(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	var newer bool
	if err := conn.QueryRow(ctx, "SELECT checkpoint_lsn > $1::pg_lsn FROM pg_control_checkpoint()", before).Scan(&newer); err != nil || !newer {
		t.Fatalf("checkpoint after Settle: newer than %s = %v (err %v); want a new checkpoint", before, newer, err)
	}
	var workers int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'").Scan(&workers); err != nil {
		t.Fatal(err)
	}
	if workers > 0 {
		t.Logf("%d autovacuum workers started after Settle returned", workers) // possible: autovacuum is not paused
	}
}
