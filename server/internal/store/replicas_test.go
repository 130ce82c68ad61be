package store

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

func TestReplicaLag(t *testing.T) {
	age := func(s float64) *float64 { return &s }
	cases := []struct {
		name         string
		s            replicaSample
		primary      uint64
		primaryKnown bool
		lag          time.Duration
		known        bool
	}{
		{"replayed the primary's position: current however old its last commit",
			replicaSample{inRecovery: true, replayLSN: 500, receiveLSN: 500, replayAge: age(3600)}, 500, true, 0, true},
		{"replayed beyond the sampled position", replicaSample{inRecovery: true, replayLSN: 520, receiveLSN: 520, replayAge: age(1)}, 500, true, 0, true},
		{"behind the primary: the age of its last replayed commit",
			replicaSample{inRecovery: true, replayLSN: 400, receiveLSN: 500, replayAge: age(2.5)}, 500, true, 2500 * time.Millisecond, true},
		{"behind although it replayed all it received (disconnected from a live primary)",
			replicaSample{inRecovery: true, replayLSN: 400, receiveLSN: 400, replayAge: age(30)}, 500, true, 30 * time.Second, true},
		{"behind, nothing replayed since it started: unknown",
			replicaSample{inRecovery: true, replayLSN: 400, receiveLSN: 500}, 500, true, 0, false},
		{"primary unreachable, replayed all it received: as current as it can be",
			replicaSample{inRecovery: true, replayLSN: 400, receiveLSN: 400, replayAge: age(30)}, 0, false, 0, true},
		{"primary unreachable, WAL received but not replayed (replay paused)",
			replicaSample{inRecovery: true, replayLSN: 400, receiveLSN: 450, replayAge: age(7)}, 0, false, 7 * time.Second, true},
		{"clock skew: a negative age is no lag", replicaSample{inRecovery: true, replayLSN: 1, receiveLSN: 2, replayAge: age(-0.2)}, 2, true, 0, true},
		{"not in recovery (promoted, or a primary given as a replica)", replicaSample{}, 500, true, 0, true},
	}
	for _, tc := range cases {
		lag, known := replicaLag(tc.s, tc.primary, tc.primaryKnown)
		if lag != tc.lag || known != tc.known {
			t.Errorf("%s: lag %s known %v; want %s %v", tc.name, lag, known, tc.lag, tc.known)
		}
	}
}

func TestParseLSN(t *testing.T) {
	for in, want := range map[string]uint64{"0/0": 0, "16/B374D848": 0x16_B374D848, "FFFFFFFF/FFFFFFFF": 1<<64 - 1} {
		if got, err := parseLSN(in); err != nil || got != want {
			t.Errorf("parseLSN(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "16", "x/1", "1/100000000"} {
		if _, err := parseLSN(bad); err == nil {
			t.Errorf("parseLSN(%q) accepted", bad)
		}
	}
}

func TestSplitReadHost(t *testing.T) {
	for in, want := range map[string]struct {
		host string
		port uint16
	}{"pg-ro": {"pg-ro", 0}, "pg-ro:6432": {"pg-ro", 6432}, "[fd00::1]:5433": {"fd00::1", 5433}, "fd00::1": {"fd00::1", 0}, "[fd00::1]": {"fd00::1", 0}} {
		if h, p := splitReadHost(in); h != want.host || p != want.port {
			t.Errorf("splitReadHost(%q) = %q %d; want %q %d", in, h, p, want.host, want.port)
		}
	}
}

// TestReplicaHostsTakeThePrimarysSettings: DATABASE_READ_HOST keeps the
// primary's user, password, database and TLS settings, with the replica's
// host (and the TLS name checked against it).
func TestReplicaHostsTakeThePrimarysSettings(t *testing.T) {
	primary, err := pgxpool.ParseConfig("postgres://app:secret@pg-rw:5433,pg-rw-2:5433/appdb?sslmode=require&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := replicaConfigs(primary, nil, []string{"pg-ro", "10.0.0.9:6432"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		host string
		port uint16
	}{{"pg-ro", 5433}, {"10.0.0.9", 6432}} {
		c := cfgs[i].ConnConfig
		if c.Host != want.host || c.Port != want.port || c.User != "app" || c.Password != "secret" || c.Database != "appdb" || len(c.Fallbacks) != 0 {
			t.Errorf("replica %d: %s:%d user %q db %q fallbacks %d; want %s:%d with the primary's settings",
				i, c.Host, c.Port, c.User, c.Database, len(c.Fallbacks), want.host, want.port)
		}
		if c.TLSConfig == nil || c.TLSConfig.ServerName != want.host {
			t.Errorf("replica %d: TLS %v; want TLS checked against %s", i, c.TLSConfig, want.host)
		}
	}
	if primary.ConnConfig.Host != "pg-rw" || primary.ConnConfig.TLSConfig.ServerName != "pg-rw" {
		t.Errorf("the primary's settings changed: %s, TLS name %s", primary.ConnConfig.Host, primary.ConnConfig.TLSConfig.ServerName)
	}
	if _, err := replicaConfigs(primary, []string{"postgres://u:hunter2@r1/db", "postgres://u:hunter2@:x/db"}, nil); err == nil {
		t.Error("an unparsable DATABASE_READ_URL entry was accepted")
	} else if msg := err.Error(); !strings.Contains(msg, "DATABASE_READ_URL") || !strings.Contains(msg, "entry 2") || strings.Contains(msg, "hunter2") {
		t.Errorf("error %q: want the variable and entry named, no password", msg)
	}
}

// TestBufferedRowsReadLikePgxRows: a result read whole (as replica reads
// are) scans, collects and errs exactly as pgx's own rows do.
func TestBufferedRowsReadLikePgxRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, pgtest.NewDatabase(t))
	const q = `SELECT i, CASE WHEN i = 2 THEN NULL ELSE 'v' || i END AS s, '' AS empty, '{"a":1}'::jsonb AS doc,
		ARRAY[i, i+1] AS arr, '2026-02-14T10:00:00.123456Z'::timestamptz AS at FROM generate_series(1, $1::int) AS i`
	type row struct {
		I     int32
		S     *string
		Empty string
		Doc   map[string]any
		Arr   []int64
		At    time.Time
	}
	collect := func(rows pgx.Rows, err error) ([]row, error) {
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowToStructByName[row])
	}
	direct, err := collect(s.pool.Query(ctx, q, 3))
	if err != nil {
		t.Fatal(err)
	}
	buffered, err := collect(queryBuffered(ctx, s.pool, q, []any{3}))
	if err != nil {
		t.Fatal(err)
	}
	if len(direct) != 3 || len(buffered) != 3 {
		t.Fatalf("rows: direct %d, buffered %d; want 3", len(direct), len(buffered))
	}
	for i := range direct {
		d, b := direct[i], buffered[i]
		if d.I != b.I || (d.S == nil) != (b.S == nil) || d.S != nil && *d.S != *b.S || d.Empty != b.Empty ||
			d.Doc["a"] != b.Doc["a"] || !slices.Equal(d.Arr, b.Arr) || !d.At.Equal(b.At) {
			t.Errorf("row %d: direct %+v, buffered %+v", i, d, b)
		}
	}

	rows, err := queryBuffered(ctx, s.pool, q, []any{2})
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	vals, err := rows.Values()
	if err != nil || len(vals) != 6 || vals[0] != int32(1) || vals[1] != "v1" || vals[2] != "" {
		t.Errorf("Values() = %#v, %v", vals, err)
	}
	rows.Next()
	if vals, _ := rows.Values(); vals[1] != nil {
		t.Errorf("NULL read as %#v", vals[1])
	}
	if rows.Next() || rows.Err() != nil || rows.CommandTag().RowsAffected() != 2 {
		t.Errorf("after the last row: next, err %v, tag %q", rows.Err(), rows.CommandTag())
	}
	if st := s.pool.Stat(); st.AcquiredConns() != 0 {
		t.Errorf("%d connections still acquired after the rows closed", st.AcquiredConns())
	}

	var n int
	if err := (bufferedRow{rows: mustBuffered(t, s.pool, "SELECT 1 WHERE false")}).Scan(&n); !errors.Is(err, pgx.ErrNoRows) {
		t.Errorf("QueryRow with no row: %v; want pgx.ErrNoRows", err)
	}
	_, err = queryBuffered(ctx, s.pool, "SELECT 1/0", nil)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Errorf("a failing statement: %v; want division_by_zero", err)
	}
	if rows := mustBuffered(t, s.pool, "SELECT 'x'::text"); rows.Next() {
		var i int
		if err := rows.Scan(&i); err == nil || rows.Err() == nil {
			t.Errorf("scanning text into int: %v; want an error kept by Err", err)
		}
	}
	if st := s.pool.Stat(); st.AcquiredConns() != 0 {
		t.Errorf("%d connections still acquired", st.AcquiredConns())
	}
}

func mustBuffered(t *testing.T, pool *pgxpool.Pool, sql string) pgx.Rows {
	t.Helper()
	rows, err := queryBuffered(context.Background(), pool, sql, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestAnUnreachablePrimaryDoesNotMarkReplicasDown: a primary that accepts
// connections and never answers (behind a black hole) costs its own sample's
// timeout, not the replicas' — they keep serving reads.
func TestAnUnreachablePrimaryDoesNotMarkReplicasDown(t *testing.T) {
	t.Parallel()
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		for {
			conn, err := hole.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // held open, never answered
		}
	}()
	replicaURL := pgtest.NewDatabase(t) // a server not in recovery: a replica with nothing to replay
	s, err := Open(context.Background(), Options{URL: "postgres://xtrace@" + hole.Addr().String() + "/db?sslmode=disable",
		ReplicaURLs: []string{replicaURL}, LagSampleInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.PoolStats()[1]
		if st.State == "down" {
			t.Fatal("the replica was marked down while the primary did not answer")
		}
		if st.State == "serving" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica state %q after 10 s; want serving", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !s.ReplicaServing() {
		t.Error("ReplicaServing() = false with a serving replica")
	}
}

// TestPick: reads go round-robin among serving replicas, stay on one replica
// per request while it serves, avoid the one that just failed, and go to the
// primary when none serves or the request asks for the primary.
func TestPick(t *testing.T) {
	a, b, c := &replica{name: "a", state: replicaServing}, &replica{name: "b", state: replicaServing}, &replica{name: "c", state: replicaLagging}
	rs := &replicaSet{replicas: []*replica{a, b, c}}
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		seen[rs.pick(nil, nil).name]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("requests without a route went %v; want a and b alike, never the lagging c", seen)
	}
	route := NewReadRoute(ReadAnywhere)
	first := rs.pick(route, nil)
	for i := 0; i < 5; i++ {
		if got := rs.pick(route, nil); got != first {
			t.Fatalf("read %d of one request went to %s after %s", i, got.name, first.name)
		}
	}
	if got := rs.pick(route, first); got == first || got == nil {
		t.Errorf("after %s failed the read went to %v; want the other serving replica", first.name, got)
	}
	first.state = replicaDown
	if got := rs.pick(NewReadRoute(ReadAnywhere), nil); got == first {
		t.Error("a down replica was picked")
	}
	route.RequirePrimary()
	if got := rs.pick(route, nil); got != nil {
		t.Errorf("a request requiring the primary went to %s", got.name)
	}
	a.state, b.state = replicaLagging, replicaDown
	if got := rs.pick(NewReadRoute(ReadAnywhere), nil); got != nil {
		t.Errorf("with no replica serving the read went to %s; want the primary", got.name)
	}
}

// TestReplicaHostsWithTheLibpqEnvironment: the operator's host form gives the
// primary as PG* variables and the replicas as DATABASE_READ_HOST.
func TestReplicaHostsWithTheLibpqEnvironment(t *testing.T) {
	for k, v := range map[string]string{"PGHOST": "pg-rw", "PGPORT": "5433", "PGUSER": "app", "PGPASSWORD": "secret", "PGDATABASE": "appdb", "PGSSLMODE": "disable"} {
		t.Setenv(k, v)
	}
	primary, err := pgxpool.ParseConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := replicaConfigs(primary, nil, []string{"pg-ro"})
	if err != nil {
		t.Fatal(err)
	}
	c := cfgs[0].ConnConfig
	if c.Host != "pg-ro" || c.Port != 5433 || c.User != "app" || c.Password != "secret" || c.Database != "appdb" || c.TLSConfig != nil {
		t.Errorf("replica %s:%d user %q db %q TLS %v; want pg-ro with the primary's environment", c.Host, c.Port, c.User, c.Database, c.TLSConfig)
	}
}
