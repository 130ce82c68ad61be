package servertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

var built struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the xtrace binary once per test binary and returns its path;
// it is removed when pgtest.Run ends.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "xtrace-bin-")
		if err != nil {
			built.err = err
			return
		}
		pgtest.AfterAll(func() { os.RemoveAll(dir) })
		built.path, built.err = devproc.Build("./server/cmd/xtrace", dir)
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// Process is the real xtrace binary serving on a loopback port.
type Process struct {
	Server
	Pid int
	cmd *exec.Cmd
}

// Kill ends the process with SIGKILL, as a node failure or the OOM killer
// would: no drain, no cleanup. It returns once the process has exited.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// StartProcess runs the xtrace binary (as a pod would) on a fresh migrated
// database unless opts.DatabaseURL is set, with opts.Env added, until the
// test ends; it waits until the server is ready.
func StartProcess(t testing.TB, opts Options) *Process {
	t.Helper()
	dbURL := opts.DatabaseURL
	if dbURL == "" {
		dbURL = MigratedDatabase(t)
	}
	port, err := devproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := devproc.Command(Binary(t), "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "API_BEARER_TOKEN="+Token, "BIND_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"XTRACE_LOG_LEVEL=warn", "XTRACE_RETENTION_INTERVAL=0", "RATE_LIMIT_QPS=1000000", "RATE_LIMIT_BURST=1000000",
		"METRICS_RETENTION_DAYS="+TestRetentionDays, "XTRACE_COMPACTION_INTERVAL=0")
	for k, v := range opts.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = testWriter{t}
	if opts.Log != nil {
		cmd.Stderr = opts.Log
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devproc.Stop(cmd) })
	p := &Process{Server: Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), DatabaseURL: dbURL}, Pid: cmd.Process.Pid, cmd: cmd}
	p.stop = func() error { devproc.Stop(cmd); return nil }
	if !opts.NoWait {
		p.WaitReady(t, 30*time.Second)
	}
	return p
}

// PeakRSS returns the process's peak resident memory (VmHWM) in bytes.
func (p *Process) PeakRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", p.Pid)
	return 0
}
