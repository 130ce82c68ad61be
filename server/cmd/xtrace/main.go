// Command xtrace is the xtrace server: trace and metrics ingest and query on PostgreSQL.
//
//	xtrace [serve]   run the HTTP server (default)
//	xtrace migrate   apply the database migrations and exit
//	xtrace retention run one retention pass and exit
//	xtrace compact   compact the closed windows of raw metric points and exit
//	xtrace version   print the version
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/logging"
	"github.com/xtrace-dev/xtrace-operator/server/internal/app"
	"github.com/xtrace-dev/xtrace-operator/server/internal/compaction"
	"github.com/xtrace-dev/xtrace-operator/server/internal/config"
	"github.com/xtrace-dev/xtrace-operator/server/internal/memlimit"
	"github.com/xtrace-dev/xtrace-operator/server/internal/retention"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/version"
)

const usage = `usage: xtrace [command]

commands:
  serve      run the HTTP server (default)
  migrate    apply the database schema migrations and exit
  retention  run one retention pass (what the operator's CronJob runs) and exit
  compact    compact every closed window of raw metric points now, and exit
  version    print the version
`

func main() {
	cmd := "serve"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch cmd {
	case "serve":
		err = serve(ctx)
	case "migrate":
		err = migrate(ctx)
	case "retention":
		err = retentionPass(ctx)
	case "compact":
		err = compactPass(ctx)
	case "version", "--version":
		fmt.Println(version.Version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "xtrace: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "xtrace %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	return logging.New(w, cfg.LogFormat, cfg.LogLevel)
}

func serve(ctx context.Context) error {
	cfg, err := config.Load(os.Getenv, config.ModeServe)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	limit, source := memlimit.Apply(os.Getenv, memlimit.CgroupRoot)
	gcPercent, gcSource := memlimit.ApplyGCPercent(os.Getenv)
	log.Info("runtime memory limit", "soft_limit_bytes", limit, "source", source, "gc_percent", gcPercent, "gc_percent_source", gcSource,
		"gomaxprocs", runtime.GOMAXPROCS(0))
	srv, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	return srv.Serve(ctx, nil)
}

// openDatabase loads the database-only configuration, its logger and a small pool
// (the one-shot subcommands need nothing else).
func openDatabase(ctx context.Context, maxConns int32) (*config.Config, *slog.Logger, *store.Store, error) {
	cfg, err := config.Load(os.Getenv, config.ModeDatabaseOnly)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := store.Open(ctx, store.Options{URL: cfg.DatabaseURL, MaxConns: maxConns})
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, newLogger(cfg, os.Stderr), st, nil
}

// openMigrated opens the database for a one-off pass (retention,
// compaction) and brings its schema up to date first.
func openMigrated(ctx context.Context) (*config.Config, *slog.Logger, *store.Store, error) {
	cfg, log, st, err := openDatabase(ctx, 4)
	if err != nil {
		return nil, nil, nil, err
	}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := st.Migrate(mctx); err != nil {
		st.Close()
		return nil, nil, nil, fmt.Errorf("database not reachable or not migratable: %w", err)
	}
	return cfg, log, st, nil
}

func migrate(ctx context.Context) error {
	_, log, st, err := openDatabase(ctx, 2)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	applied, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	log.Info("migrations up to date", "applied", applied)
	return nil
}

// retentionPass runs one pass: expired metric partitions, points, series,
// traces. Safe next to serving replicas and other passes (advisory lock).
func retentionPass(ctx context.Context) error {
	cfg, log, st, err := openMigrated(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	p := &retention.Pruner{Store: st, Log: log, MetricsDays: cfg.MetricsRetentionDays, TracesDays: cfg.TracesRetentionDays}
	_, err = p.RunOnce(ctx)
	return err
}

// compactPass compacts every closed window now (the server does it in the
// background; this is for catching up at once, and for benchmarks). Safe next
// to serving replicas: they skip their turn while it runs.
func compactPass(ctx context.Context) error {
	_, log, st, err := openMigrated(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	c := &compaction.Compactor{Store: st, Log: log, Budget: 24 * time.Hour}
	res, err := c.RunOnce(ctx)
	if err == nil && res.Skipped {
		return fmt.Errorf("another replica is compacting; try again later")
	}
	return err
}
