// Package compat drives the xtrace server with third-party clients (the real
// Langfuse and OpenTelemetry JavaScript SDKs from npm). `make test` runs
// `npm ci` here first.
package compat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const (
	publicKey = "pk-lf-compat"
	secretKey = "sk-lf-compat"
)

// startServer builds and runs the real xtrace binary on a fresh database.
func startServer(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real SDKs from npm (make test installs them)")
	}
	bin, err := devproc.Build("./server/cmd/xtrace", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port, err := devproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := devproc.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+pgtest.NewDatabase(t), "API_BEARER_TOKEN=compat-token",
		"XTRACE_PUBLIC_KEY="+publicKey, "XTRACE_SECRET_KEY="+secretKey, "BIND_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"XTRACE_LOG_LEVEL=warn", "XTRACE_RETENTION_INTERVAL=0", "RATE_LIMIT_QPS=1000", "RATE_LIMIT_BURST=1000")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devproc.Stop(cmd) })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := devproc.WaitOK(base+"/readyz", 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	return base
}

// node runs a script of this directory against the server.
func node(t *testing.T, base, script string) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: the compatibility tests need Node.js 20 (apt-get install nodejs npm)")
	}
	if _, err := os.Stat("node_modules/langfuse"); err != nil {
		t.Fatal("node_modules missing: run `npm ci` in hack/compat (make test does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = append(os.Environ(), "XTRACE_URL="+base, "XTRACE_PUBLIC_KEY="+publicKey, "XTRACE_SECRET_KEY="+secretKey,
		"XTRACE_TOKEN=compat-token", "RUN_ID="+strconv.FormatInt(time.Now().UnixNano(), 36))
	out, err := cmd.CombinedOutput()
	t.Logf("%s output:\n%s", script, out)
	if err != nil {
		t.Fatalf("%s failed: %v", script, err)
	}
}

func TestLangfuseSDK(t *testing.T) {
	node(t, startServer(t), "langfuse-sdk.mjs")
}

func TestOpenTelemetryExporters(t *testing.T) {
	node(t, startServer(t), "otel-exporters.mjs")
}

func TestOpenTelemetryMetricsExporters(t *testing.T) {
	node(t, startServer(t), "otel-metrics.mjs")
}
