// Package store is the PostgreSQL layer: the connection pool, the embedded
// migrations and every SQL statement of the server. Errors leave this package
// classified: connection problems are errs.Unavailable, missing rows
// errs.NotFound; anything else is an internal error.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// Options configure Open.
type Options struct {
	// URL is a connection string; empty uses the libpq PG* environment variables.
	URL      string
	MaxConns int32
	// ConnectTimeout bounds each connection attempt so an unreachable database
	// turns into a 503 quickly instead of a hang.
	ConnectTimeout time.Duration
	// SeriesCacheSize bounds the in-process series-id cache (entries).
	SeriesCacheSize int

	// ReplicaURLs are read replicas' connection strings (DATABASE_READ_URL).
	ReplicaURLs []string
	// ReplicaHosts are read replicas reached with the primary's settings and
	// another host, "host" or "host:port" (DATABASE_READ_HOST).
	ReplicaHosts []string
	// MaxReplicaLag: a replica further behind is skipped; zero means DefaultMaxReplicaLag.
	MaxReplicaLag time.Duration
	// LagSampleInterval: how often replicas are measured; zero means DefaultLagSampleInterval.
	LagSampleInterval time.Duration
	// Log receives the store's own events (replica state changes, exclusive
	// sections); nil discards them.
	Log *slog.Logger
}

// DefaultMaxReplicaLag is XTRACE_READ_MAX_LAG's default.
const DefaultMaxReplicaLag = 2 * time.Second

// Store is the database handle shared by ingest, query and retention.
type Store struct {
	pool *pgxpool.Pool
	// writes commits ingested metric points and trace groups on a few
	// connections of their own (see writePoolSize), so that the same few
	// PostgreSQL backends do every such write. A backend maps each page of
	// shared buffers into its own page table when it first touches it:
	// writes spread over the whole pool paid those page faults in every
	// backend (the bench's metric ingest: 11% more PostgreSQL CPU, 9% more
	// time than with writes kept on their own four connections).
	// A burst of queries cannot take the connections commits need, either.
	// It is pool itself when the pool is too small to split.
	writes       *pgxpool.Pool
	replicas     *replicaSet // nil without read replicas
	primaryReads atomic.Uint64
	log          *slog.Logger

	series     *seriesCache
	partitions sync.Map // partitionKey -> struct{}: partitions known to exist
	latest     *latestWriter
	// traceConflictGroups counts down the trace groups still to insert with
	// ON CONFLICT DO NOTHING after one found an existing entity (WriteTraces).
	traceConflictGroups atomic.Int64
	// traceFlush measures the flush's share of a trace group's commit.
	traceFlush flushGauge
	// traceOverlap says whether trace groups may commit two at a time.
	traceOverlap overlapTrials
	// now is the clock writes judge which raw windows are closed by (tests
	// set it to push "live" at dates of their choosing).
	now func() time.Time
	// afterPartitions, when set, runs between a metric write's making of
	// its partitions and its transaction (tests drop them there, as a
	// compaction pass can).
	afterPartitions func()
}

// Open creates the pool. It does not wait for the database: the server starts
// and reports not-ready until Postgres answers.
func Open(ctx context.Context, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		// pgx's message can contain the password; say only what kind of problem it is.
		return nil, errors.New("DATABASE_URL: cannot be parsed as a PostgreSQL connection string")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 3 * time.Second
	}
	cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 10 * time.Second
	setSessionParams(cfg.ConnConfig)
	replicaCfgs, err := replicaConfigs(cfg, opts.ReplicaURLs, opts.ReplicaHosts)
	if err != nil {
		return nil, err
	}
	writeCfg := cfg.Copy()
	writeCfg.MaxConns = writePoolSize(cfg.MaxConns)
	cfg.MaxConns -= writeCfg.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create connection pool: %w", err)
	}
	writes := pool
	if writeCfg.MaxConns > 0 {
		if writes, err = pgxpool.NewWithConfig(ctx, writeCfg); err != nil {
			pool.Close()
			return nil, fmt.Errorf("create connection pool: %w", err)
		}
	}
	if opts.SeriesCacheSize <= 0 {
		opts.SeriesCacheSize = 1 << 20
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Store{pool: pool, writes: writes, log: opts.Log, series: newSeriesCache(opts.SeriesCacheSize), now: time.Now}
	s.latest = newLatestWriter(s)
	if len(replicaCfgs) > 0 {
		if s.replicas, err = newReplicaSet(pool, &s.primaryReads, replicaCfgs, opts); err != nil {
			s.closePools()
			return nil, err
		}
		s.replicas.start()
	}
	return s, nil
}

// writePoolSize is how many of the primary's maxConns connections are
// kept for ingest writes (Store.writes): the ingest queues commit on at most
// four at a time (two workers each), and the rest serve queries. Below two
// connections there is nothing to split (0: writes share the pool).
func writePoolSize(maxConns int32) int32 {
	if maxConns < 2 {
		return 0
	}
	return min(4, maxConns/2)
}

// setSessionParams sets what every connection of the server runs with.
//
// plan_cache_mode: the metric reads are single statements over two
// partitioned tables, and PostgreSQL planned them afresh on every execution,
// as a plan for the given parameters prunes partitions and so always looks
// cheaper than a generic one. On a day of data the router query took
// 1-1.8 ms to plan and 0.3 ms to run; a generic plan, made once per
// connection, prunes the partitions when it runs. The connection string may
// set another mode.
func setSessionParams(cc *pgx.ConnConfig) {
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = "xtrace"
	cc.RuntimeParams["timezone"] = "UTC"
	if _, set := cc.RuntimeParams["plan_cache_mode"]; !set {
		cc.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
}

// readQuerier is what read-only queries need of a pool.
type readQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// reader is where read-only queries go: a fit read replica when there are
// any (see replicas.go), else the primary. The request's ReadRoute, if ctx
// carries one, says whether a replica may answer and records which pool did.
// Writes, DDL, migrations, retention, locks and health always use s.pool.
func (s *Store) reader(ctx context.Context) readQuerier {
	if s.replicas != nil {
		return routedReader{s.replicas}
	}
	ReadRouteFrom(ctx).record(PrimaryPool)
	s.primaryReads.Add(1)
	return s.pool
}

// readSnapshot runs fn's reads in one snapshot on the server reader(ctx)
// would use: statements that together read the tiers (raw points, then
// chunks) see one state of the database, never one compaction half-way
// (points counted twice, or missed).
func (s *Store) readSnapshot(ctx context.Context, fn func(db querier) error) error {
	if s.replicas != nil {
		return s.replicas.snapshot(ctx, fn)
	}
	ReadRouteFrom(ctx).record(PrimaryPool)
	s.primaryReads.Add(1)
	return readInSnapshot(ctx, s.pool, fn)
}

// readInSnapshot runs fn in a read-only REPEATABLE READ transaction (which
// hot standbys serve too).
func readInSnapshot(ctx context.Context, pool *pgxpool.Pool, fn func(db querier) error) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return fn(tx) })
}

// Close writes the pending latest values, stops the replica sampling and
// closes the pools.
func (s *Store) Close() {
	s.latest.close()
	if s.replicas != nil {
		s.replicas.close()
	}
	s.closePools()
}

func (s *Store) closePools() {
	if s.writes != s.pool {
		s.writes.Close()
	}
	s.pool.Close()
}

// ReplicaServing reports whether at least one read replica answers reads
// now (in range of the lag bound), e.g. while the primary is down.
func (s *Store) ReplicaServing() bool {
	return s.replicas != nil && s.replicas.servingReplicas() > 0
}

// PoolStats describes the primary's pool, each replica's, and last the
// primary's write pool when it has one.
func (s *Store) PoolStats() []PoolStats {
	out := []PoolStats{poolStats(PrimaryPool, s.pool)}
	out[0].Reads = s.primaryReads.Load()
	if s.replicas != nil {
		for _, r := range s.replicas.replicas {
			out = append(out, r.stats())
		}
	}
	if s.writes != s.pool {
		out = append(out, poolStats(PrimaryWritePool, s.writes))
	}
	return out
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return classify(s.pool.Ping(ctx))
}

// classify wraps connection-level failures as errs.ErrUnavailable and
// missing rows as errs.ErrNotFound, keeping the original for logs.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", errs.ErrNotFound, err)
	}
	if IsUnavailable(err) {
		return fmt.Errorf("%w: %w", errs.ErrUnavailable, err)
	}
	return err
}

// IsUnavailable reports whether err means the database could not be reached,
// went away, or is too busy right now — a retry later can succeed — as
// opposed to rejecting a statement. Out of memory, disk full and other
// resource exhaustion are not "unavailable": retrying the same request does
// not help, so they are internal errors.
func IsUnavailable(err error) bool {
	if errs.KindOf(err) == errs.Unavailable {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53300", // too_many_connections
			"55P03",          // lock_not_available: a bounded lock wait ran out
			"57014",          // query_canceled: statement timeout
			"57P01", "57P02", // admin_shutdown, crash_shutdown
			"57P03",          // cannot_connect_now: starting up or in recovery
			"40001", "40P01": // serialization failure, deadlock: retry
			return true
		}
		return pgErr.Code[:2] == "08" // connection exception
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) ||
		isClosedConn(err)
}

func isClosedConn(err error) bool {
	return err != nil && (errors.Is(err, net.ErrClosed) || err.Error() == "conn closed" || err.Error() == "closed pool")
}
