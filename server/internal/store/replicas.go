package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Read replicas (SPEC §3.12). Read-only queries go through reader(ctx): to a
// streaming replica whose replay lag is within the bound, else the primary.
// Each replica's lag is sampled every interval; a replica that fails a query
// or a sample is skipped at once and probed again with backoff; a read that
// fails on a replica is retried once elsewhere, so a replica dying costs no
// request.

// DefaultLagSampleInterval is how often each replica's replay lag is measured.
const DefaultLagSampleInterval = time.Second

// replicaConnectTimeout bounds connecting to a replica: a slow replica costs
// a read this long before it is retried elsewhere.
const replicaConnectTimeout = time.Second

// maxBackoffIntervals caps the probe backoff of a failed replica (32 s at the
// default interval).
const maxBackoffIntervals = 32

type replicaState int

const (
	replicaStarting replicaState = iota // not sampled yet: not used
	replicaServing                      // lag within the bound: used
	replicaLagging                      // lag beyond the bound or unknown: skipped
	replicaDown                         // failed: skipped, probed again with backoff
)

func (s replicaState) String() string {
	return [...]string{"starting", "serving", "lagging", "down"}[s]
}

// ReplicaStates lists every state a replica reports, for exposition.
var ReplicaStates = []string{"starting", "serving", "lagging", "down"}

type replica struct {
	name    string
	pool    *pgxpool.Pool
	reads   atomic.Uint64 // read queries answered
	retries atomic.Uint64 // read queries that failed here and were retried elsewhere

	mu       sync.Mutex
	state    replicaState
	lag      time.Duration
	lagKnown bool
	failures int // consecutive failures, for the backoff
	retryAt  time.Time
}

func (r *replica) serving() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == replicaServing
}

// replicaSet routes reads among the replicas and the primary and keeps each
// replica's state current.
type replicaSet struct {
	primary      *pgxpool.Pool
	replicas     []*replica
	maxLag       time.Duration
	interval     time.Duration
	log          *slog.Logger
	next         atomic.Uint64  // round robin among serving replicas
	primaryReads *atomic.Uint64 // the store's count
	primaryDown  atomic.Bool    // the last sample could not reach the primary
	stop         context.CancelFunc
	done         chan struct{}
}

// replicaConfigs builds one pool configuration per replica: from its own
// connection string (DATABASE_READ_URL), or from the primary's settings with
// another host (DATABASE_READ_HOST).
func replicaConfigs(primary *pgxpool.Config, urls, hosts []string) ([]*pgxpool.Config, error) {
	var out []*pgxpool.Config
	for i, u := range urls {
		cfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			// pgx's message can contain the password; say only which entry.
			return nil, fmt.Errorf("DATABASE_READ_URL: entry %d of %d cannot be parsed as a PostgreSQL connection string", i+1, len(urls))
		}
		setSessionParams(cfg.ConnConfig)
		out = append(out, cfg)
	}
	for _, h := range hosts {
		host, port := splitReadHost(h)
		cfg := primary.Copy()
		cfg.ConnConfig.Host = host
		if port != 0 {
			cfg.ConnConfig.Port = port
		}
		cfg.ConnConfig.Fallbacks = nil // the primary's other hosts are not this replica
		if cfg.ConnConfig.TLSConfig != nil {
			cfg.ConnConfig.TLSConfig = cfg.ConnConfig.TLSConfig.Clone()
			cfg.ConnConfig.TLSConfig.ServerName = host // verify-full checks the replica's name
		}
		out = append(out, cfg)
	}
	return out, nil
}

// splitReadHost splits a DATABASE_READ_HOST entry (validated by the
// configuration): "host", "host:port" or "[v6::addr]:port"; port 0 keeps
// the primary's.
func splitReadHost(entry string) (host string, port uint16) {
	if h, p, err := net.SplitHostPort(entry); err == nil {
		n, _ := strconv.ParseUint(p, 10, 16)
		return h, uint16(n)
	}
	return strings.Trim(entry, "[]"), 0
}

func newReplicaSet(primary *pgxpool.Pool, primaryReads *atomic.Uint64, cfgs []*pgxpool.Config, opts Options) (*replicaSet, error) {
	rs := &replicaSet{primary: primary, primaryReads: primaryReads, maxLag: opts.MaxReplicaLag, interval: opts.LagSampleInterval, log: opts.Log}
	if rs.maxLag <= 0 {
		rs.maxLag = DefaultMaxReplicaLag
	}
	if rs.interval <= 0 {
		rs.interval = DefaultLagSampleInterval
	}
	names := map[string]int{}
	for _, cfg := range cfgs {
		cfg.ConnConfig.ConnectTimeout = min(cfg.ConnConfig.ConnectTimeout, replicaConnectTimeout)
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = replicaConnectTimeout
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			rs.closePools()
			return nil, fmt.Errorf("create read replica pool: %w", err)
		}
		name := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
		if names[name]++; names[name] > 1 {
			name += "#" + strconv.Itoa(names[name])
		}
		rs.replicas = append(rs.replicas, &replica{name: "replica:" + name, pool: pool})
	}
	return rs, nil
}

// start samples the replicas until close.
func (rs *replicaSet) start() {
	ctx, cancel := context.WithCancel(context.Background())
	rs.stop, rs.done = cancel, make(chan struct{})
	go func() {
		defer close(rs.done)
		ticker := time.NewTicker(rs.interval)
		defer ticker.Stop()
		for {
			rs.sample(ctx, time.Now())
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
}

func (rs *replicaSet) close() {
	if rs.stop != nil {
		rs.stop()
		<-rs.done
	}
	rs.closePools()
}

func (rs *replicaSet) closePools() {
	for _, r := range rs.replicas {
		r.pool.Close()
	}
}

// pick chooses where a read goes: the request's replica while it serves,
// else the next serving replica other than exclude, else nil (the primary).
func (rs *replicaSet) pick(route *ReadRoute, exclude *replica) *replica {
	if route != nil {
		route.mu.Lock()
		defer route.mu.Unlock()
		if route.consistency == ReadPrimary {
			return nil
		}
		if p := route.pinned; p != nil && p != exclude && p.serving() {
			return p
		}
	}
	var candidates []*replica
	for _, r := range rs.replicas {
		if r != exclude && r.serving() {
			candidates = append(candidates, r)
		}
	}
	var chosen *replica
	if len(candidates) > 0 {
		chosen = candidates[rs.next.Add(1)%uint64(len(candidates))]
	}
	if route != nil {
		route.pinned = chosen
	}
	return chosen
}

// routedReader sends read-only queries to a fit replica, retrying a failed
// one once on another replica or the primary.
type routedReader struct{ rs *replicaSet }

func (rr routedReader) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	route := ReadRouteFrom(ctx)
	r := rr.rs.pick(route, nil)
	rows, err := rr.queryOn(ctx, route, r, sql, args)
	if r == nil || err == nil || ctx.Err() != nil || !retryElsewhere(err) {
		return rows, err
	}
	r.retries.Add(1)
	if isServerFailure(err) {
		rr.rs.markDown(r, err, time.Now())
	}
	return rr.queryOn(ctx, route, rr.rs.pick(route, r), sql, args)
}

// queryOn runs a read on replica r, or on the primary when r is nil.
func (rr routedReader) queryOn(ctx context.Context, route *ReadRoute, r *replica, sql string, args []any) (pgx.Rows, error) {
	if r == nil {
		rr.rs.primaryReads.Add(1)
		route.record(PrimaryPool)
		return rr.rs.primary.Query(ctx, sql, args...)
	}
	rows, err := queryBuffered(ctx, r.pool, sql, args)
	if err == nil {
		r.reads.Add(1)
		route.record(r.name)
	}
	return rows, err
}

func (rr routedReader) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := rr.Query(ctx, sql, args...)
	return bufferedRow{rows: rows, err: err}
}

// snapshot runs fn's reads in one snapshot (snapshotTx) on a fit replica,
// or the primary; a failure on a replica is retried once elsewhere, with fn
// run again from the start.
func (rs *replicaSet) snapshot(ctx context.Context, fn func(db querier) error) error {
	route := ReadRouteFrom(ctx)
	r := rs.pick(route, nil)
	err := rs.snapshotOn(ctx, route, r, fn)
	if r == nil || err == nil || ctx.Err() != nil || !retryElsewhere(err) {
		return err
	}
	r.retries.Add(1)
	if isServerFailure(err) {
		rs.markDown(r, err, time.Now())
	}
	return rs.snapshotOn(ctx, route, rs.pick(route, r), fn)
}

func (rs *replicaSet) snapshotOn(ctx context.Context, route *ReadRoute, r *replica, fn func(db querier) error) error {
	if r == nil {
		rs.primaryReads.Add(1)
		route.record(PrimaryPool)
		return readInSnapshot(ctx, rs.primary, fn)
	}
	err := readInSnapshot(ctx, r.pool, fn)
	if err == nil {
		r.reads.Add(1)
		route.record(r.name)
	}
	return err
}

// retryElsewhere: the read may succeed on another server — this one is
// unreachable, busy or in conflict with replay, or has not replayed a schema
// change yet. A statement that is wrong fails everywhere and is not retried.
func retryElsewhere(err error) bool {
	if IsUnavailable(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42P01", "42703", "42883", "42704": // undefined table, column, function, object
			return true
		}
	}
	return false
}

// isServerFailure: the replica itself failed (as opposed to one statement
// being cancelled), so it is skipped until a probe finds it well.
func isServerFailure(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01", "55P03", "57014": // recovery conflicts, lock and statement timeouts
			return false
		}
	}
	return IsUnavailable(err)
}

// markDown skips r until its next probe, backing off exponentially.
func (rs *replicaSet) markDown(r *replica, err error, now time.Time) {
	r.mu.Lock()
	was := r.state
	r.state, r.lagKnown = replicaDown, false
	r.failures++
	backoff := rs.interval << min(r.failures-1, 5)
	r.retryAt = now.Add(min(backoff, rs.interval*maxBackoffIntervals))
	r.mu.Unlock()
	if was != replicaDown {
		rs.log.Warn("read replica unavailable; its reads go elsewhere until it answers again",
			"replica", r.name, "error", err, "retry_in", backoff.String())
	}
}

// sample measures every replica that is due: the primary's WAL position
// first, then each replica's replay position and age, in parallel.
func (rs *replicaSet) sample(ctx context.Context, now time.Time) {
	// Each server gets a timeout of its own: an unreachable primary must not
	// use up the time of the replicas' samples (it would mark them down too).
	timeout := max(rs.interval, time.Second)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	primaryLSN, primaryKnown := walPosition(pctx, rs.primary)
	cancel()
	if ctx.Err() == nil {
		rs.primaryDown.Store(!primaryKnown)
	}
	var wg sync.WaitGroup
	for _, r := range rs.replicas {
		r.mu.Lock()
		due := r.state != replicaDown || !now.Before(r.retryAt)
		r.mu.Unlock()
		if !due {
			continue
		}
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			s, err := sampleReplica(rctx, r.pool)
			switch {
			case ctx.Err() != nil: // shutting down: no verdict
			case err != nil:
				rs.markDown(r, err, now)
			default:
				lag, known := replicaLag(s, primaryLSN, primaryKnown)
				rs.setLag(r, lag, known)
			}
		})
	}
	wg.Wait()
}

func (rs *replicaSet) setLag(r *replica, lag time.Duration, known bool) {
	state := replicaLagging
	if known && lag <= rs.maxLag {
		state = replicaServing
	}
	r.mu.Lock()
	was := r.state
	r.state, r.lag, r.lagKnown, r.failures = state, lag, known, 0
	r.mu.Unlock()
	switch {
	case was == state:
	case state == replicaServing:
		rs.log.Info("read replica serving reads", "replica", r.name, "lag_ms", lag.Milliseconds())
	default:
		rs.log.Warn("read replica lagging; its reads go elsewhere", "replica", r.name,
			"lag_ms", lag.Milliseconds(), "lag_known", known, "max_lag_ms", rs.maxLag.Milliseconds())
	}
}

// replicaSample is what a replica says of its replication.
type replicaSample struct {
	inRecovery bool
	replayLSN  uint64   // last WAL position replayed (0: unknown)
	receiveLSN uint64   // last WAL position received (0: unknown)
	replayAge  *float64 // seconds since the last replayed transaction committed on the primary; nil: none since start
}

func sampleReplica(ctx context.Context, pool *pgxpool.Pool) (replicaSample, error) {
	var s replicaSample
	var replay, receive string
	err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		coalesce(pg_last_wal_replay_lsn()::text, ''), coalesce(pg_last_wal_receive_lsn()::text, ''),
		extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8`).Scan(&s.inRecovery, &replay, &receive, &s.replayAge)
	if err != nil {
		return s, err
	}
	s.replayLSN, _ = parseLSN(replay)
	s.receiveLSN, _ = parseLSN(receive)
	return s, nil
}

// walPosition is the primary's current WAL insert position.
func walPosition(ctx context.Context, pool *pgxpool.Pool) (uint64, bool) {
	var text string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&text); err != nil {
		return 0, false
	}
	lsn, err := parseLSN(text)
	return lsn, err == nil
}

// replicaLag turns a sample into a replay lag. A replica that has replayed
// the primary's WAL position (sampled just before) has every transaction the
// primary had committed: lag 0, however long ago the last commit was — an
// idle primary must not make a replica look late. Otherwise the lag is the
// age of the last transaction it replayed, an upper bound of how stale it
// is. With the primary unreachable, a replica that has replayed all it
// received is as current as it can be (lag 0): it keeps reads answering.
// known is false when nothing says how late the replica is.
func replicaLag(s replicaSample, primaryLSN uint64, primaryKnown bool) (lag time.Duration, known bool) {
	switch {
	case !s.inRecovery:
		return 0, true // promoted, or a primary named as a replica: it is current
	case primaryKnown && s.replayLSN >= primaryLSN && s.replayLSN != 0:
		return 0, true
	case !primaryKnown && s.replayLSN != 0 && s.receiveLSN <= s.replayLSN:
		return 0, true
	case s.replayAge == nil:
		return 0, false
	}
	return time.Duration(max(*s.replayAge, 0) * float64(time.Second)), true
}

// parseLSN reads PostgreSQL's text form of a WAL position, "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	return h<<32 | l, nil
}

// servingReplicas counts the replicas reads may use now.
func (rs *replicaSet) servingReplicas() int {
	n := 0
	for _, r := range rs.replicas {
		if r.serving() {
			n++
		}
	}
	return n
}

// PoolStats describes one connection pool and, for replicas, its state.
type PoolStats struct {
	Name     string // PrimaryPool, or "replica:<host>:<port>"
	Replica  bool
	MaxConns int32
	Idle     int32
	Acquired int32
	// Reads: read queries this pool answered. Retries: read queries that
	// failed on this replica and were retried elsewhere.
	Reads, Retries uint64
	// Replicas only: State is one of ReplicaStates; Lag is the last measured
	// replay lag, valid when LagKnown.
	State    string
	Lag      time.Duration
	LagKnown bool
}

func poolStats(name string, p *pgxpool.Pool) PoolStats {
	st := p.Stat()
	return PoolStats{Name: name, MaxConns: st.MaxConns(), Idle: st.IdleConns(), Acquired: st.AcquiredConns()}
}

func (r *replica) stats() PoolStats {
	ps := poolStats(r.name, r.pool)
	ps.Replica, ps.Reads, ps.Retries = true, r.reads.Load(), r.retries.Load()
	r.mu.Lock()
	ps.State, ps.Lag, ps.LagKnown = r.state.String(), r.lag, r.lagKnown
	r.mu.Unlock()
	return ps
}
