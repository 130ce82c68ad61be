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
	"net"
	"sync"
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
}

// Store is the database handle shared by ingest, query and retention.
type Store struct {
	pool *pgxpool.Pool

	series     *seriesCache
	partitions sync.Map // partitionKey -> struct{}: partitions known to exist
	latest     *latestWriter
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
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "xtrace"
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create connection pool: %w", err)
	}
	if opts.SeriesCacheSize <= 0 {
		opts.SeriesCacheSize = 1 << 20
	}
	s := &Store{pool: pool, series: newSeriesCache(opts.SeriesCacheSize)}
	s.latest = newLatestWriter(s)
	return s, nil
}

// reader is the pool that read-only queries use. Writes, DDL, migrations,
// retention and locks always use s.pool (the primary).
func (s *Store) reader(_ context.Context) *pgxpool.Pool { return s.pool }

// Close writes the pending latest values and closes the pool.
func (s *Store) Close() {
	s.latest.close()
	s.pool.Close()
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
