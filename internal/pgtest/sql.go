package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DB is a connection for tests that set up or inspect a database directly
// (the server's own code reaches PostgreSQL only through its store).
type DB struct {
	t    testing.TB
	conn *pgx.Conn
}

// Connect opens url for the test; the connection closes when the test ends.
func Connect(t testing.TB, url string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return &DB{t: t, conn: conn}
}

// Exec runs a statement and fails the test on error.
func (db *DB) Exec(sql string, args ...any) {
	db.t.Helper()
	if _, err := db.conn.Exec(context.Background(), sql, args...); err != nil {
		db.t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// TryExec runs a statement and returns its error.
func (db *DB) TryExec(sql string, args ...any) error {
	_, err := db.conn.Exec(context.Background(), sql, args...)
	return err
}

// Int returns the single integer a query yields.
func (db *DB) Int(sql string, args ...any) int64 {
	db.t.Helper()
	var n int64
	if err := db.conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		db.t.Fatalf("pgtest: %s: %v", sql, err)
	}
	return n
}

// Scan scans the one row a query yields into dest.
func (db *DB) Scan(sql string, args []any, dest ...any) {
	db.t.Helper()
	if err := db.conn.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		db.t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Rows returns every row of a query as values.
func (db *DB) Rows(sql string, args ...any) [][]any {
	db.t.Helper()
	rows, err := db.conn.Query(context.Background(), sql, args...)
	if err != nil {
		db.t.Fatalf("pgtest: %s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		db.t.Fatalf("pgtest: %s: %v", sql, err)
	}
	return out
}

// Begin starts a transaction that the test ends (Commit/Rollback through Tx).
func (db *DB) Begin() *Tx {
	db.t.Helper()
	tx, err := db.conn.Begin(context.Background())
	if err != nil {
		db.t.Fatalf("pgtest: begin: %v", err)
	}
	return &Tx{t: db.t, tx: tx}
}

// Tx is an open transaction of a test.
type Tx struct {
	t  testing.TB
	tx pgx.Tx
}

// Exec runs a statement inside the transaction.
func (tx *Tx) Exec(sql string, args ...any) {
	tx.t.Helper()
	if _, err := tx.tx.Exec(context.Background(), sql, args...); err != nil {
		tx.t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Rollback ends the transaction.
func (tx *Tx) Rollback() { _ = tx.tx.Rollback(context.Background()) }
