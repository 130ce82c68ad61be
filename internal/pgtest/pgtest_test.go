package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

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
