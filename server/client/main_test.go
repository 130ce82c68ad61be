package client_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

// serverURL and token address a real xtrace server (the binary, on a
// throwaway PostgreSQL) that the integration tests and the examples use.
var (
	serverURL string
	token     = "example-token"
	serverBin string // the xtrace binary, for tests that run servers of their own
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
	bin, err := devproc.Build("./server/cmd/xtrace", dir)
	if err != nil {
		return nil, err
	}
	serverBin = bin
	dbURL, dropDB, err := pgtest.CreateDatabase()
	if err != nil {
		return nil, err
	}
	port, err := devproc.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := devproc.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "API_BEARER_TOKEN="+token, "BIND_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"XTRACE_LOG_LEVEL=error", "XTRACE_RETENTION_INTERVAL=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { devproc.Stop(cmd); dropDB(); os.RemoveAll(dir) }
	serverURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := devproc.WaitOK(serverURL+"/readyz", 30*time.Second, nil); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}
