// Package app wires the server together: configuration → store → ingest
// queues → HTTP API, plus the background loops, and runs them until the
// context ends, shutting down in order.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/compaction"
	"github.com/xtrace-dev/xtrace-operator/server/internal/config"
	"github.com/xtrace-dev/xtrace-operator/server/internal/httpapi"
	"github.com/xtrace-dev/xtrace-operator/server/internal/ingest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/retention"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/telemetry"
	"github.com/xtrace-dev/xtrace-operator/server/internal/version"
)

// ShutdownGrace bounds the drain on SIGTERM (Kubernetes' default grace period is 30 s).
const ShutdownGrace = 25 * time.Second

// Server is a configured xtrace server.
type Server struct {
	cfg    *config.Config
	log    *slog.Logger
	store  *store.Store
	tel    *telemetry.Metrics
	points *ingest.Batcher[metrics.Point]
	traces *ingest.Batcher[*store.TraceWrite]
	api    *httpapi.API
	opts   Options
}

// Options are for tests; production uses the zero value.
type Options struct {
	// Now replaces the clock of the API (receive times, rate limiting).
	Now func() time.Time
	// RetentionFirstPass delays the first in-process retention pass; zero means RetentionFirstPass.
	RetentionFirstPass time.Duration
	// MaxQueuedItems bounds each ingest queue (points, trace upserts); zero keeps the defaults.
	MaxQueuedItems int
	// ReadTimeout bounds reading a whole request (headers and body); zero means DefaultReadTimeout.
	ReadTimeout time.Duration
	// ReplicaSampleInterval: how often read replicas' lag is measured; zero
	// means store.DefaultLagSampleInterval (tests shorten it).
	ReplicaSampleInterval time.Duration
	// ShutdownDelay is how long the listener stays open after SIGTERM while
	// /readyz reports 503, so load balancers stop sending traffic before
	// connections are refused. Zero means DefaultShutdownDelay; negative, none.
	ShutdownDelay time.Duration
}

// DefaultReadTimeout bounds reading one request; a slower client gets 408.
const DefaultReadTimeout = 60 * time.Second

// DefaultShutdownDelay covers the time Kubernetes takes to remove a terminating pod from its Service.
const DefaultShutdownDelay = 2 * time.Second

// TraceQueueOptions are the trace writer's: how submissions of
// /v1/l/batch and the other trace endpoints are grouped into commits.
//
// Up to two groups commit at once, the second only while overlap says so:
// store.TraceCommitsMayOverlap, whose trials say why and when.
func TraceQueueOptions(maxQueuedItems int, obs ingest.Observer, overlap func() bool) ingest.Options {
	return ingest.Options{Name: "traces", Workers: 2, Overlap: overlap, MaxGroupItems: 2000, MaxDelay: time.Millisecond,
		MaxQueuedItems: maxQueuedItems, Observer: obs}
}

// New opens the pool (lazily: the database may still be starting) and builds the API.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts Options) (*Server, error) {
	st, err := store.Open(ctx, store.Options{URL: cfg.DatabaseURL, MaxConns: cfg.DBMaxConns,
		ReplicaURLs: cfg.DatabaseReadURLs, ReplicaHosts: cfg.DatabaseReadHosts, MaxReplicaLag: cfg.ReadMaxLag,
		LagSampleInterval: opts.ReplicaSampleInterval, Log: log})
	if err != nil {
		return nil, err
	}
	tel := telemetry.New()
	tel.ObservePools(st.PoolStats)
	tel.ObserveTraceCommits(st.TraceFlushShare, st.TraceCommitsMayOverlap)
	tel.QueueDepth("metrics", 0) // exposed from the start, not only after the first push
	project := cfg.DefaultProjectID
	points := ingest.New(ingest.Options{Name: "metrics", Workers: 2, MaxGroupItems: 20000, MaxQueuedItems: opts.MaxQueuedItems, Observer: tel},
		func(ctx context.Context, pts []metrics.Point) error { return st.WritePoints(ctx, project, pts) })
	tel.QueueDepth("traces", 0)
	traceQueue := ingest.New(TraceQueueOptions(opts.MaxQueuedItems, tel, st.TraceCommitsMayOverlap),
		func(ctx context.Context, writes []*store.TraceWrite) error {
			return st.WriteTraces(ctx, project, writes)
		})
	api := httpapi.New(httpapi.Deps{Config: cfg, Store: st, Points: points, Traces: traceQueue, Telemetry: tel, Log: log, Now: opts.Now})
	if opts.RetentionFirstPass == 0 {
		// A short interval (tests, small installations) also shortens the wait for the first pass.
		opts.RetentionFirstPass = min(RetentionFirstPass, cfg.RetentionInterval)
	}
	if opts.ShutdownDelay == 0 {
		opts.ShutdownDelay = DefaultShutdownDelay
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	return &Server{cfg: cfg, log: log, store: st, tel: tel, points: points, traces: traceQueue, api: api, opts: opts}, nil
}

// Handler is the HTTP handler (for tests that serve it themselves).
func (s *Server) Handler() http.Handler { return s.api.Handler() }

// Serve listens on ln (or cfg.BindAddr when nil) until ctx ends, then shuts
// down: readiness off, in-flight and queued writes committed and answered,
// connections closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.BindAddr); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           s.api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      max(60*time.Second, s.cfg.PromQL.Timeout+15*time.Second), // a PromQL query may use its whole timeout
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	go s.prepareDatabase(bg)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("xtrace serving", append([]any{"version", version.Version, "addr", ln.Addr().String()}, s.cfg.LogValue()...)...)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: not ready, draining requests and queued writes")
	s.api.StartShutdown()
	if s.opts.ShutdownDelay > 0 {
		time.Sleep(s.opts.ShutdownDelay)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	for _, closeQueue := range []func(context.Context) error{s.points.Close, s.traces.Close} {
		if qerr := closeQueue(shutdownCtx); qerr != nil && err == nil {
			err = qerr
		}
	}
	stopBackground()
	s.store.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("xtrace stopped")
	return nil
}

// RetentionFirstPass is how long after start the in-process pruning first runs.
const RetentionFirstPass = 30 * time.Second

func (s *Server) pruner() *retention.Pruner {
	return &retention.Pruner{Store: s.store, Log: s.log, Telemetry: s.tel, MetricsDays: s.cfg.MetricsRetentionDays,
		TracesDays: s.cfg.TracesRetentionDays, FirstPassDue: s.opts.RetentionFirstPass}
}

// prepareDatabase applies migrations (retrying while the database is
// unreachable), then keeps the next days' partitions created.
func (s *Server) prepareDatabase(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for {
		applied, err := s.store.Migrate(ctx)
		if err == nil {
			if len(applied) > 0 {
				s.log.Info("migrations applied", "migrations", applied)
			}
			// Latest values committed but not yet written when a process died come back from the hot rows.
			if err := s.store.RepairLatest(ctx, time.Now().Add(-2*time.Hour)); err != nil {
				s.log.Warn("repairing latest values failed; each series' next push repairs its own", "error", err)
			}
			s.api.SetSchemaReady()
			if s.cfg.RetentionInterval > 0 {
				go s.pruner().Loop(ctx, s.cfg.RetentionInterval)
			}
			if s.cfg.CompactionInterval > 0 {
				c := &compaction.Compactor{Store: s.store, Log: s.log, Telemetry: s.tel}
				go c.Loop(ctx, s.cfg.CompactionInterval)
			}
			break
		}
		s.log.Warn("migrations not applied yet; retrying", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	// The raw partitions ahead are made well before they fill, so that
	// pushes do not wait on DDL at the turn of each minute.
	ticker := time.NewTicker(store.PartitionsAhead / 3)
	defer ticker.Stop()
	for {
		if err := s.store.EnsurePartitionsAhead(ctx, time.Now(), 2); err != nil {
			s.log.Warn("creating metric partitions ahead failed; points create them on demand", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
