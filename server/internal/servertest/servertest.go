// Package servertest runs a real xtrace server (the app package, on a real
// PostgreSQL from pgtest) on a loopback port for HTTP-level tests.
package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/xtrace-dev/xtrace-operator/internal/logging"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/app"
	"github.com/xtrace-dev/xtrace-operator/server/internal/config"
	"github.com/xtrace-dev/xtrace-operator/server/internal/remotewrite"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// Token is the bearer token of test servers.
const Token = "test-token"

// TestRetentionDays is the metrics retention of test servers unless a test
// sets its own: long enough that points at the fixed dates tests use are
// inside the accepted window.
const TestRetentionDays = "36500"

// Options configure Start.
type Options struct {
	// Env adds or overrides configuration variables.
	Env map[string]string
	// DatabaseURL to use; empty creates a fresh migrated database.
	DatabaseURL string
	// Now replaces the server's clock.
	Now func() time.Time
	// ShutdownDelay as in app.Options; zero means none (tests stop fast).
	ShutdownDelay time.Duration
	// RetentionFirstPass as in app.Options.
	RetentionFirstPass time.Duration
	// MaxQueuedItems as in app.Options.
	MaxQueuedItems int
	// ReadTimeout as in app.Options.
	ReadTimeout time.Duration
	// NoWait returns without waiting for /readyz (e.g. the database is down on purpose).
	NoWait bool
	// ReplicaSampleInterval as in app.Options.
	ReplicaSampleInterval time.Duration
	// Log, when set, receives the server's JSON log lines at XTRACE_LOG_LEVEL
	// (set it in Env; tests log at warn) instead of the test log.
	Log io.Writer
}

// Server is a running test server.
type Server struct {
	URL         string
	DatabaseURL string
	stop        func() error
}

// MigratedDatabase returns a fresh database with the schema applied (copied from a template).
func MigratedDatabase(t testing.TB) string {
	t.Helper()
	return pgtest.NewDatabaseFrom(t, "migrated", func(ctx context.Context, url string) error {
		st, err := store.Open(ctx, store.Options{URL: url, MaxConns: 2})
		if err != nil {
			return err
		}
		defer st.Close()
		_, err = st.Migrate(ctx)
		return err
	})
}

// Start runs a server until the test ends and waits until it is ready.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dbURL := opts.DatabaseURL
	if dbURL == "" {
		dbURL = MigratedDatabase(t)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "API_BEARER_TOKEN": Token, "XTRACE_LOG_LEVEL": "warn", "XTRACE_RETENTION_INTERVAL": "0",
		// Tests that are about rate limiting set their own limits.
		"RATE_LIMIT_QPS": "1000000", "RATE_LIMIT_BURST": "1000000",
		// Tests push fixed dates; those about the accepted window set their own retention.
		"METRICS_RETENTION_DAYS": TestRetentionDays,
		// Compaction runs when a test asks for it (store.Compact), so answers do not depend on timing.
		"XTRACE_COMPACTION_INTERVAL": "0"}
	for k, v := range opts.Env {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, config.ModeServe)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if opts.Log != nil {
		log = logging.New(opts.Log, "json", cfg.LogLevel)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.New(ctx, cfg, log, app.Options{Now: opts.Now, ShutdownDelay: shutdownDelay(opts.ShutdownDelay), MaxQueuedItems: opts.MaxQueuedItems,
		RetentionFirstPass: opts.RetentionFirstPass, ReadTimeout: opts.ReadTimeout, ReplicaSampleInterval: opts.ReplicaSampleInterval})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	s := &Server{URL: "http://" + ln.Addr().String(), DatabaseURL: dbURL}
	var once bool
	s.stop = func() error {
		if once {
			return nil
		}
		once = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = s.stop() })
	if !opts.NoWait {
		s.WaitReady(t, 30*time.Second)
	}
	return s
}

func shutdownDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// Stop shuts the server down as SIGTERM would and returns Serve's result.
func (s *Server) Stop() error { return s.stop() }

// WaitReady polls /readyz until it answers 200.
func (s *Server) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server at %s not ready after %s", s.URL, timeout)
}

// Response is a decoded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request with the test token (unless headers set Authorization).
func (s *Server) Do(t testing.TB, method, path string, body any, headers ...string) *Response {
	t.Helper()
	resp, err := s.Try(method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// Try is Do without failing the test on transport errors.
func (s *Server) Try(method, path string, body any, headers ...string) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// RemoteWrite sends series as a Prometheus server does (remote-write 1.0,
// snappy-compressed protobuf) and returns the answer.
func (s *Server) RemoteWrite(t testing.TB, series ...prompb.TimeSeries) *Response {
	t.Helper()
	body, err := remotewrite.Encode(&prompb.WriteRequest{Timeseries: series})
	if err != nil {
		t.Fatal(err)
	}
	return s.Do(t, "POST", "/api/v1/write", body, "Content-Type", remotewrite.ContentTypeV1,
		"Content-Encoding", "snappy", "X-Prometheus-Remote-Write-Version", "0.1.0")
}

// Series builds a remote-write series from alternating label names and
// values (the first pair is usually __name__) and its samples.
func Series(lbls []string, samples ...prompb.Sample) prompb.TimeSeries {
	ts := prompb.TimeSeries{Samples: samples}
	for i := 0; i+1 < len(lbls); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: lbls[i], Value: lbls[i+1]})
	}
	return ts
}
