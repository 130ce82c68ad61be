package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names an existing server to use instead of starting one. Its user
// must be allowed to CREATE DATABASE.
const EnvURL = "XTRACE_TEST_DATABASE_URL"

var (
	sharedMu      sync.Mutex
	shared        *Cluster
	sharedErr     error
	adminURL      string // database URL used for CREATE/DROP DATABASE
	templates     = map[string]*templateOnce{}
	dbCounter     atomic.Int64
	runIdentifier = fmt.Sprintf("t%d_%d", os.Getpid(), time.Now().Unix()%100000)
	afterAll      []func() // see AfterAll
)

// templateOnce prepares one template database once per test binary.
type templateOnce struct {
	sync.Once
	err error
}

// Run is for TestMain: it runs the tests, then the functions given to
// AfterAll, then stops the shared cluster.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
func Run(m interface{ Run() int }) int {
	code := m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for i := len(afterAll) - 1; i >= 0; i-- {
		afterAll[i]()
	}
	afterAll = nil
	if shared == nil && adminURL != "" {
		// An existing server: leave no template databases behind.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for name := range templates {
			_ = execSQL(ctx, adminURL, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize()))
		}
	}
	if shared != nil {
		shared.Stop()
		shared = nil
	}
	return code
}

// AfterAll registers f to run once the tests of a binary run by Run have
// finished: cleanup of what tests share (t.Cleanup ends with one test).
func AfterAll(f func()) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	afterAll = append(afterAll, f)
}

// server returns the admin URL of the shared server, starting it on first use.
func server() (string, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if adminURL != "" || sharedErr != nil {
		return adminURL, sharedErr
	}
	if u := os.Getenv(EnvURL); u != "" {
		adminURL = u
		return adminURL, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shared, sharedErr = Start(ctx, Options{})
	if sharedErr != nil {
		return "", sharedErr
	}
	adminURL = shared.URL("postgres")
	return adminURL, nil
}

// NewDatabase creates an empty database for this test and drops it when the test ends.
// It fails the test (never skips) when no PostgreSQL is available.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "template0")
}

// NewDatabaseFrom is NewDatabase, copied from a template database that prepare
// fills once per test binary (e.g. with the schema migrations), which is much
// faster than preparing every database.
func NewDatabaseFrom(t testing.TB, template string, prepare func(ctx context.Context, url string) error) string {
	t.Helper()
	tmpl := "xtrace_tmpl_" + runIdentifier + "_" + template
	sharedMu.Lock()
	once := templates[tmpl]
	if once == nil {
		once = &templateOnce{}
		templates[tmpl] = once
	}
	sharedMu.Unlock()
	once.Do(func() { once.err = createTemplate(t, tmpl, prepare) })
	if once.err != nil {
		t.Fatalf("pgtest: prepare template %s: %v", template, once.err)
	}
	return newDatabase(t, tmpl)
}

var createMu sync.Mutex // CREATE DATABASE copies a template; one at a time avoids "being accessed by other users"

func createTemplate(t testing.TB, name string, prepare func(context.Context, string) error) error {
	admin := mustServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	createMu.Lock()
	defer createMu.Unlock()
	if err := execSQL(ctx, admin, fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0", pgx.Identifier{name}.Sanitize())); err != nil {
		return err
	}
	return prepare(ctx, withDatabase(admin, name))
}

func newDatabase(t testing.TB, template string) string {
	t.Helper()
	admin := mustServer(t)
	name := fmt.Sprintf("xtrace_%s_%d", runIdentifier, dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createMu.Lock()
	err := execSQL(ctx, admin, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	createMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := execSQL(ctx, admin, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// CreateDatabase makes an empty database outside any one test (e.g. in
// TestMain, for a server the whole package shares); drop removes it.
func CreateDatabase() (url string, drop func(), err error) {
	admin, err := server()
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("xtrace_%s_%d", runIdentifier, dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createMu.Lock()
	err = execSQL(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0")
	createMu.Unlock()
	if err != nil {
		return "", nil, err
	}
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = execSQL(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return withDatabase(admin, name), drop, nil
}

func mustServer(t testing.TB) string {
	t.Helper()
	u, err := server()
	if err != nil {
		t.Fatalf("pgtest: no PostgreSQL for the tests: %v", err)
	}
	return u
}

func execSQL(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns connURL with its database replaced by name.
func withDatabase(connURL, name string) string {
	if u, err := url.Parse(connURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	// keyword/value form: replace or append dbname
	fields := strings.Fields(connURL)
	out := fields[:0]
	for _, f := range fields {
		if !strings.HasPrefix(f, "dbname=") {
			out = append(out, f)
		}
	}
	return strings.Join(append(out, "dbname="+name), " ")
}
