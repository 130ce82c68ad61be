package client_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

// serverURL and token address a real xtrace server (the binary, on a
// throwaway PostgreSQL) that the integration tests and the examples use.
var (
	serverURL string
	token     = "example-token"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(&mainWrapper{m}))
}

// mainWrapper starts the server before the tests and stops it after.
type mainWrapper struct{ m *testing.M }

func (w *mainWrapper) Run() int {
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		return 1
	}
	defer stop()
	return w.m.Run()
}

func startServer() (func(), error) {
	dir, err := os.MkdirTemp("", "xtrace-client-test-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "xtrace")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/xtrace").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build xtrace: %v\n%s", err, out)
	}
	dbURL, dropDB, err := pgtest.CreateDatabase()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "API_BEARER_TOKEN="+token, "BIND_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"XTRACE_LOG_LEVEL=error", "XTRACE_RETENTION_INTERVAL=0")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); dropDB(); os.RemoveAll(dir) }
	serverURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(serverURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("xtrace not ready after 30s")
}
