// Command run-server is what `make run-server` runs: it starts the xtrace
// server for local use. When DATABASE_URL is unset it first starts (or reuses)
// a local PostgreSQL cluster under .data/postgres; when API_BEARER_TOKEN is
// unset it generates one and keeps it in .data/token. Ctrl-C stops both.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

func main() {
	binary := flag.String("server", "bin/xtrace", "path of the xtrace binary")
	dataDir := flag.String("data", ".data", "directory for the local database and token")
	flag.Parse()
	if err := run(*binary, *dataDir); err != nil {
		fmt.Fprintf(os.Stderr, "run-server: %v\n", err)
		os.Exit(1)
	}
}

func run(binary, dataDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	env := os.Environ()
	if os.Getenv("DATABASE_URL") == "" && os.Getenv("PGHOST") == "" {
		pgLog, err := openLog(filepath.Join(dataDir, "postgres.log"))
		if err != nil {
			return err
		}
		defer pgLog.Close()
		cluster, err := pgtest.Start(ctx, pgtest.Options{
			DataDir: filepath.Join(dataDir, "postgres"), Durable: true, Log: pgLog,
		})
		if err != nil {
			return fmt.Errorf("start local PostgreSQL: %w", err)
		}
		defer cluster.Stop()
		env = append(env, "DATABASE_URL="+cluster.URL("postgres"))
		fmt.Printf("PostgreSQL: %s (data in %s, log in %s)\n", cluster.URL("postgres"), cluster.DataDir, pgLog.Name())
	}

	token := strings.Split(os.Getenv("API_BEARER_TOKEN"), ",")[0]
	if token == "" {
		var err error
		if token, err = localToken(filepath.Join(dataDir, "token")); err != nil {
			return err
		}
		env = append(env, "API_BEARER_TOKEN="+token)
	}
	addr := os.Getenv("BIND_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8742"
		env = append(env, "BIND_ADDR="+addr)
	}
	if os.Getenv("XTRACE_LOG_FORMAT") == "" {
		env = append(env, "XTRACE_LOG_FORMAT=text")
	}

	server := exec.Command(binary, "serve")
	server.Env, server.Stdout, server.Stderr = env, os.Stdout, os.Stderr
	// Own process group: Ctrl-C reaches us, and we stop the server before the database.
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := server.Start(); err != nil {
		return fmt.Errorf("start %s: %w", binary, err)
	}
	exited := make(chan error, 1)
	gone := make(chan struct{})
	go func() { exited <- server.Wait(); close(gone) }()

	base := "http://" + addr
	if err := devproc.WaitOK(base+"/readyz", 60*time.Second, gone); err != nil {
		_ = server.Process.Signal(syscall.SIGTERM)
		return err
	}
	fmt.Printf("\nxtrace is serving on %s\n  web UI: %s/ui/ (sign in with the token)\n  token:  %s\n  try:    %s\nCtrl-C stops the server and the local database.\n\n",
		base, base, token, tryLine(base, token))

	select {
	case err := <-exited:
		return fmt.Errorf("server exited: %v", err)
	case <-ctx.Done():
	}
	_ = server.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = server.Process.Kill()
		<-exited
	}
	return nil
}

// tryLine is the curl command printed for the user (and run by the test).
func tryLine(base, token string) string {
	return fmt.Sprintf("curl -s -H 'Authorization: Bearer %s' %s/api/public/metrics/names", token, base)
}

func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// localToken returns the token kept in path, creating it on first use so the
// curl lines printed stay valid across restarts.
func localToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := "xt-dev-" + hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return tok, os.WriteFile(path, []byte(tok+"\n"), 0o600)
}
