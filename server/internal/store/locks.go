package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Advisory locks serialise work across replicas and CronJobs. Every lock id
// of the server is here, so no two uses can collide.
type lockID int64

const (
	// lockMigrations is held while migrating, so replicas starting together apply each migration once.
	lockMigrations lockID = 0x78747261636501 // "xtrace" + 1
	// lockPartitions serialises partition DDL (create and drop).
	lockPartitions lockID = 0x78747261636502
	// lockRetention: one retention pass at a time.
	lockRetention lockID = 0x78747261636503
	// lockCompaction: one compaction pass at a time.
	lockCompaction lockID = 0x78747261636504
	// lockChunkWrites: one transaction at a time rewrites chunks (a
	// compaction batch, a retention trim). It is taken per transaction, so it
	// also holds when a killed replica's last transaction outlives the
	// session that held lockCompaction, and the next pass starts beside it.
	lockChunkWrites lockID = 0x78747261636505
)

// Bucket locks use PostgreSQL's two-key advisory locks (a space and a
// bucket), which never collide with the single-key locks above.
const (
	// lockSpaceTraces: buckets of trace, observation and score ids.
	lockSpaceTraces int32 = 0x7874 // "xt"
	// traceLockBuckets bounds the locks one trace write holds: PostgreSQL's
	// lock table is shared and small (max_locks_per_transaction × connections).
	traceLockBuckets = 1024
)

// Job names a kind of background work of which one runs at a time across
// all replicas (see RunExclusive).
type Job int

// The exclusive jobs.
const (
	JobRetention Job = iota + 1
	JobCompaction
)

var jobLocks = map[Job]lockID{JobRetention: lockRetention, JobCompaction: lockCompaction}

// lockNames name the exclusive sections in logs.
var lockNames = map[lockID]string{lockMigrations: "migrations", lockPartitions: "partitions", lockRetention: "retention", lockCompaction: "compaction", lockChunkWrites: "chunk writes"}

// String is the job's name.
func (j Job) String() string { return lockNames[jobLocks[j]] }

// RunExclusive runs fn unless another replica (or CronJob) is running the
// same job; ran says whether fn ran. The lock is a session lock on one pooled
// connection, released when fn returns.
func (s *Store) RunExclusive(ctx context.Context, job Job, fn func(ctx context.Context) error) (ran bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, classify(err)
	}
	defer conn.Release()
	id := jobLocks[job]
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&ran); err != nil {
		return false, classify(err)
	}
	if !ran {
		return false, nil
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", id) }()
	defer s.exclusiveSection(ctx, id)()
	return true, fn(ctx)
}

// exclusiveSection logs (at debug level) that this process holds lock id,
// from after taking it; the returned function logs the end, before the lock
// is released. The lines of every replica together show that no two ever
// held the same lock at once (the multi-process tests check it).
func (s *Store) exclusiveSection(ctx context.Context, id lockID) (leave func()) {
	s.log.DebugContext(ctx, "exclusive section", "lock", lockNames[id], "event", "enter")
	return func() { s.log.DebugContext(ctx, "exclusive section", "lock", lockNames[id], "event", "leave") }
}

// lockSession blocks until conn holds id; the returned function releases it.
func lockSession(ctx context.Context, conn *pgxpool.Conn, id lockID) (func(), error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		return nil, err
	}
	return func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", id) }, nil
}

// lockTx blocks until the transaction holds id; it is released at commit or rollback.
func lockTx(ctx context.Context, tx pgx.Tx, id lockID) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", id)
	return err
}

// lockTxShared takes lock id in shared mode until the transaction ends: it
// waits for an exclusive holder and keeps one out, but not other sharers.
func lockTxShared(ctx context.Context, tx pgx.Tx, id lockID) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", id)
	return err
}
