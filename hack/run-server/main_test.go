package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

// TestRunServer runs `make run-server`'s program as a user would: it must start
// a local Postgres and the server, print a curl line that works, and stop both on Ctrl-C.
func TestRunServer(t *testing.T) {
	// Not t.TempDir: the local database runs as an unprivileged user when the tests run as root.
	dir, err := pgtest.ReachableTempDir("run-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "bin")
	xtrace, err := devproc.Build("./server/cmd/xtrace", bin)
	if err != nil {
		t.Fatal(err)
	}
	runServer, err := devproc.Build("./hack/run-server", bin)
	if err != nil {
		t.Fatal(err)
	}
	port, err := devproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(runServer, "-server", xtrace, "-data", filepath.Join(dir, "data"))
	cmd.Env = append(filterEnv("DATABASE_URL", "PGHOST", "API_BEARER_TOKEN", "BIND_ADDR"), "BIND_ADDR="+addr)
	stdout, err := cmd.StdoutPipe()

	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var try, webUI string
	timeout := time.After(2 * time.Minute)
	for try == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("run-server closed its output before printing a curl line")
			}
			if _, after, found := strings.Cut(line, "try:"); found {
				try = strings.TrimSpace(after)
			}
			if _, after, found := strings.Cut(line, "web UI:"); found {
				webUI, _, _ = strings.Cut(strings.TrimSpace(after), " ")
			}
		case <-timeout:
			t.Fatal("no curl line printed within 2 minutes")
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if !strings.HasPrefix(try, "curl ") {
		t.Fatalf("printed line is not a curl command: %q", try)
	}
	out, err := exec.Command("bash", "-c", try+" -o /dev/null -w '%{http_code}'").Output()
	if err != nil {
		t.Fatalf("running %q: %v", try, err)
	}
	if string(out) != "200" {
		t.Fatalf("%q answered HTTP %s, want 200", try, out)
	}

	// The printed UI address serves the UI.
	resp, err := http.Get(webUI)
	if err != nil {
		t.Fatalf("web UI at %q: %v", webUI, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("web UI at %q: %d %s, want the HTML page", webUI, resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Ctrl-C stops the server and the database cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("run-server exited with %v after Ctrl-C", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run-server did not stop within a minute of Ctrl-C")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data", "postgres", "postmaster.pid")); err == nil {
		t.Fatalf("postgres still running after Ctrl-C (postmaster.pid: %q)", b)
	}
}

func filterEnv(drop ...string) []string {
	var out []string
next:
	for _, kv := range os.Environ() {
		for _, d := range drop {
			if strings.HasPrefix(kv, d+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
