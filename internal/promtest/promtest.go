// Package promtest runs a private reference Prometheus server for tests, the
// way pgtest runs PostgreSQL: from a binary built at the version of the
// github.com/prometheus/prometheus module xtrace evaluates PromQL with
// (hack/build-prometheus.sh, `make prometheus`), on 127.0.0.1, with its data
// in the test's temporary directory, stopped when the test ends.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
)

// moduleVersion reads the version of github.com/prometheus/prometheus from
// go.mod under root; the reference binary is built from it.
func moduleVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/prometheus/prometheus" {
			return f[1], nil
		}
	}
	return "", errors.New("go.mod does not require github.com/prometheus/prometheus")
}

// EnvBinary names a prometheus binary to use instead of the built one.
const EnvBinary = "XTRACE_TEST_PROMETHEUS"

// Binary returns the reference prometheus binary, or an error saying how to build it.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	root, err := devproc.ModuleRoot()
	if err != nil {
		return "", err
	}
	version, err := moduleVersion(root)
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "prometheus", version, "prometheus")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("reference Prometheus not found at %s: run `make prometheus` (hack/build-prometheus.sh builds it from source) or set %s", p, EnvBinary)
	}
	return p, nil
}

// Server is a running Prometheus.
type Server struct {
	URL string
	log *devproc.Tail
}

// Start runs Prometheus with the given configuration file contents until
// the test ends and waits until it is ready.
func Start(t testing.TB, config string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := devproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := devproc.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--log.level=warn")
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), log: &devproc.Tail{Max: 8192}}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { devproc.StopWithin(cmd, os.Interrupt, exited, 10*time.Second) })
	if err := devproc.WaitOK(s.URL+"/-/ready", 60*time.Second, exited); err != nil {
		t.Fatalf("prometheus: %v\n%s", err, s.log)
	}
	return s
}

// Log is the end of Prometheus' output, for failure messages.
func (s *Server) Log() string { return strings.TrimSpace(s.log.String()) }

// API calls an endpoint of Prometheus' HTTP API and returns the "data" of a success.
func (s *Server) API(ctx context.Context, path string, params url.Values) (json.RawMessage, error) {
	return Get(ctx, s.URL, "", path, params)
}

// Get calls a Prometheus-style API at base (with an Authorization header
// when auth is set) and returns the "data" of a success.
func Get(ctx context.Context, base, auth, path string, params url.Values) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%s %s: %d, not JSON: %.200s", base, path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return nil, fmt.Errorf("%s %s %v: %d %s", base, path, params, resp.StatusCode, env.Error)
	}
	return env.Data, nil
}
